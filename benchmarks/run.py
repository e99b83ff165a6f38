"""The benchmark suite: one run, one machine, one JSON and one Markdown table.

    python benchmarks/run.py --out benchmarks/results/NAME [--data-dir DIR]

Measures the matmul peak; for each preset and for diffusers' UNet2DModel of small's size, the
parameters, FLOPs, training and denoiser images/s in fp32 and bf16 (and with channels-last and
torch.compile with --compile); DDPM-1000 against DDIM-50 for a batch of 64; and the
peak resident memory of training and sampling, each job in a fresh process.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import torch

from mnistdiff import bench, keep_freed_memory, load_checkpoint
from mnistdiff.diffusion import linear_schedule
from mnistdiff.model import UNet, get_preset
from mnistdiff.precision import pick_device
from mnistdiff.provenance import device_name, git_commit
from mnistdiff.runtime import compile_model
from mnistdiff.training.compiled import compiled_grads_match

sys.path.insert(0, str(Path(__file__).parent))
from diffusers_unet import DiffusersUNet  # noqa: E402
from report import to_markdown  # noqa: E402

HERE = Path(__file__).parent


def machine(device: torch.device) -> dict:
    return {"cpu": device_name(torch.device("cpu")), "threads": torch.get_num_threads(), "torch": torch.__version__, "device": str(device),
            "gpu": device_name(device) if device.type == "cuda" else None,
            "commit": git_commit()}


def speed_rows(models: dict, device: torch.device, repeats: int, with_compile: bool, precisions: list[str],
               batch_size: int, keep=lambda rows: None) -> list[dict]:
    """One row per model and setting; keep(rows) is called after each, so a killed run keeps what it timed.

    Setting by setting, every model is timed back to back, so that a drift of the machine's speed
    falls alike on the rows that the ours / theirs ratios compare.
    """
    built = {name: make().to(device) for name, make in models.items()}
    base = {name: {"model": name, "params": sum(p.numel() for p in model.parameters()),
                   "gflop_per_image": bench.gflops_per_image(model)} for name, model in built.items()}
    settings = [(precision, False, False) for precision in precisions]
    if "bf16" in precisions:
        settings += [("bf16", True, False)]  # small only
    if with_compile:  # for every model timed, so that ours / theirs compares best with best
        settings += [(precision, channels_last, True) for precision in precisions for channels_last in (False, True)]
    rows = []
    for precision, channels_last, compiled in settings:
        for name, model in built.items():
            if channels_last and not compiled and name != "small":
                continue
            print(f"  {name} {precision}{' channels-last' if channels_last else ''}{' compile' if compiled else ''}",
                  flush=True)
            if compiled:  # a fresh graph cache: a model compiled many ways would hit dynamo's recompile limit
                torch._dynamo.reset()  # and quietly run the rest uncompiled
            # ours with the GroupNorm that compiles faster on CPUs, as the package compiles it
            timed = (compile_model if isinstance(model, UNet) else torch.compile)(model) if compiled else model
            speed = bench.model_speed(timed, batch_size=batch_size, precision=precision, channels_last=channels_last,
                                      repeats=repeats)
            if compiled:  # a fast wrong backward is no use: check it against the plain one
                x0 = torch.rand(batch_size, 1, 28, 28, device=device) * 2 - 1
                speed["train_grads_match"], speed["train_grad_error"] = compiled_grads_match(
                    model, timed, linear_schedule(), x0, precision)
            rows.append(base[name] | {"batch_size": batch_size, "precision": precision,
                                      "channels_last": channels_last, "compile": compiled} | speed)
            rows.sort(key=lambda row: list(built).index(row["model"]))  # the table lists model by model
            keep(rows)
    return rows


def memory_rows(presets: list[str], data_dir: str | None) -> list[dict]:
    rows = []
    for preset in presets:
        for job in ("train", "sample"):
            print(f"  {job} {preset}", flush=True)
            cmd = [sys.executable, str(HERE / "rss.py"), job, preset] + ([data_dir] if data_dir else [])
            done = subprocess.run(cmd, capture_output=True, text=True, check=True)
            rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True, help="writes OUT.json and OUT.md")
    p.add_argument("--presets", default="tiny,small,seed")
    p.add_argument("--data-dir", help="MNIST IDX folder, for the training-memory jobs")
    p.add_argument("--repeats", type=int, default=10)
    p.add_argument("--batch-size", type=int, default=64, help="for the throughput rows (sampling always times 64)")
    p.add_argument("--peak-size", type=int, default=2048,
                   help="n of the n x n matmul that measures the peak (a GPU needs ~8192 to fill)")
    p.add_argument("--precisions", default="fp32,bf16", help="comma list for the throughput rows")
    p.add_argument("--compile", action="store_true",
                   help="also time torch.compile, and sample through it (minutes to compile)")
    p.add_argument("--sampling-precision", default="auto", choices=["auto", "fp32", "bf16"],
                   help="auto: bf16 where the device has bf16 units, else fp32")
    p.add_argument("--skip", default="", help="comma list of sections to leave out: speed, sampling, memory")
    args = p.parse_args()
    keep_freed_memory()  # as the CLI does: every model here, ours and diffusers', runs without page faults
    device = pick_device("auto")
    presets, skip = args.presets.split(","), set(filter(None, args.skip.split(",")))
    precisions = args.precisions.split(",")
    if not set(precisions) <= {"fp32", "bf16"}:
        p.error(f"--precisions: fp32 and/or bf16, got {args.precisions}")
    record = {"command": " ".join(["python", *sys.argv]), "machine": machine(device)}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    print("peak", flush=True)
    record["peak_size"] = args.peak_size

    def peaks() -> dict:
        return {prec: bench.matmul_gflops(prec, device, n=args.peak_size) for prec in ("fp32", "bf16")}

    record["peak_gflops"] = peaks()
    if "speed" not in skip:
        models = {name: (lambda name=name: UNet(get_preset(name).unet)) for name in presets}
        models["diffusers UNet2DModel"] = DiffusersUNet
        record["speed"] = speed_rows(models, device, args.repeats, args.compile, precisions, args.batch_size,
                                     keep=lambda rows: write(record | {"speed": rows}, args.out))
        # The peak drifts between runs (CPU clocks, neighbours): measured again after the models, and
        # the shares are taken against the higher of the two.
        print("peak, again", flush=True)
        record["peak_gflops_after"] = peaks()
        write(record, args.out)  # each section is kept as it ends: a killed run loses only the one under way
    if "sampling" not in skip:
        print("sampling (DDPM-1000 takes minutes on a CPU)", flush=True)
        model, schedule, _ = load_checkpoint()
        torch._dynamo.reset()
        record["sampling"] = bench.bench_sampling(model.to(device), schedule, precision=args.sampling_precision,
                                                  compile=args.compile)
        write(record, args.out)
    if "memory" not in skip and device.type == "cpu":
        record["memory"] = memory_rows(presets, args.data_dir)
    write(record, args.out)
    print(to_markdown(record))


def write(record: dict, out: str) -> None:
    Path(out + ".json").write_text(json.dumps(record, indent=2) + "\n")
    Path(out + ".md").write_text(to_markdown(record))


if __name__ == "__main__":
    main()
