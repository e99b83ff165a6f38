"""Forward-pass time of the shipped model by OpenMP thread count and wait policy, each setting in a
fresh process (OpenMP reads its environment once, when torch loads it), in alternating rounds.

    python docs/studies/threads/threads.py --label busy --out docs/studies/threads/results/threads-busy.json

Run it once on an idle machine and once beside another CPU job ("busy"): on a shared CPU, OpenMP
threads that spin while they wait for each other (its default, "active") can cost far more than
they gain.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

SETTINGS = [  # (OMP_NUM_THREADS, OMP_WAIT_POLICY); None: unset, torch's and OpenMP's own defaults;
    (None, None),  # "fit": what the mnistdiff command does, runtime.fit_threads_to_load()
    ("1", None),
    (None, "PASSIVE"),
    ("1", "PASSIVE"),
    ("fit", None),
]


def child(batch_size: int, repeats: int, fit: bool) -> None:
    import torch

    from mnistdiff import load_checkpoint
    from mnistdiff.runtime import fit_threads_to_load

    if fit:
        fit_threads_to_load()
    model, schedule, _ = load_checkpoint()
    x, t = torch.randn(batch_size, 1, 28, 28), torch.randint(0, schedule.T, (batch_size,))
    times = []
    with torch.inference_mode():
        model(x, t)  # warm-up
        for _ in range(repeats):
            t0 = time.perf_counter()
            model(x, t)
            times.append(time.perf_counter() - t0)
    print(json.dumps({"threads": torch.get_num_threads(), "median_s": statistics.median(times), "times_s": times}))


def run_setting(threads: str | None, policy: str | None, batch_size: int, repeats: int) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "OMP_WAIT_POLICY")}
    env |= {k: v for k, v in (("OMP_NUM_THREADS", threads), ("OMP_WAIT_POLICY", policy))
            if v is not None and v != "fit"}
    out = subprocess.run([sys.executable, __file__, "--child", "--batch-size", str(batch_size), "--repeats",
                          str(repeats), *(["--fit"] if threads == "fit" else [])], env=env, capture_output=True, text=True, check=True, timeout=600)
    return {"OMP_NUM_THREADS": threads, "OMP_WAIT_POLICY": policy, **json.loads(out.stdout.splitlines()[-1])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--fit", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=10, help="forward passes timed per process")
    parser.add_argument("--rounds", type=int, default=2, help="rounds over all settings, alternating")
    parser.add_argument("--label", default="unlabelled", help="what else ran on the machine, e.g. idle or busy")
    parser.add_argument("--out", help="JSON file for the results")
    args = parser.parse_args()
    if args.child:
        child(args.batch_size, args.repeats, args.fit)
        return
    runs = []
    for r in range(args.rounds):
        for threads, policy in SETTINGS:
            load = os.getloadavg()[0]
            result = run_setting(threads, policy, args.batch_size, args.repeats)
            runs.append({"round": r, "load_average_1min": load, **result})
            print(f"threads={result['threads']} OMP_NUM_THREADS={threads} OMP_WAIT_POLICY={policy}: "
                  f"{result['median_s'] * 1000:.0f} ms per forward of batch {args.batch_size}", flush=True)
    record = {"label": args.label, "cpus": os.cpu_count(), "batch_size": args.batch_size, "repeats": args.repeats,
              "command": " ".join(["python", *sys.argv]), "runs": runs}
    if args.out:
        with open(args.out, "w") as f:
            json.dump(record, f, indent=2)
            f.write("\n")


if __name__ == "__main__":
    main()
