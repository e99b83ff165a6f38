"""The benchmark suite runs end to end on the tiny preset and reports against the targets."""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_suite_writes_json_and_markdown(tmp_path):
    out = tmp_path / "bench"
    subprocess.run([sys.executable, str(ROOT / "benchmarks" / "run.py"), "--out", str(out), "--presets", "tiny",
                    "--repeats", "1", "--skip", "sampling,memory", "--precisions", "fp32", "--batch-size", "8",
                    "--peak-size", "256"], check=True, capture_output=True)  # bf16 is slow on CPUs without bf16 units
    record = json.loads(out.with_suffix(".json").read_text())
    assert record["peak_gflops"]["fp32"] > 0 and record["peak_gflops"]["bf16"] > 0
    models = {r["model"] for r in record["speed"]}
    assert models == {"tiny", "diffusers UNet2DModel"}
    theirs = next(r for r in record["speed"] if r["model"] == "diffusers UNet2DModel")
    assert 1.0e6 < theirs["params"] < 1.2e6 and 0.3 < theirs["gflop_per_image"] < 0.45  # small's size
    table = out.with_suffix(".md").read_text()
    assert "| diffusers UNet2DModel |" in table and "## Targets" in table


def test_rss_job_reports_its_own_peak():
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "rss.py"), "sample", "tiny"], check=True,
                          capture_output=True, text=True)
    row = json.loads(done.stdout.strip().splitlines()[-1])
    assert row["job"] == "sample" and 50 < row["peak_rss_mib"] < 4096


def test_report_leaves_out_training_with_wrong_gradients():
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from report import to_markdown

    row = {"params": 1.1e6, "gflop_per_image": 0.38, "channels_last": False, "denoiser_images_per_s": 100.0}
    speed = [row | {"model": "small", "precision": "bf16", "compile": False, "train_images_per_s": 200.0},
             row | {"model": "small", "precision": "bf16", "compile": True, "train_images_per_s": 900.0,
                    "train_grads_match": False, "train_grad_error": 0.21},
             row | {"model": "small", "precision": "fp32", "compile": False, "train_images_per_s": 100.0},
             row | {"model": "diffusers UNet2DModel", "precision": "bf16", "compile": False,
                    "train_images_per_s": 100.0}]
    record = {"machine": {"gpu": None, "cpu": "x", "threads": 2, "torch": "t", "commit": "c"}, "command": "run",
              "peak_gflops": {"fp32": 100.0, "bf16": 400.0}, "speed": speed}
    table = to_markdown(record)
    assert "900 (wrong gradients: 21% off)" in table
    assert "train images per s: 2.00x" in table  # 200 / 100, not 900 / 100


def test_flops_per_image_do_not_depend_on_the_memory_layout():
    import torch

    from mnistdiff.bench import gflops_per_image
    from mnistdiff.model import UNet, get_preset

    model = UNet(get_preset("tiny").unet)
    plain = gflops_per_image(model)
    # In channels-last the CPU attention kernel is one the FLOP counter does not see (a third of tiny's count).
    assert gflops_per_image(model.to(memory_format=torch.channels_last)) == plain
    weight = model.down[0].res[0].conv1.weight  # the model itself is left as it was
    assert weight.is_contiguous(memory_format=torch.channels_last) and not weight.is_contiguous()


def test_the_guidance_benchmark_scores_a_tiny_conditional_model_with_the_packages_scoring(tmp_path):
    sys.path.insert(0, str(ROOT / "tests"))
    from conftest import make_idx_folder

    data, out = make_idx_folder(tmp_path / "data", n=60), tmp_path / "guidance"
    fixtures = ROOT / "tests" / "data"
    subprocess.run([sys.executable, str(ROOT / "benchmarks" / "guidance.py"), "--checkpoint",
                    str(fixtures / "tiny-cond-checkpoint"), "--baseline", str(fixtures / "tiny-old-checkpoint"),
                    "--scales", "1,3", "--n", "10", "--steps", "2", "--precision", "fp32", "--device", "cpu",
                    "--data-dir", str(data), "--out", str(out)], check=True, capture_output=True)
    rows = json.loads(out.with_suffix(".json").read_text())["rows"]
    assert [(r["model"], r["scale"], r["n"]) for r in rows] == \
        [("conditional", 1.0, 10), ("conditional", 3.0, 10), ("unconditional", None, 10)]
    for r in rows[:2]:  # one image per digit: each digit's share is 0 or 1, their mean the whole share
        assert set(r["accuracy_by_digit"]) <= {0.0, 1.0}
        assert abs(r["accuracy"] - sum(r["accuracy_by_digit"]) / 10) < 1e-12
    assert "accuracy" not in rows[2] and "| conditional | 3 | 10 |" in out.with_suffix(".md").read_text()
