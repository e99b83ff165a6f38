"""Latency of `mnistdiff explore` with the shipped model: a slider move, and the first start.

    python benchmarks/explore_latency.py --data-dir DIR --out benchmarks/results/explore-latency.json

slider: with A's and B's latents cached (as after the first mix), the time from a new weight to
        the decoded mix and its classifier reading, DDIM-10: in process (Explorer.mix) and over
        HTTP to a local server (POST /api/mix: JSON both ways, as the page sends it);
start:  `mnistdiff explore` as a new process: seconds until it answers, until the page's first
        picture (16 DDIM-10 samples) and until the first mix (two inversions and a decode), in
        the order the page asks for them; with --browser, the same seen by headless Chromium;
with --guidance S (a conditional checkpoint: --checkpoint conditional), each slider move decodes
        towards the digit 8 with guidance S: one model call of a doubled batch per step;
with --fast, each slider move decodes with the explorer's student (--student PATH, default the shipped
        one beside the shipped model) in its own few calls; the latents stay the teacher's;
invert: a new digit inverted (DDIM-10, refined by --inversion-iterations K: 10 (1 + K) model
        calls) and decoded, as the page's first look at a digit.
The target is 300 ms from a slider move to the new picture on 2 CPU cores, 100 ms with the student.
Timings on a machine busy with other work are not measurements: the JSON records the load average.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))  # explore_support: a live server on a free port


def two_digits(explorer) -> tuple[list[int], list[int]]:
    """A 2 and a 5 from the test set when the explorer has it, else two drawn strokes."""
    if explorer.digit_labels is not None:
        labels = explorer.digit_labels.tolist()
        return tuple(explorer.digit_images[labels.index(d)].flatten().tolist() for d in (2, 5))
    a, b = [0] * 784, [0] * 784
    for r in range(6, 22):
        a[r * 28 + 14] = b[14 * 28 + r] = 255
    return a, b


def summary(seconds: list[float]) -> dict:
    ms = sorted(1000 * s for s in seconds)
    return {"median_ms": round(statistics.median(ms), 1), "p90_ms": round(ms[int(0.9 * (len(ms) - 1))], 1),
            "max_ms": round(ms[-1], 1), "runs": len(ms)}


TARGET = 8  # the digit a guided slider move decodes towards: what 2 + 5 is asked to make


def slider(explorer, repeats: int, rules: list[str], guidance: float | None = None, fast: bool = False) -> dict:
    """Each move timed in process and over HTTP in turn, so that both see the same load; with
    `guidance`, each decode guided towards TARGET; with `fast`, decoded by the student."""
    import httpx
    from explore_support import live_server

    a, b = two_digits(explorer)
    weights = [0.3 + 0.4 * i / max(repeats - 1, 1) for i in range(repeats)]
    condition = {"fast": True} if fast else {} if guidance is None else {"label": TARGET, "guidance": guidance}
    out = {}
    with live_server(explorer) as (url, _), httpx.Client(base_url=url, timeout=60) as client:
        for rule in rules:
            explorer.mix(a, b, rule, 0.5, steps=10)  # inverts A and B once: later moves only decode
            times = {"in_process": [], "http": []}
            for w in weights:
                start = time.perf_counter()
                explorer.mix(a, b, rule, w, steps=10, **condition)
                times["in_process"].append(time.perf_counter() - start)
                start = time.perf_counter()
                body = {"a": a, "b": b, "rule": rule, "weight": w, "steps": 10, **condition}
                client.post("/api/mix", json=body).raise_for_status()
                times["http"].append(time.perf_counter() - start)
            out[rule] = {k: summary(v) for k, v in times.items()}
    return out


def fast_fidelity(explorer, n: int = 100, steps: int = 10) -> dict:
    """How far the student's decode of an inverted latent lies from the teacher's: the first n test
    digits inverted as the page inverts them (DDIM-`steps`, the explorer's refinement), decoded by
    the teacher's DDIM-`steps` and by the student; per-pixel MSE on [0, 1] to the inputs, and the
    share the classifier reads as the input's label."""
    from mnistdiff.data import to_model_range
    from mnistdiff.explore.service import _decode, _invert, _student_sample

    if explorer.digit_images is None:
        return {}
    x0, labels = to_model_range(explorer.digit_images[:n]), explorer.digit_labels[:n]
    with torch.no_grad():
        latents = _invert(explorer.model, explorer.schedule, x0, steps, explorer.inversion_iterations)
        decoded = {"teacher": _decode(explorer.model, explorer.schedule, latents, steps),
                   "student": _student_sample(explorer.student, explorer.schedule, latents, None,
                                              torch.Generator().manual_seed(0), False)}
        out = {"images": len(x0), "steps": steps}
        for name, x in decoded.items():
            x = x.clamp(-1, 1)
            out[name] = {"mse": round(float(((x - x0) / 2).pow(2).mean()), 6),
                         "read_as_input": float((explorer.classifier(x).argmax(1) == labels).double().mean())}
    return out


def inversion(explorer, repeats: int) -> dict:
    """Explorer.invert of `repeats` digits it has not seen: each one's inversion is computed, not cached."""
    a, b = two_digits(explorer)
    seconds = []
    for i in range(repeats):
        image = list(a)
        image[i % 784] = (image[i % 784] + 1 + i // 784) % 256  # one grey level off: a new hash, a new inversion
        start = time.perf_counter()
        explorer.invert(image, steps=10)
        seconds.append(time.perf_counter() - start)
    return summary(seconds)


def first_start(checkpoint: str | None, threads: int, data_dir: str | None, browser: bool,
                screenshot: str | None, iterations: int = 0) -> dict:
    import httpx
    from explore_support import free_port

    port = free_port()
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), PYTHONPATH=str(ROOT / "src"))
    command = [sys.executable, "-m", "mnistdiff", "explore", "--port", str(port), "--device", "cpu"]
    command += ["--data-dir", data_dir] if data_dir else []
    command += ["--checkpoint", checkpoint] if checkpoint else []
    command += ["--inversion-iterations", str(iterations)]
    url = f"http://127.0.0.1:{port}"
    start = time.perf_counter()
    proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL)
    try:
        while True:
            try:
                info = httpx.get(url + "/api/info", timeout=5).json()
                break
            except httpx.TransportError:
                if proc.poll() is not None or time.perf_counter() - start > 120:
                    raise RuntimeError("the explorer did not start")
                time.sleep(0.05)
        out = {"answers_s": round(time.perf_counter() - start, 2)}
        httpx.post(url + "/api/sample", json={"n": 16, "steps": 10}, timeout=120).raise_for_status()
        out["first_picture_s"] = round(time.perf_counter() - start, 2)
        if info["digits"]:
            digits = httpx.get(url + "/api/digits", params={"count": 40}, timeout=60).json()["digits"]
            a, b = (next(d["pixels"] for d in digits if d["label"] == x) for x in (2, 5))
            httpx.post(url + "/api/mix", json={"a": a, "b": b, "steps": 10}, timeout=120).raise_for_status()
            out["first_mix_s"] = round(time.perf_counter() - start, 2)
        if browser:
            out["browser"] = page_load(url, bool(info["digits"]), screenshot)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    return out


