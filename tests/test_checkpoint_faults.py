"""Checkpoints under attack and damage: nothing is unpickled, damaged files are named, resume falls back."""

import errno
import json
import os
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from conftest import make_idx_folder
from mnistdiff import files, load_checkpoint, loading
from mnistdiff.cli import main
from mnistdiff.training import checkpoint

FAST = ["--preset", "tiny", "--checkpoint-every", "10", "--sample-every", "1000"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> tuple[Path, Path]:
    """(data folder, run folder with checkpoints at steps 10 and 20), made once for this file."""
    root = tmp_path_factory.mktemp("trained")
    data = make_idx_folder(root / "data")
    assert main(["train", *FAST, "--steps", "20", "--data-dir", str(data), "--out", str(root / "run")]) == 0
    return data, root / "run"


@pytest.fixture
def run(trained, tmp_path) -> Path:
    shutil.copytree(trained[1], tmp_path / "run")
    return tmp_path / "run"


def resume(run: Path, data: Path, steps: int = 21) -> int:
    return main(["train", *FAST, "--steps", str(steps), "--data-dir", str(data), "--out", str(run), "--resume"])


class Payload:
    """Unpickling this writes a marker file: what a hostile state.pt could do."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return exec, (f"open({str(self.marker)!r}, 'w').write('ran')",)


def test_a_state_pt_is_never_unpickled(trained, run, tmp_path, capsys):
    marker = tmp_path / "payload-ran"
    latest = loading.find(run)
    step = checkpoint.read_state(latest)["step"]
    for name in ("state.json", "state.safetensors", "checksums.json"):
        (latest / name).unlink()
    torch.save({"step": step, "optimizer": Payload(marker)}, tmp_path / "state.pt")
    shutil.copy(tmp_path / "state.pt", latest / "state.pt")
    capsys.readouterr()
    assert main(["export", "--checkpoint", str(run), "--out", str(tmp_path / "exported")]) == 2
    assert "state.json: missing" in capsys.readouterr().err and not (tmp_path / "exported").exists()
    # Resume skips this checkpoint, with a warning naming it, and goes on from the older one.
    assert resume(run, trained[0]) == 0
    assert "skipped checkpoint step_0000020" in capsys.readouterr().err
    assert not marker.exists()
    torch.load(tmp_path / "state.pt", weights_only=False)  # live: unpickled, it runs
    assert marker.read_text() == "ran"


def test_shipped_files_are_checked_against_their_checksums(tmp_path, monkeypatch):
    files.verify_checksums(loading.DEFAULT_MODEL)
    copy = tmp_path / "small-mnist"
    shutil.copytree(loading.DEFAULT_MODEL, copy)
    load_checkpoint(copy)
    _flip_byte(copy / "weights.safetensors", -100)
    with pytest.raises(loading.CheckpointError, match="weights.safetensors: SHA-256 differs"):
        load_checkpoint(copy)

    from mnistdiff.evaluation import classifier, reference

    assets = tmp_path / "assets"
    shutil.copytree(classifier.asset("x").parent, assets)
    monkeypatch.setattr(classifier, "asset", lambda name: assets / name)
    monkeypatch.setattr(reference, "asset", lambda name: assets / name)
    classifier.load_classifier("mnist")
    reference.load_reference("mnist")
    _flip_byte(assets / "classifier-mnist.safetensors", -10)
    with pytest.raises(files.ChecksumError, match="classifier-mnist.safetensors: SHA-256 differs"):
        classifier.load_classifier("mnist")
    (assets / "stats-mnist.json").write_text("{}")
    with pytest.raises(files.ChecksumError, match="stats-mnist.json"):
        reference.load_reference("mnist")


def test_a_classifier_from_a_folder_is_checked_like_the_shipped_one(tmp_path):
    from mnistdiff.evaluation import classifier

    folder = tmp_path / "clf"
    shutil.copytree(classifier.asset("x").parent, folder)
    shipped, _ = classifier.load_classifier("mnist")
    loaded, record = classifier.load_classifier("mnist", folder)
    assert record["test_accuracy"] > 0.99
    assert all(torch.equal(a, b) for a, b in zip(shipped.state_dict().values(), loaded.state_dict().values()))
    _flip_byte(folder / "classifier-mnist.safetensors", -10)
    with pytest.raises(files.ChecksumError, match="classifier-mnist.safetensors: SHA-256 differs"):
        classifier.load_classifier("mnist", folder)
    with pytest.raises(FileNotFoundError, match="no classifier at"):
        classifier.load_classifier("mnist", tmp_path / "none")


def _flip_byte(path: Path, at: int) -> None:
    payload = bytearray(path.read_bytes())
    payload[at] ^= 0xFF
    path.write_bytes(bytes(payload))


def _wrong_shape(folder: Path) -> None:
    tensors = load_file(folder / "weights.safetensors")
    name = next(k for k in tensors if k.startswith("ema.") and tensors[k].dim() == 4)
    tensors[name] = torch.zeros(3, 3)
    save_file(tensors, folder / "weights.safetensors")
    (folder / "checksums.json").unlink()  # a consistent file of the wrong model, not a damaged one


DAMAGE = {
    "truncated weights": (lambda f: _truncate(f / "weights.safetensors"), "weights.safetensors: not a readable"),
    "empty weights": (lambda f: _unlisted(f, "weights.safetensors", b""), "weights.safetensors: empty file"),
    "one byte of the weights changed": (lambda f: _flip_byte(f / "weights.safetensors", -7), "SHA-256"),
    "garbage config": (lambda f: _unlisted(f, "config.json", b"\x00{garbage"), "config.json: not valid JSON"),
    "config not UTF-8": (lambda f: _unlisted(f, "config.json", b'{"unet": "\xff\xfe"}'), "not UTF-8"),
    "config without unet": (lambda f: _edit_config(f, lambda c: c.pop("unet")), "'unet'"),
    "config field of the wrong type": (lambda f: _edit_config(f, lambda c: c["train"].update(lr="fast")), "lr"),
    "state missing": (lambda f: (f / "state.json").unlink(), "state.json: missing"),
    "tensor of the wrong shape": (_wrong_shape, "has shape (3, 3)"),
}


def _unlisted(folder: Path, name: str, payload: bytes) -> None:
    """Write a damaged file and drop the checksums, so that the reader itself must notice."""
    (folder / name).write_bytes(payload)
    (folder / "checksums.json").unlink()


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    (path.parent / "checksums.json").unlink()  # so that the reader itself must notice


def _edit_config(folder: Path, change) -> None:
    config = json.loads((folder / "config.json").read_text())
    change(config)
    (folder / "config.json").write_text(json.dumps(config))
    (folder / "checksums.json").unlink()


@pytest.mark.parametrize("kind", list(DAMAGE))
def test_a_damaged_latest_checkpoint_is_named_and_resume_falls_back(kind, trained, run, tmp_path, capsys):
    damage, message = DAMAGE[kind]
    damage(loading.find(run))
    capsys.readouterr()
    if kind != "state missing":  # sampling needs only the weights and config
        assert main(["sample", "--checkpoint", str(run), "--n", "2", "--steps", "2", "--out", str(tmp_path / "s.png")]) == 2
        err = capsys.readouterr().err
        assert err.startswith("mnistdiff: error: ") and err.count("\n") == 1 and message in err, err
        assert "step_0000020" in err and not (tmp_path / "s.png").exists()
    assert resume(run, trained[0]) == 0
    err = capsys.readouterr().err
    assert "warning: skipped checkpoint step_0000020" in err and message in err
    assert loading.find(run).name == "step_0000021"
    assert checkpoint.read_state(loading.find(run))["step"] == 21
    # Step 20 was saved again on the way, whole this time; step 10 made way for it.
    assert sorted(p.name for p in (run / "checkpoints").glob("step_*")) == ["step_0000020", "step_0000021"]
    loading.read(run / "checkpoints" / "step_0000020")


def test_latest_naming_a_missing_folder(trained, run, capsys):
    (run / "checkpoints" / "latest").write_text("step_0099999\n")
    assert main(["sample", "--checkpoint", str(run), "--n", "2"]) == 2
    assert "latest names step_0099999, which does not exist" in capsys.readouterr().err
    (run / "checkpoints" / "latest").write_text("../../elsewhere\n")
    assert main(["sample", "--checkpoint", str(run), "--n", "2"]) == 2
    assert "'../../elsewhere' is not the name of a checkpoint folder" in capsys.readouterr().err
    assert resume(run, trained[0], steps=22) == 0
    assert "skipped the latest checkpoint" in capsys.readouterr().err
    assert checkpoint.read_state(loading.find(run))["step"] == 22


def test_no_space_left_leaves_the_last_checkpoint_and_no_temporary_folder(trained, run, monkeypatch, capsys):
    real = files.write_bytes
    calls = []

    def fill_up(path, payload):
        calls.append(path)
        if len(calls) == 3:  # the disk fills during the third file of the save
            real(path, payload[: len(payload) // 2])
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
        real(path, payload)

    monkeypatch.setattr(files, "write_bytes", fill_up)
    capsys.readouterr()
    assert resume(run, trained[0], steps=30) == 2
    err = capsys.readouterr().err
    error = err.splitlines()[-1]
    assert error.startswith("mnistdiff: error: no space left on device") and "step 30" in error, err
    assert not list((run / "checkpoints").glob(".tmp-*"))
    assert loading.find(run).name == "step_0000020"


def test_written_files_follow_the_umask_and_are_synced(trained, tmp_path, monkeypatch):
    synced = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (synced.append(fd), real_fsync(fd)))
    old = os.umask(0o027)
    try:
        assert main(["train", *FAST, "--steps", "10", "--data-dir", str(trained[0]), "--out", str(tmp_path / "r")]) == 0
        assert main(["sample", "--checkpoint", str(tmp_path / "r"), "--n", "2", "--steps", "2",
                     "--out", str(tmp_path / "s.png"), "--npz", str(tmp_path / "s.npz")]) == 0
    finally:
        os.umask(old)
    folder = loading.find(tmp_path / "r")
    assert folder.stat().st_mode & 0o777 == 0o750
    for path in [*folder.iterdir(), folder.parent / "latest", tmp_path / "s.png", tmp_path / "s.npz"]:
        assert path.stat().st_mode & 0o777 == 0o640, path
    assert len(synced) >= len(checkpoint.FILES) + 1  # each file, before the rename that publishes it


def test_init_from_reads_a_checked_checkpoint(trained, run, tmp_path, capsys):
    assert main(["train", *FAST, "--steps", "2", "--data-dir", str(trained[0]), "--out", str(tmp_path / "new"),
                 "--init-from", str(run)]) == 0
    config, _ = loading.read(loading.find(tmp_path / "new"))
    assert config["init_from"]["step"] == 20 and config["world_size"] == 1
    _flip_byte(loading.find(run) / "weights.safetensors", -3)
    assert main(["train", *FAST, "--steps", "2", "--data-dir", str(trained[0]), "--out", str(tmp_path / "other"),
                 "--init-from", str(run)]) == 2
    assert "SHA-256 differs" in capsys.readouterr().err and not (tmp_path / "other").exists()
