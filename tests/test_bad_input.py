"""Bad arguments, files and numbers: a one-line error before any long work, nothing half-written."""

import os
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from mnistdiff import generation, loading
from mnistdiff.cli import main
from mnistdiff.data.idx import write_idx
from mnistdiff.diffusion import linear_schedule

FAST = ["--preset", "tiny", "--checkpoint-every", "5", "--sample-every", "1000"]


def one_error(capsys, *words) -> str:
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("mnistdiff: error: ") and all(w in err for w in words), err
    return err


@pytest.fixture
def no_sampling(monkeypatch):
    """Fails the test if sampling starts: the checks must come first."""
    def refuse(*args, **kwargs):
        raise AssertionError("sampling started before the arguments were checked")
    monkeypatch.setattr(generation, "generate", refuse)


def test_an_empty_data_set_is_refused(tmp_path, capsys):
    data = tmp_path / "data"
    data.mkdir()
    write_idx(data / "train-images-idx3-ubyte.gz", np.zeros((0, 28, 28), np.uint8))
    write_idx(data / "train-labels-idx1-ubyte.gz", np.zeros((0,), np.uint8))
    assert main(["train", *FAST, "--data-dir", str(data), "--out", str(tmp_path / "run")]) == 2
    one_error(capsys, "holds no images")
    assert not (tmp_path / "run" / "checkpoints").exists()


@pytest.mark.parametrize("flag, value, words", [
    ("--minutes", "-1", "--minutes must be positive"),
    ("--minutes", "0", "--minutes must be positive"),
    ("--minutes", "nan", "--minutes must be positive"),
    ("--lr", "inf", "--lr must be a finite number"),
    ("--lr", "nan", "--lr must be a finite number"),
    ("--lr", "-0.1", "--lr must be a finite number above 0"),
    ("--min-snr-gamma", "inf", "--min-snr-gamma"),
    ("--batch-size", "0", "batch-size"),
])
def test_bad_training_numbers_are_refused_before_loading_data(flag, value, words, tmp_path, capsys):
    # No data folder exists: a refusal about the number shows it came first.
    assert main(["train", *FAST, "--data-dir", str(tmp_path / "none"), "--out", str(tmp_path / "r"), flag, value]) == 2
    one_error(capsys, words)
    assert not (tmp_path / "r").exists()


def test_a_huge_sample_count_needs_yes(no_sampling, capsys):
    assert main(["sample", "--n", "1000000000"]) == 2
    one_error(capsys, "--yes")


def _read_only_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "read-only"
    folder.mkdir()
    folder.chmod(0o555)
    if os.access(folder, os.W_OK):  # as root permissions do not stop writes; a read-only mount does
        folder = Path("/sys")
        if os.access(folder, os.W_OK) and os.geteuid() != 0:
            pytest.skip("no read-only folder to write into")
    return folder


@pytest.mark.parametrize("where", ["folder", "missing parent", "read-only"])
def test_outputs_are_checked_before_sampling(where, tmp_path, no_sampling, capsys):
    out = {"folder": tmp_path, "missing parent": tmp_path / "no" / "such" / "x.png",
           "read-only": _read_only_folder(tmp_path) / "x.png"}[where]
    for argv in (["sample", "--out", str(out)], ["sample", "--out", str(tmp_path / "ok.png"), "--npz", str(out)],
                 ["fid", "--json", str(out)], ["invert", "3", "--out", str(out)], ["merge", "1", "2", "--out", str(out)]):
        assert main(argv) == 2, argv
        one_error(capsys, str(out))
    assert not (tmp_path / "ok.png").exists() and not list(tmp_path.glob(".*"))


def test_train_out_that_is_a_file(tmp_path, capsys):
    (tmp_path / "file").write_text("x")
    assert main(["train", *FAST, "--data-dir", str(tmp_path), "--out", str(tmp_path / "file")]) == 2
    one_error(capsys, "is a file")


def _png_claiming(path: Path, width: int, height: int) -> None:
    """A tiny PNG whose header claims width x height pixels: a decompression bomb's first bytes."""
    Image.new("L", (1, 1)).save(path)
    payload = bytearray(path.read_bytes())
    ihdr = payload[12:29]  # b"IHDR" + 13 bytes of header data
    ihdr[4:12] = struct.pack(">II", width, height)
    payload[12:29] = ihdr
    payload[29:33] = struct.pack(">I", zlib.crc32(bytes(ihdr)))
    path.write_bytes(bytes(payload))