def page_load(url: str, digits: bool, screenshot: str | None) -> dict:
    """Seconds from opening the page (server warm) to its first picture and, with digits, its first mix;
    then, if asked, a screenshot with the mix's trajectory shown."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=shutil.which("chromium"), args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1000, "height": 900})
        start = time.perf_counter()
        page.goto(url)
        page.wait_for_function("document.querySelectorAll('#grid figure').length > 0", timeout=120_000)
        out = {"first_picture_s": round(time.perf_counter() - start, 2)}
        if digits:
            page.wait_for_function("document.querySelector('#mix-reading').textContent.startsWith('w =')",
                                   timeout=120_000)
            out["first_mix_s"] = round(time.perf_counter() - start, 2)
        if screenshot:
            if digits:
                page.click("#traj-mix")
                page.wait_for_function("document.querySelectorAll('#strip figure').length > 2", timeout=120_000)
            page.screenshot(path=screenshot, full_page=True)
            small(screenshot)
        browser.close()
    return out


def small(path: str) -> None:
    """Rewrite a PNG with a 64-colour palette: the page is mostly grey, and the docs keep it small."""
    from PIL import Image

    Image.open(path).convert("RGB").quantize(64).save(path, optimize=True)


def command_line(argv: list[str]) -> str:
    """The command as run, with the data folder written as DIR: it names a place on this machine only."""
    shown = ["DIR" if i > 0 and argv[i - 1] == "--data-dir" else a.split("=")[0] + "=DIR"
             if a.startswith("--data-dir=") else a for i, a in enumerate(argv)]
    return " ".join(["python", "benchmarks/explore_latency.py", *shown])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--checkpoint", help="default: the shipped model")
    p.add_argument("--data-dir", help="folder with the MNIST test set (else $MNISTDIFF_DATA; else drawn strokes)")
    p.add_argument("--threads", type=int, default=1, help="torch threads (the explore command's: 1)")
    p.add_argument("--repeats", type=int, default=20, help="slider moves per rule")
    p.add_argument("--rules", default="slerp,linear,linear-norm")
    p.add_argument("--browser", action="store_true", help="also time the page in headless system Chromium")
    p.add_argument("--screenshot", help="with --browser: also save the page as this PNG")
    p.add_argument("--inversion-iterations", type=int, default=None, metavar="K",
                   help="the explorer's refinement of each inversion step (0: plain DDIM inversion; "
                        "default: the explorer's own)")
    p.add_argument("--guidance", type=float, metavar="S",
                   help=f"time slider moves decoding towards a {TARGET} with guidance S (a conditional checkpoint)")
    p.add_argument("--fast", action="store_true", help="time slider moves decoded by the explorer's student")
    p.add_argument("--student", default="fast", help="the explorer's student (default: the shipped one, fast)")
    p.add_argument("--out", default="explore-latency.json")
    args = p.parse_args()

    from mnistdiff.explore import Explorer
    from mnistdiff.explore.service import INVERSION_ITERATIONS

    if args.inversion_iterations is None:
        args.inversion_iterations = INVERSION_ITERATIONS

    torch.set_num_threads(args.threads)
    load_before = os.getloadavg()
    explorer = Explorer.from_checkpoint(args.checkpoint, data_dir=args.data_dir, device="cpu",
                                        inversion_iterations=args.inversion_iterations, student=args.student)
    if args.fast and explorer.student is None:
        p.error("--fast needs a student: the shipped one beside the shipped model, or --student PATH")
    if args.guidance is not None and not explorer.info()["classes"]:
        p.error(f"--guidance needs a conditional model; {explorer.name} has no labels (--checkpoint conditional)")
    record = {
        "command": command_line(sys.argv[1:]),
        "model": explorer.name, "torch": torch.__version__, "threads": args.threads, "cpus": os.cpu_count(),
        "load_average_before": [round(x, 2) for x in load_before],
        "inversion_iterations": args.inversion_iterations,
        "guidance": args.guidance, "label": None if args.guidance is None else TARGET,
        "student": explorer.info()["student"] if args.fast else None,
        "slider_ddim10": slider(explorer, args.repeats, args.rules.split(","), args.guidance, args.fast),
        "invert_ddim10": inversion(explorer, max(args.repeats // 4, 1)),
        "fast_decode_fidelity": fast_fidelity(explorer) if args.fast else None,
        "start": first_start(args.checkpoint, args.threads, args.data_dir, args.browser, args.screenshot,
                             args.inversion_iterations),
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
        "target_ms": 100 if args.fast else 300,
    }
    Path(args.out).write_text(json.dumps(record, indent=2) + "\n")
    print(json.dumps(record, indent=2))


if __name__ == "__main__":
    main()
