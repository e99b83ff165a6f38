"""Random bytes as data and checkpoint files, random command lines: exit 0 or 2, never a traceback.

The long work itself (training steps, sampling) is replaced by stubs: what is fuzzed is everything
that reads arguments and files before it.
"""

import shutil
from pathlib import Path

import pytest
import torch

from conftest import make_idx_folder
from mnistdiff import generation
from mnistdiff.cli import experiment_commands, main
from mnistdiff.training import loop

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

SETTINGS = settings(max_examples=30, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Path:
    """A data folder and a run with two checkpoints, made once."""
    root = tmp_path_factory.mktemp("world")
    make_idx_folder(root / "data", n=32)
    assert main(["train", "--preset", "tiny", "--steps", "4", "--checkpoint-every", "2", "--sample-every", "1000",
                 "--data-dir", str(root / "data"), "--out", str(root / "run")]) == 0
    (root / "a-file.txt").write_text("hello\n")
    return root


@pytest.fixture
def stubs(monkeypatch, tmp_path):
    """No training steps and no sampling: the stubs stand in for the minutes of work. Default
    outputs (samples.png, latents.npz, ...) go to a temporary folder."""
    monkeypatch.chdir(tmp_path)
    def fake_images(model, schedule, n, **kwargs):
        return torch.zeros(min(n, 64), 1, 28, 28, dtype=torch.uint8)

    monkeypatch.setattr(generation, "generate", fake_images)
    monkeypatch.setattr(loop, "_loop", lambda run, *args, **kwargs: run.out)
    monkeypatch.setattr(experiment_commands, "ddim_invert", lambda model, x0, *a, **k: torch.zeros_like(x0))
    monkeypatch.setattr(experiment_commands, "sample_ddim", lambda model, x, *a, **k: torch.zeros_like(x))
    monkeypatch.setattr(experiment_commands, "merge", lambda *a, **k: {})
    monkeypatch.setattr(experiment_commands.figures, "panel_figure", lambda *a, **k: None)


def finished_cleanly(code: int, capsys) -> None:
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert code in (0, 2), err[-2000:]
    if code == 2:
        assert err.strip().splitlines()[-1].startswith("mnistdiff: error: "), err[-2000:]


IDX_HEADERS = st.sampled_from([b"", b"\x00\x00\x08\x03", b"\x00\x00\x08\x01", b"\x1f\x8b\x08\x00", b"\x00\x00\x08\x03"
                               b"\x00\x00\x00\x02\x00\x00\x00\x1c\x00\x00\x00\x1c"])


@SETTINGS
@given(images=st.tuples(IDX_HEADERS, st.binary(max_size=3000)), labels=st.tuples(IDX_HEADERS, st.binary(max_size=40)),
       gz=st.booleans())
def test_random_idx_files(world, tmp_path, stubs, capsys, images, labels, gz):
    data = tmp_path / "data"
    shutil.rmtree(data, ignore_errors=True)
    data.mkdir()
    suffix = ".gz" if gz else ""
    (data / f"train-images-idx3-ubyte{suffix}").write_bytes(b"".join(images))
    (data / f"train-labels-idx1-ubyte{suffix}").write_bytes(b"".join(labels))
    out = tmp_path / "run"
    shutil.rmtree(out, ignore_errors=True)
    finished_cleanly(main(["train", "--preset", "tiny", "--data-dir", str(data), "--out", str(out)]), capsys)


CHECKPOINT_FILES = ["weights.safetensors", "config.json", "state.json", "state.safetensors", "checksums.json"]


@SETTINGS
@given(name=st.sampled_from(CHECKPOINT_FILES + ["latest"]), how=st.sampled_from(["random", "truncate", "flip"]),
       payload=st.binary(max_size=600), at=st.integers(0, 10**6), unlisted=st.booleans())
def test_random_checkpoint_files(world, tmp_path, stubs, capsys, name, how, payload, at, unlisted):
    run = tmp_path / "run"
    shutil.rmtree(run, ignore_errors=True)
    shutil.copytree(world / "run", run)
    target = run / "checkpoints" / ("latest" if name == "latest" else "step_0000004/" + name)
    original = target.read_bytes()
    if how == "random":
        damaged = payload
    elif how == "truncate":
        damaged = original[: at % (len(original) + 1)]
    else:
        damaged = bytearray(original)
        damaged[at % len(original)] ^= 1 + at % 255
        damaged = bytes(damaged)
    target.write_bytes(damaged)
    if unlisted and target.name != "checksums.json":  # so that the readers themselves must notice
        (run / "checkpoints" / "step_0000004" / "checksums.json").unlink()
    data = ["--data-dir", str(world / "data")]
    for argv in (["sample", "--checkpoint", str(run), "--n", "2", "--out", str(tmp_path / "s.png")],
                 ["train", "--preset", "tiny", *data, "--out", str(run), "--resume", "--steps", "6"],
                 ["export", "--checkpoint", str(run), "--out", str(tmp_path / "exported")],
                 ["invert", "--decode", str(target), "--checkpoint", str(run), "--out", str(tmp_path / "g.png")],
                 ["fid", "--npz", str(target)]):
        finished_cleanly(main(argv), capsys)


VALUES = ["0", "1", "-1", "2", "3.5", "1e6", "1e-12", "inf", "-inf", "nan", "x", "", "99999999999999999999",
          "--", "-", "ddim", "cosine", "bf16", "cpu"]
FLAGS = {
    "train": ["--preset", "--steps", "--minutes", "--batch-size", "--lr", "--lr-decay", "--min-snr-gamma",
              "--precision", "--sample-every", "--checkpoint-every", "--fid-every", "--fid-images", "--seed",
              "--skip-nonfinite", "--resume", "--init-from", "--out", "--device"],
    "sample": ["--checkpoint", "--sampler", "--steps", "--eta", "--spacing", "--t-end", "--seed", "--batch-size",
               "--n", "--out", "--npz", "--yes", "--raw-weights", "--precision", "--no-clip"],
    "invert": ["--decode", "--checkpoint", "--steps", "--out"],
    "merge": ["--rule", "--weights", "--checkpoint", "--steps", "--out", "--target", "--guidance", "--invert-with"],
    "export": ["--checkpoint", "--out"],
}


@SETTINGS
@given(command=st.sampled_from(sorted(FLAGS)), data=st.data())
def test_random_command_lines(world, tmp_path, stubs, capsys, command, data):
    paths = [str(world / "run"), str(world / "a-file.txt"), str(tmp_path), str(tmp_path / "missing" / "x"),
             str(tmp_path / "new.png"), str(world / "run" / "checkpoints" / "step_0000002"), "3", "12"]
    tokens = data.draw(st.lists(st.one_of(st.sampled_from(FLAGS[command]), st.sampled_from(VALUES),
                                          st.sampled_from(paths)), max_size=8))
    argv = [command, *tokens]
    if command == "train":  # a new folder each time, tiny data, and a tiny model unless the draw says otherwise
        argv += ["--data-dir", str(world / "data")]
        if "--out" not in tokens:
            argv += ["--out", str(tmp_path / "runs" / str(len(list(tmp_path.glob("runs/*")))))]
    if command in ("sample", "invert", "merge") and "--checkpoint" not in tokens:
        argv += ["--checkpoint", str(world / "run")]
    if command in ("invert", "merge"):
        argv += ["--data-dir", str(world / "data")]
    finished_cleanly(main(argv), capsys)
