"""The public surface: one sampler signature and its registry, the top-level names, the CLI's flags."""

import argparse
import dataclasses
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from exact import GaussianData
from mnistdiff.diffusion import linear_schedule
from mnistdiff.generation import generate
from mnistdiff.model import UNet, get_preset
from mnistdiff.model.presets import TrainConfig, option
from mnistdiff.samplers import SAMPLERS, levels, register

SCHEDULE = linear_schedule()
ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("name", list(SAMPLERS))
def test_every_sampler_lands_on_one_point_data_through_the_same_call(name):
    x_star = torch.rand((1, 1, 4, 4), generator=torch.Generator().manual_seed(0), dtype=torch.float64) * 2 - 1
    model = GaussianData(SCHEDULE, x_star, 0.0)
    x_T = torch.randn((3, 1, 4, 4), dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    grid, seen = levels(SCHEDULE.T, SCHEDULE), []
    x0 = SAMPLERS[name](model, x_T, SCHEDULE, grid, generator=torch.Generator().manual_seed(2), clip_x0=False,
                        callback=lambda t, x, x0_pred: seen.append((t, x0_pred)), progress=False)
    torch.testing.assert_close(x0, x_star.expand_as(x0), atol=1e-8, rtol=0)
    assert [t for t, _ in seen] == grid[1:]  # one call after each step, down to clean data
    torch.testing.assert_close(seen[-1][1], x_star.expand_as(x0), atol=1e-8, rtol=0)


@pytest.mark.parametrize("name", list(SAMPLERS))
def test_progress_bars_end_at_their_total(name, capsys):
    model = GaussianData(SCHEDULE, 0.0, 0.5)
    n = SCHEDULE.T if name == "ddpm" else 10
    SAMPLERS[name](model, torch.zeros(1, 1, 2, 2, dtype=torch.float64), SCHEDULE, levels(n, SCHEDULE), progress=True)
    assert f"{n}/{n}" in capsys.readouterr().err


def test_a_registered_sampler_serves_generate():
    calls = []

    def middle_grey(model, x, schedule, levels, *, generator=None, clip_x0=False, callback=None, progress=False,
                    shade=0.0):
        calls.append((levels, clip_x0, shade))
        return torch.full_like(x, shade)

    register("grey", middle_grey)
    try:
        model = UNet(get_preset("tiny").unet)
        images = generate(model, SCHEDULE, 5, sampler="grey", steps=4, spacing="quadratic", batch_size=3, shade=0.5)
        assert images.shape == (5, 1, 28, 28) and (images == 191).all()  # 0.5 in [-1, 1] is grey level 191
        assert calls == [(levels(4, SCHEDULE, "quadratic"), True, 0.5)] * 2  # two batches
        with pytest.raises(ValueError, match="no option"):
            generate(model, SCHEDULE, 1, sampler="grey", eta=1.0)
    finally:
        SAMPLERS.pop("grey")


def test_top_level_names_load_lazily():
    code = ("import sys, mnistdiff; assert 'torch' not in sys.modules, 'import mnistdiff loads torch'; "
            "from mnistdiff import (UNet, linear_schedule, cosine_schedule, levels, SAMPLERS, ddim_invert, "
            "generate, train, load_checkpoint); print(sorted(SAMPLERS), levels(2, linear_schedule()))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=_env())
    assert out.stdout.strip() == "['consistency', 'ddim', 'ddpm', 'dpm-solver', 'dpm-solver-sde', 'edm', 'heun'] [500, 0, -1]"


def test_loading_a_model_does_not_import_training():
    code = ("import sys; from mnistdiff import load_checkpoint; model, schedule, config = load_checkpoint(); "
            "import mnistdiff.cli; print(sorted(m for m in sys.modules if m.startswith('mnistdiff.training')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=_env())
    assert out.stdout.strip() == "[]"


def test_the_api_example_runs_and_reconstructs():
    """With 20 steps instead of 50, to be quick."""
    out = subprocess.run([sys.executable, str(ROOT / "examples" / "api.py"), "20"], capture_output=True, text=True,
                         check=True, env=_env())
    error = float(out.stdout.split("reconstruction error: ")[1].split()[0])
    assert 0 < error < 0.05  # 0.043 here; on test images 0.017 (docs/results/reconstruction-10-200.md)


def _env() -> dict:
    return os.environ | {"PYTHONPATH": str(ROOT / "src"), "OMP_NUM_THREADS": "1"}


def _subparsers(parser: argparse.ArgumentParser) -> dict:
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return action.choices


def test_every_option_of_every_command_has_help_and_shows_its_default():
    from mnistdiff.cli.parser import build_parser

    for name, sub in _subparsers(build_parser()).items():
        for action in sub._actions:
            if not isinstance(action, argparse._HelpAction):
                assert action.help, f"mnistdiff {name} {'/'.join(action.option_strings) or action.dest}: no help"
    text = _subparsers(build_parser())["sample"].format_help()
    assert "(default: 50;" in text and "(default: dpm-solver-sde," in text and "seed + k) (default: 0)" in text


def test_a_new_train_config_field_is_a_documented_working_flag(monkeypatch):
    """Declaring the field is all it takes: the parser and the mapping handed to train() follow."""
    from mnistdiff.cli import arguments, commands, parser

    @dataclasses.dataclass(frozen=True)
    class WithKnob(TrainConfig):
        knob: int = option(3, "a setting added later", minimum=1)

    monkeypatch.setattr(arguments, "TrainConfig", WithKnob)  # as if TrainConfig had the field
    train_parser = _subparsers(parser.build_parser())["train"]
    assert "a setting added later (default: 3)" in " ".join(train_parser.format_help().split())
    handed = {}
    monkeypatch.setattr("mnistdiff.training.train", lambda out, **kwargs: handed.update(kwargs) or out)
    commands.cmd_train(parser.build_parser().parse_args(["train", "--out", "x", "--knob", "5", "--lr", "0.1"]))
    assert handed["knob"] == 5 and handed["lr"] == 0.1 and handed["steps"] is None
    config = dataclasses.replace(WithKnob(), **{k: v for k, v in handed.items() if k in ("knob", "lr")})
    assert config.knob == 5
    with pytest.raises(ValueError, match="--knob must be at least 1"):
        WithKnob(knob=0)
