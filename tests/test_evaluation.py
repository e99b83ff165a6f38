import json

import numpy as np
import pytest
import torch

from mnistdiff.data.idx import read_split
from mnistdiff.evaluation import fid, frechet_distance, gaussian_stats, load_classifier, load_reference, precision_recall
from mnistdiff.evaluation.classifier import asset
from mnistdiff.evaluation.metrics import features_and_probs
from mnistdiff.evaluation.report import worst_digit
from mnistdiff.evaluation.train_classifier import random_shift
from mnistdiff.files import sha256


def test_fid_of_a_set_with_itself_is_zero():
    x = torch.randn(500, 16, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    assert abs(fid(x, x)) < 1e-6


def test_frechet_distance_of_gaussians_matches_closed_form():
    # Diagonal covariances: d^2 = |mu1 - mu2|^2 + sum (s1 - s2)^2 over the standard deviations.
    gen = torch.Generator().manual_seed(1)
    mu1, mu2 = torch.randn(8, generator=gen, dtype=torch.float64), torch.randn(8, generator=gen, dtype=torch.float64)
    s1, s2 = torch.rand(8, generator=gen, dtype=torch.float64) + 0.5, torch.rand(8, generator=gen, dtype=torch.float64) + 0.5
    expected = ((mu1 - mu2) ** 2).sum() + ((s1 - s2) ** 2).sum()
    got = frechet_distance(mu1, torch.diag(s1**2), mu2, torch.diag(s2**2))
    assert abs(got - expected.item()) < 1e-8
    # A full covariance rotated into both sets keeps the distance.
    q, _ = torch.linalg.qr(torch.randn(8, 8, generator=gen, dtype=torch.float64))
    rotated = frechet_distance(q @ mu1, q @ torch.diag(s1**2) @ q.T, q @ mu2, q @ torch.diag(s2**2) @ q.T)
    assert abs(rotated - expected.item()) < 1e-6


def test_gaussian_stats_are_mean_and_covariance():
    x = torch.randn(4000, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(2)) * torch.tensor([1.0, 2.0, 3.0])
    mu, sigma = gaussian_stats(x)
    assert mu.abs().max() < 0.15
    assert torch.allclose(sigma.diagonal(), torch.tensor([1.0, 4.0, 9.0], dtype=torch.float64), rtol=0.1)


def test_precision_recall_of_a_set_with_itself_is_one_and_disjoint_is_zero():
    x = torch.randn(300, 5, generator=torch.Generator().manual_seed(3))
    assert precision_recall(x, x) == (1.0, 1.0)
    assert precision_recall(x, x + 100.0) == (0.0, 0.0)


def test_precision_falls_when_fakes_leave_the_real_set():
    gen = torch.Generator().manual_seed(4)
    real = torch.randn(400, 4, generator=gen)
    fake = torch.cat([torch.randn(200, 4, generator=gen), torch.randn(200, 4, generator=gen) + 50])
    precision, recall = precision_recall(real, fake)
    assert 0.4 < precision < 0.6 and recall > 0.8


def test_random_shift_moves_the_image_and_keeps_its_shape():
    x = -torch.ones(64, 1, 28, 28)
    x[:, :, 13, 13] = 1.0
    y = random_shift(x, 2, torch.Generator().manual_seed(0))
    assert y.shape == x.shape and (y == 1).sum() == 64
    positions = {tuple(torch.nonzero(img[0] == 1)[0].tolist()) for img in y}
    assert len(positions) > 5 and all(11 <= r <= 15 and 11 <= c <= 15 for r, c in positions)


def test_shipped_classifier_loads_and_classifies_the_test_fixture(mnist_fixture):
    model, record = load_classifier("mnist")
    assert record["test_accuracy"] >= 0.993
    assert asset("classifier-mnist.safetensors").stat().st_size < 2_000_000
    images, labels = read_split(*mnist_fixture)
    images, labels = torch.from_numpy(images[:500].copy()).unsqueeze(1), torch.from_numpy(labels[:500].astype("int64"))
    _, probs = features_and_probs(model, images)
    assert (probs.argmax(1) == labels).double().mean() > 0.98


def test_shipped_reference_stats_match_their_checksum():
    record = json.loads(asset("stats-mnist.json").read_text())
    assert sha256(asset("stats-mnist.safetensors")) == record["sha256"]
    ref = load_reference("mnist")
    for mu, sigma in ref.values():
        assert mu.shape == (128,) and sigma.shape == (128, 128)
        assert torch.allclose(sigma, sigma.T)
    # Train and test sets are close, but not the same.
    assert 0 < frechet_distance(*ref["train"], *ref["test"]) < 5


def test_fid_command_scores_real_digits_far_better_than_noise(mnist_fixture, tmp_path, capsys):
    from mnistdiff.cli import main

    data_dir = tmp_path / "data"  # the 500 real digits serve as both splits
    data_dir.mkdir()
    for path, split in ((mnist_fixture[0], "images-idx3"), (mnist_fixture[1], "labels-idx1")):
        for prefix in ("train", "t10k"):
            (data_dir / f"{prefix}-{split}-ubyte.gz").write_bytes(path.read_bytes())
    images, _ = read_split(*mnist_fixture)
    real = tmp_path / "real.npz"
    np.savez(real, images=images[300:, None])  # not among the 200 that recall and the floor use
    noise = tmp_path / "noise.npz"
    np.savez(noise, images=np.random.default_rng(0).integers(0, 256, (200, 1, 28, 28), dtype=np.uint8))
    scores = {}
    for name, path in (("real", real), ("noise", noise)):
        out = tmp_path / f"{name}.json"
        assert main(["fid", "--npz", str(path), "--data-dir", str(data_dir), "--json", str(out)]) == 0
        scores[name] = json.loads(out.read_text())
    assert "FID vs train" in capsys.readouterr().out
    assert scores["real"]["n"] == 200 and len(scores["real"]["class_shares"]) == 10
    assert scores["real"]["fid_test"] < 0.1 * scores["noise"]["fid_test"]
    assert scores["real"]["confident_share"] > 0.9
    assert scores["real"]["precision"] > 0.8 > 0.1 > scores["noise"]["precision"]


def test_the_worst_digit_is_the_lowest_share_among_the_labels_drawn():
    assert worst_digit([0.9, None, 0.5, 0.7]) == (2, 0.5)
    assert worst_digit([None, 0.8]) == (1, 0.8)


def test_fid_command_reads_an_npz_s_labels_as_the_digits_asked_for(mnist_fixture, tmp_path, capsys):
    from mnistdiff.cli import main

    data_dir = tmp_path / "data"
    data_dir.mkdir()
    for path, split in ((mnist_fixture[0], "images-idx3"), (mnist_fixture[1], "labels-idx1")):
        for prefix in ("train", "t10k"):
            (data_dir / f"{prefix}-{split}-ubyte.gz").write_bytes(path.read_bytes())
    images, labels = read_split(*mnist_fixture)
    scores = {}
    for name, asked in (("true", labels[300:]), ("shifted", (labels[300:] + 1) % 10), ("none", None)):
        path, out = tmp_path / f"{name}.npz", tmp_path / f"{name}.json"
        np.savez(path, images=images[300:, None], **({} if asked is None else {"labels": np.asarray(asked)}))
        assert main(["fid", "--npz", str(path), "--data-dir", str(data_dir), "--json", str(out)]) == 0
        scores[name] = json.loads(out.read_text())
        assert ("read as the digit asked for" in capsys.readouterr().out) == (asked is not None)
    assert scores["true"]["accuracy"] > 0.95 > 0.05 > scores["shifted"]["accuracy"]
    shares = scores["true"]["accuracy_by_digit"]
    asked = torch.as_tensor(labels[300:])
    assert len(shares) == 10 and scores["true"]["accuracy"] == pytest.approx(
        sum(s * (asked == c).sum().item() for c, s in enumerate(shares)) / len(asked))
    assert "accuracy" not in scores["none"]
    wrong = tmp_path / "wrong.npz"
    np.savez(wrong, images=images[300:, None], labels=np.full(200, 10))
    assert main(["fid", "--npz", str(wrong), "--data-dir", str(data_dir)]) == 2
    assert "requested labels must lie in 0..9" in capsys.readouterr().err
    np.savez(wrong, images=images[300:, None], labels=np.zeros(199, dtype=np.int64))
    assert main(["fid", "--npz", str(wrong), "--data-dir", str(data_dir)]) == 2
    assert "'labels' is int64 of shape (199,), expected integer labels of shape (200)" in capsys.readouterr().err


def test_fid_command_rejects_images_of_the_wrong_shape(tmp_path, capsys):
    from mnistdiff.cli import main

    bad = tmp_path / "bad.npz"
    np.savez(bad, images=np.zeros((4, 28, 28), dtype=np.uint8))
    assert main(["fid", "--npz", str(bad)]) == 2
    assert "expected uint8 images" in capsys.readouterr().err


def test_fid_command_refuses_too_few_images_before_sampling(capsys):
    from mnistdiff.cli import main

    assert main(["fid", "--n", "5", "--device", "cpu"]) == 2
    assert "at least 10 images" in capsys.readouterr().err


def test_the_floor_spread_scores_disjoint_draws_the_first_the_floor_itself(tmp_path, mnist_fixture):
    from mnistdiff.evaluation.report import real_draws, real_floor, real_floors, real_sample

    for prefix, path in (("train-images-idx3", mnist_fixture[0]), ("train-labels-idx1", mnist_fixture[1])):
        (tmp_path / f"{prefix}-ubyte.gz").write_bytes(path.read_bytes())  # 500 real digits, each its own
    draws = real_draws(100, "mnist", tmp_path, seed=3)
    assert len(draws) == 5 and all(len(d) == 100 for d in draws)
    flat = torch.cat(draws).flatten(1)
    assert len(torch.unique(flat, dim=0)) == 500  # disjoint: every one of the 500 digits once
    assert torch.equal(draws[0], real_sample(100, "mnist", tmp_path, seed=3))
    assert len(real_draws(200, "mnist", tmp_path)) == 2 and len(real_draws(600, "mnist", tmp_path)) == 1  # what fits
    floors = real_floors(100, "mnist", tmp_path, seed=3)
    assert floors[0] == real_floor(100, "mnist", tmp_path, seed=3) and len(set(floors)) == 5
