"""bf16 only where the device multiplies it in hardware: "auto" picks it there and fp32 elsewhere,
and every record names the precision that ran, never "auto"."""

import json

import pytest
import torch

from mnistdiff import bench, loading, precision
from mnistdiff.cli import main
from mnistdiff.model import TrainConfig
from mnistdiff.report.settings import QUICK
from mnistdiff.runtime import Runner, prepare


@pytest.fixture(params=[True, False], ids=["bf16-units", "no-bf16-units"])
def units(request, monkeypatch):
    monkeypatch.setattr(precision, "native_bf16", lambda device_type="cpu": request.param)
    return request.param


def test_auto_picks_bf16_exactly_where_the_device_has_bf16_units(units):
    assert precision.pick_precision("auto") == ("bf16" if units else "fp32")
    assert precision.pick_precision("fp32") == "fp32" and precision.pick_precision("bf16") == "bf16"
    with precision.autocast("auto"):
        y = torch.nn.functional.linear(torch.randn(2, 4), torch.randn(3, 4))
    assert y.dtype == (torch.bfloat16 if units else torch.float32)


def test_an_unknown_precision_is_refused():
    with pytest.raises(ValueError, match="unknown precision 'fp16'"):
        precision.pick_precision("fp16")


def test_the_cpu_check_answers_without_failing():
    assert isinstance(precision.native_bf16("cpu"), bool)
    assert precision.native_bf16("meta") is False


def test_training_and_the_report_default_to_auto():
    assert TrainConfig().precision == "auto" and QUICK.precision == "auto"


def test_a_run_records_the_precision_it_trained_in(units, idx_folder, tmp_path):
    out = tmp_path / "run"
    assert main(["train", "--preset", "tiny", "--precision", "auto", "--steps", "2", "--data-dir", str(idx_folder),
                 "--out", str(out)]) == 0
    config = json.loads((loading.find(out) / "config.json").read_text())
    assert config["train"]["precision"] == ("bf16" if units else "fp32")


def test_prepare_and_the_benchmark_name_what_runs(units):
    model = torch.nn.Linear(4, 4)
    runner = prepare(model, precision="auto")
    assert (isinstance(runner, Runner) and runner.precision == "bf16") if units else runner is model
    result = bench.bench_preset("tiny", batch_size=2, precision="auto", repeats=1, warmup=1)
    assert result["precision"] == ("bf16" if units else "fp32")
