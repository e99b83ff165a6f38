#!/bin/sh
# Trajectory distillation of the shipped model: record its ODE trajectories once, then train a 4-, a
# 2- and a 1-step student on them, each starting from the progressive student of its steps that the
# package shipped before (fast, fast-2 and fast-1 at effbf83), and score them from the same 10,000
# noises as those students. Run from the repository root on an idle machine, one job at a time (about
# 2 hours on 2 CPU cores); each command continues where it stopped if run again (distill with --resume).
set -e
mkdir -p runs/progressive-students
for name in fast-mnist fast2-mnist fast1-mnist; do
    git archive effbf83 "src/mnistdiff/weights/$name" | tar -x --strip-components=3 -C runs/progressive-students
done
mnistdiff trajectories --n 40960 --student-steps 4 --solver-steps 20 --precision auto --compile \
    --out runs/trajectories
for run in 4:fast-mnist:30 2:fast2-mnist:25 1:fast1-mnist:15; do
    steps=${run%%:*}; rest=${run#*:}; start=${rest%%:*}; minutes=${rest#*:}
    mnistdiff distill --method trajectory --trajectories runs/trajectories --student-steps "$steps" \
        --init-from "runs/progressive-students/$start" --minutes "$minutes" --steps 100000 --fid-every 500 \
        --fid-images 2048 --precision auto --compile --out "runs/trajectory-$steps"
done
python benchmarks/students.py --students runs/trajectory-4,runs/trajectory-2,runs/trajectory-1 --steps 1,2,4 \
    --n 10000 --compile --curves runs/trajectory-4,runs/trajectory-2,runs/trajectory-1 \
    --out docs/studies/trajectory-distillation/results/students-10k
