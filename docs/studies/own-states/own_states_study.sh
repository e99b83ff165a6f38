#!/bin/sh
# Trajectory students trained on their own states: does starting a share of each step from the state
# the student's own earlier steps reach cut the error that adds up over its steps? Continues the
# trajectory-distillation study (../trajectory-distillation/, whose runs/trajectories and
# runs/trajectory-4 it starts from). Run from the repository root on an idle machine, one job at a
# time; each command continues where it stopped if run again (distill with --resume).
set -e
# Trajectories from noises the students never saw, to tell learning the map from learning the recording.
mnistdiff trajectories --n 4096 --seed 100000 --student-steps 4 --solver-steps 20 --precision auto --compile \
    --out runs/trajectories-heldout
# The recording grown to twice its size (the first 40,960 are its own chunks, hard-linked).
[ -d runs/trajectories-81920 ] || cp -al runs/trajectories runs/trajectories-81920
mnistdiff trajectories --n 81920 --student-steps 4 --solver-steps 20 --precision auto --compile \
    --out runs/trajectories-81920
mnistdiff distill --method trajectory --trajectories runs/trajectories-81920 --student-steps 4 --own-states 0.5 \
    --init-from runs/trajectory-4 --minutes 35 --steps 100000 --fid-every 500 --fid-images 2048 \
    --precision auto --compile --out runs/own-4
# Then every step from the student's own states.
mnistdiff distill --method trajectory --trajectories runs/trajectories-81920 --student-steps 4 --own-states 1 \
    --init-from runs/own-4 --minutes 30 --steps 100000 --fid-every 500 --fid-images 2048 \
    --precision auto --compile --out runs/own-4-all
python docs/studies/own-states/heldout.py --students runs/trajectory-4,runs/own-4,runs/own-4-all \
    --learnt runs/trajectories --heldout runs/trajectories-heldout --n 2048 \
    --out docs/studies/own-states/results/heldout.md
python benchmarks/students.py --students runs/own-4,runs/own-4-all --steps 4 --n 10000 --compile \
    --curves runs/trajectory-4,runs/own-4,runs/own-4-all --out docs/studies/own-states/results/students-10k