@pytest.mark.parametrize("kind, words", [
    ("text", "not a readable image"),
    ("empty", "not a readable image"),
    ("huge", "too large"),
    ("cmyk", "mode CMYK"),
    ("truncated", "not a readable image"),
])
def test_bad_pictures_for_invert_and_merge(kind, words, tmp_path, capsys):
    path = tmp_path / f"{kind}.png"
    if kind == "text":
        path.write_text("this is not a picture\n")
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "huge":
        _png_claiming(path, 14000, 14000)
    elif kind == "cmyk":
        path = tmp_path / "cmyk.jpg"
        Image.new("CMYK", (28, 28)).save(path)
    else:
        Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64), dtype=np.uint8)).save(path)
        path.write_bytes(path.read_bytes()[:200])
    assert main(["invert", str(path), "--steps", "2", "--out", str(tmp_path / "l.npz")]) == 2
    one_error(capsys, str(path), words)
    assert main(["merge", str(path), "3", "--steps", "2", "--out", str(tmp_path / "m.png")]) == 2
    one_error(capsys, words)
    assert not (tmp_path / "l.npz").exists() and not (tmp_path / "m.png").exists()


@pytest.mark.parametrize("content, words", [
    ({"other": np.zeros((2, 1, 28, 28), np.float32)}, "no array 'latents'"),
    ({"latents": np.zeros((2, 28, 28), np.float32)}, "expected float latents of shape (N, 1, 28, 28)"),
    ({"latents": np.zeros((2, 3, 28, 28), np.float32)}, "shape (2, 3, 28, 28)"),
    ({"latents": np.full((1, 1, 28, 28), np.nan, np.float32)}, "NaN"),
    (b"not an npz", "not a readable .npz"),
])
def test_bad_latents_for_decode(content, words, tmp_path, capsys):
    path = tmp_path / "latents.npz"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        np.savez(path, **content)
    assert main(["invert", "--decode", str(path), "--steps", "2", "--out", str(tmp_path / "g.png")]) == 2
    one_error(capsys, str(path), words)
    assert not (tmp_path / "g.png").exists()


def test_bad_images_npz_for_fid(tmp_path, capsys):
    path = tmp_path / "images.npz"
    np.savez(path, images=np.zeros((12, 28, 28), np.uint8))
    assert main(["fid", "--npz", str(path)]) == 2
    one_error(capsys, "expected uint8 images of shape (N, 1, 28, 28)")
    np.savez(path, images=np.zeros((12, 1, 28, 28), np.uint8))
    assert main(["fid", "--npz", str(path), "--sampler", "ddim", "--steps", "10", "--no-clip"]) == 2
    one_error(capsys, "--npz scores the images it holds; --sampler, --steps, --no-clip set how images are sampled")


def test_a_log_row_cut_short_by_a_kill_is_dropped_on_resume(idx_folder, tmp_path):
    run = tmp_path / "run"
    assert main(["train", *FAST, "--steps", "5", "--data-dir", str(idx_folder), "--out", str(run)]) == 0
    with open(run / "log.csv", "a") as f:
        f.write("3,0.1\n\x00\x00")  # a row with fields missing, then bytes a kill left
    assert main(["train", *FAST, "--steps", "6", "--data-dir", str(idx_folder), "--out", str(run), "--resume"]) == 0
    rows = (run / "log.csv").read_text().splitlines()
    # The cut row is gone; each run logged the step it stopped at.
    assert rows[0] == "step,loss,lr,images_per_s,elapsed_s" and [r.split(",")[0] for r in rows[1:]] == ["1", "5", "6"]
    assert loading.find(run).name == "step_0000006"


