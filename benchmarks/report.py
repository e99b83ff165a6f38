"""The benchmark record as Markdown, with the project's speed targets checked against it."""

from __future__ import annotations

from mnistdiff.markdown import table

THEIRS = "diffusers UNet2DModel"


def _layout(row: dict) -> str:
    names = (["channels-last"] if row["channels_last"] else []) + (["compile"] if row["compile"] else [])
    return " + ".join(names) or "plain"


def _peak(record: dict) -> dict:
    """The higher of the peaks measured before and after the models (the stricter share)."""
    after = record.get("peak_gflops_after", record["peak_gflops"])
    return {prec: max(value, after[prec]) for prec, value in record["peak_gflops"].items()}


def _speed_table(record: dict) -> list[str]:
    peak = _peak(record)
    headers = ["model", "params", "GFLOP/img", "precision", "layout", "train img/s", "denoiser img/s",
               "denoiser GFLOP/s", "share of matmul peak"]
    rows = []
    for r in record["speed"]:
        achieved = r["denoiser_images_per_s"] * r["gflop_per_image"]
        train = f"{r['train_images_per_s']:.0f}"
        if r.get("train_grads_match") is False:
            train = f"{train} (wrong gradients: {r['train_grad_error']:.0%} off)"
        rows.append([r["model"], f"{r['params'] / 1e6:.2f}M", f"{r['gflop_per_image']:.3f}", r["precision"],
                     _layout(r), train, f"{r['denoiser_images_per_s']:.0f}", f"{achieved:.0f}",
                     f"{achieved / peak[r['precision']]:.0%}"])
    return table(headers, rows).splitlines()


def _best(rows: list[dict], model: str, key: str) -> dict:
    """The fastest row of `model` for `key`; for training, only settings whose gradients are right."""
    valid = [r for r in rows if r["model"] == model
             and not (key == "train_images_per_s" and r.get("train_grads_match") is False)]
    return max(valid, key=lambda r: r[key])


def _targets(record: dict) -> list[str]:
    checks = []
    rows = record.get("speed", [])
    if any(r["model"] == "small" for r in rows) and any(r["model"] == THEIRS for r in rows):
        ours, theirs = _best(rows, "small", "train_images_per_s"), _best(rows, THEIRS, "train_images_per_s")
        ratio = ours["train_images_per_s"] / theirs["train_images_per_s"]
        checks.append((f"small trains at >= 1.5x diffusers' images/s (best of each: {ours['precision']} "
                       f"{_layout(ours)} vs {theirs['precision']} {_layout(theirs)})", f"{ratio:.2f}x", ratio >= 1.5))
        for precision in ("bf16", "fp32"):  # the fastest setting in each precision, against that peak
            if not any(r["model"] == "small" and r["precision"] == precision for r in rows):
                continue
            den = _best([r for r in rows if r["precision"] == precision], "small", "denoiser_images_per_s")
            share = den["denoiser_images_per_s"] * den["gflop_per_image"] / _peak(record)[precision]
            checks.append((f"small's denoiser reaches >= 60% of the {precision} matmul peak ({_layout(den)}, "
                           f"{den['denoiser_images_per_s']:.0f} img/s)", f"{share:.1%}", share >= 0.6))
    if "sampling" in record:
        ratio = record["sampling"]["ratio"]
        checks.append(("DDPM-1000 / DDIM-50 time >= 19", f"{ratio:.1f}", ratio >= 19))
    for r in record.get("memory", []):
        if r["preset"] == "small":
            limit = 2048 if r["job"] == "train" else 1024
            checks.append((f"small {r['job']} peak RSS < {limit} MiB", f"{r['peak_rss_mib']:.0f} MiB",
                           r["peak_rss_mib"] < limit))
    return table(["target", "measured", "met"],
                 [[what, value, "yes" if ok else "NO"] for what, value, ok in checks]).splitlines()


def to_markdown(record: dict) -> str:
    m, peak = record["machine"], record["peak_gflops"]
    lines = [f"# Benchmarks: {m['gpu'] or m['cpu']}, {m['threads']} threads, torch {m['torch']}", "",
             f"Commit {m['commit']}; `{record['command']}`.", "",
             f"Matmul peak ({record.get('peak_size', 2048)} x {record.get('peak_size', 2048)}): {peak['fp32']:.0f} GFLOP/s fp32, {peak['bf16']:.0f} GFLOP/s bf16.", ""]
    if "peak_gflops_after" in record:
        after = record["peak_gflops_after"]
        lines[-1:-1] = [f"Measured again after the models: {after['fp32']:.0f} fp32, {after['bf16']:.0f} bf16; "
                        "shares below are of the higher of the two."]
    if "speed" in record:
        batch = record["speed"][0].get("batch_size", 64)
        lines += [f"## Throughput (batch {batch}; medians of timed steps after warm-up)", "", *_speed_table(record), "",
                  "A training step costs about 3x the forward FLOPs.", ""]
        small, theirs = [r for r in record["speed"] if r["model"] == "small"], \
            [r for r in record["speed"] if r["model"] == THEIRS]
        if small and theirs:
            for key in ("train_images_per_s", "denoiser_images_per_s"):
                ratio = _best(small, "small", key)[key] / _best(theirs, THEIRS, key)[key]
                lines.append(f"- ours / diffusers, best setting of each, {key.replace('_', ' ')}: {ratio:.2f}x")
            lines.append("")
    if "sampling" in record:
        s = record["sampling"]
        how = s["precision"] + (", compiled" if s.get("compile") else "")
        times = [[f"DDPM, {s['ddpm_steps']} steps", f"{s['ddpm_s']:.1f}"],
                 [f"DDIM, {s['ddim_steps']} steps", f"{s['ddim_s']:.2f}"], ["ratio", f"{s['ratio']:.1f}"]]
        lines += [f"## Sampling the shipped model, batch {s['batch_size']}, {how}", "",
                  *table(["sampler", "seconds"], times).splitlines(), ""]
        if "ddim_runs_s" in s:
            lines += [f"DDIM's time is the median of {len(s['ddim_runs_s'])} runs, half before DDPM's run and half after.",
                      ""]
    if "memory" in record:
        memory = [[r["preset"], r["job"], r["data"], f"{r['peak_rss_mib']:.0f}"] for r in record["memory"]]
        lines += ["## Peak resident memory (each job alone in a fresh process)", "",
                  *table(["preset", "job", "data", "peak RSS (MiB)"], memory).splitlines(), ""]
    where = " (set for the 2-core CPU; shown for reference)" if m.get("gpu") else ""
    return "\n".join(lines + [f"## Targets{where}", "", *_targets(record)]) + "\n"