@pytest.mark.parametrize("argv, words", [
    (["sample", "--eta", "inf"], "eta must be a number in [0, 1]"),
    (["sample", "--eta", "nan"], "eta must be a number in [0, 1]"),
    (["sample", "--eta", "5"], "eta must be a number in [0, 1]"),
    (["sample", "--eta", "-0.1"], "eta must be a number in [0, 1]"),
    (["eval-grid", "--etas", "0,2"], "eta must be a number in [0, 1]"),
    (["explore", "--port", "70000"], "a port is a number from 1 to 65535"),
    (["explore", "--port", "0"], "a port is a number from 1 to 65535"),
    (["sample", "--seed", "99999999999999999999"], "from 0 to 2**63 - 1"),
    (["sample", "--seed", "-1"], "from 0 to 2**63 - 1"),
    (["merge-study", "--seed", str(2**63)], "from 0 to 2**63 - 1"),
    (["train", "--out", "r", "--seed", "99999999999999999999"], "--seed must be below"),
])
def test_bad_numbers_are_refused_where_they_enter(argv, words, no_sampling, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    one_error(capsys, words)
    assert not list(tmp_path.iterdir())  # nothing written


def test_eta_is_checked_alike_from_python():
    from mnistdiff.samplers.ddim import check_eta

    assert [check_eta(v) for v in (0, 0.5, 1)] == [0.0, 0.5, 1.0]
    for bad in (float("inf"), float("nan"), 5, -0.1, True, "0.5"):
        with pytest.raises(ValueError, match=r"eta must be a number in \[0, 1\]"):
            check_eta(bad)
    with pytest.raises(ValueError, match="eta must be"):
        generation.generate(torch.nn.Conv2d(1, 1, 1), linear_schedule(10), 1, sampler="ddim", steps=2, eta=5.0)


@pytest.mark.parametrize("argv, words", [
    (["sample", "--out", "grid.jpg"], "a PNG is written: end the name in .png"),
    (["merge", "1", "2", "--out", "merge.txt"], "end the name in"),
    (["plot-fid", "--out", "curve.csv"], "end the name in"),
    (["invert", "3", "--out", "latents.png"], "give a name ending in .npz"),
    (["invert", "--decode", "latents.npz", "--out", "grid.npz"], "give a name ending in .png"),
])
def test_an_out_suffix_the_writer_cannot_honour_is_refused(argv, words, no_sampling, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    one_error(capsys, words)
    assert not list(tmp_path.iterdir())


def test_resume_with_another_shape_or_fewer_steps_says_so_and_changes_nothing(idx_folder, tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", *FAST, "--steps", "5", "--data-dir", str(idx_folder), "--out", str(run)]) == 0
    before = {p: p.read_bytes() for p in run.rglob("*") if p.is_file()}
    for extra, words in ((["--preset", "small"], "--preset small: the run's is tiny"),
                         (["--dataset", "fashion-mnist"], "--dataset fashion-mnist: the run's is mnist"),
                         (["--base", "16"], "--base: the model's is"),
                         (["--steps", "3"], "--steps 3 is below the run's step 5")):
        argv = ["train", "--checkpoint-every", "5", "--data-dir", str(idx_folder), "--out", str(run), "--resume"]
        assert main(argv + (["--steps", "6"] if extra[0] != "--steps" else []) + extra) == 2
        one_error(capsys, words)
        assert {p: p.read_bytes() for p in run.rglob("*") if p.is_file()} == before
    assert main(["train", "--steps", "5", "--data-dir", str(idx_folder), "--out", str(run), "--resume"]) == 0


def test_a_checkpoint_that_is_some_other_file_is_named(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    Path("notes.txt").write_text("not a model")
    assert main(["sample", "--checkpoint", "notes.txt", "--n", "1", "--out", "x.png"]) == 2
    err = capsys.readouterr().err
    assert "notes.txt is not a checkpoint" in err and str(tmp_path) in err and "weights.safetensors" in err


@pytest.mark.parametrize("argv", [["sample", "--checkpoint", "conditional"], ["sample", "--label", "7"],
                                  ["fid", "--label", "all"]])
def test_the_conditional_model_when_none_is_shipped(argv, no_sampling, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setitem(loading.SHIPPED, "conditional", tmp_path / "conditional-mnist")
    assert main([*argv, "--n", "16", "--steps", "2"]) == 2
    assert one_error(capsys) == "mnistdiff: error: no conditional model is shipped in this installation: pass --checkpoint"
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("argv, words", [
    (["--label", "seven"], "use a class number (7), a comma list (2,5,8) or all"),
    (["--label", "2,-5"], "class numbers are 0 or more"),
    (["--label", "7", "--guidance", "-1"], "guidance must be a finite number >= 0"),
    (["--label", "7", "--guidance", "inf"], "guidance must be a finite number >= 0"),
    (["--guidance", "2"], "--guidance needs --label"),
    (["--label", "7"], "labels need a conditional model"),  # the shipped model is unconditional
])
def test_bad_labels_and_guidance_on_the_command_line(argv, words, no_sampling, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    checkpoint = ["--checkpoint", str(loading.DEFAULT_MODEL)] if argv == ["--label", "7"] else []
    assert main(["sample", *argv, *checkpoint, "--n", "1", "--steps", "2"]) == 2
    one_error(capsys, words)
    assert not list(tmp_path.iterdir())
