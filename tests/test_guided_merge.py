"""Guided merges: A and B inverted with their labels, the mix decoded towards a target digit; on class
Gaussians known in closed form, the tiny conditional fixture and hand-made scores."""

import json
import shutil
from pathlib import Path

import pytest
import torch
from torch import nn

from exact import GaussianData
from mnistdiff import load_checkpoint
from mnistdiff.cli import experiment_commands, main
from mnistdiff.evaluation import load_classifier
from mnistdiff.experiments import RULES, merge
from mnistdiff.experiments.guided_study import guided_merge_study, score, table, to_markdown
from mnistdiff.experiments.mixing import linear
from mnistdiff.samplers import ddim_invert, levels, sample_ddim
from test_guidance import CLASSES, SCHEDULE, ClassGaussians

DATA = Path(__file__).parent / "data"
COND = DATA / "tiny-cond-checkpoint"  # conditional, 10 classes
OLD = DATA / "tiny-old-checkpoint"  # unconditional
NULL = CLASSES  # the "no label" entry


def pair(n=2, seed=0, shape=(1, 4, 4)):
    g = torch.Generator().manual_seed(seed)
    return tuple((torch.rand((n, *shape), generator=g, dtype=torch.float64) * 2 - 1) for _ in range(2))


def merged_as_before(model, schedule, a, b, weights, rule, grid):
    """merge() as it was before labels: one inversion of [a; b], one decoding of [latents; mixes]."""
    latents = ddim_invert(model, torch.cat([a, b]), schedule, grid)
    za, zb = latents.chunk(2)
    mixes = torch.cat([RULES[rule](za, zb, w) for w in weights])
    return sample_ddim(model, torch.cat([latents, mixes]), schedule, grid)


@pytest.mark.parametrize("checkpoint", [OLD, COND])
def test_merges_without_labels_or_target_are_bit_identical_to_before(checkpoint):
    model, schedule, _ = load_checkpoint(checkpoint)
    g = torch.Generator().manual_seed(3)
    a, b = (torch.rand((1, 1, 28, 28), generator=g) * 2 - 1 for _ in range(2))
    grid = levels(3, schedule)
    out = merge(model, schedule, a, b, [0.0, 0.5, 1.0], rule="slerp", levels=grid)
    before = merged_as_before(model, schedule, a, b, [0.0, 0.5, 1.0], "slerp", grid)
    assert torch.equal(torch.cat([out["recon_a"], out["recon_b"], out["latent_mix"].flatten(0, 1)]), before)


def test_a_guided_merge_inverts_with_the_labels_of_a_and_b_and_decodes_every_mix_towards_the_target():
    """One point per class: DDIM decodes any latent to the point of the labels it decodes with, and
    guidance s towards c to s mu_c + (1 - s) mu_null (test_guidance.guided_point)."""
    model = ClassGaussians(std=0.0)
    a, b = pair()
    steps, s = 5, 2.5
    out = merge(model, SCHEDULE, a, b, [0.3, 0.5], rule="slerp", levels=levels(steps, SCHEDULE), labels=(2, 5),
                target=8, guidance=s)
    inversion, recon, mixes = model.calls[:steps], model.calls[steps : 2 * steps], model.calls[2 * steps :]
    assert len(mixes) == steps
    for size, labels in inversion + recon:  # the conditional model (s = 1): one plain call with [2, 2, 5, 5]
        assert size == 4 and labels.tolist() == [2, 2, 5, 5]
    for size, labels in mixes:  # 2 weights x 2 images, doubled: the target, then "no label"
        assert size == 8 and labels.tolist() == [8] * 4 + [NULL] * 4
    means = model.means
    torch.testing.assert_close(out["recon_a"], means[[2, 2]], rtol=0, atol=1e-9)
    torch.testing.assert_close(out["recon_b"], means[[5, 5]], rtol=0, atol=1e-9)
    expected = (s * means[8] + (1 - s) * means[NULL]).expand(2, 2, *means.shape[1:])
    torch.testing.assert_close(out["latent_mix"], expected, rtol=0, atol=1e-9)
    torch.testing.assert_close(out["pixel_mix"][1], linear(a, b, 0.5))


def test_labels_without_a_target_decode_the_mix_with_no_label_and_none_in_the_pair_is_no_label():
    model = ClassGaussians(std=0.0)
    a, b = pair()
    out = merge(model, SCHEDULE, a, b, [0.5], levels=levels(4, SCHEDULE), labels=(None, 7))
    assert [labels.tolist() for _, labels in model.calls[:8]] == [[NULL, NULL, 7, 7]] * 8
    assert all(labels is None for _, labels in model.calls[8:]) and len(model.calls) == 12
    torch.testing.assert_close(out["recon_a"], model.means[[NULL, NULL]], rtol=0, atol=1e-9)
    torch.testing.assert_close(out["latent_mix"][0], model.means[[NULL, NULL]], rtol=0, atol=1e-9)


def test_a_target_without_labels_inverts_with_no_label_and_guidance_1_is_the_conditional_model():
    model = ClassGaussians(std=0.0)
    a, b = pair()
    out = merge(model, SCHEDULE, a, b, [0.5], levels=levels(4, SCHEDULE), target=3, guidance=1.0)
    assert all(labels is None for _, labels in model.calls[:8])
    assert [(size, labels.tolist()) for size, labels in model.calls[8:]] == [(2, [3, 3])] * 4
    torch.testing.assert_close(out["latent_mix"][0], model.means[[3, 3]], rtol=0, atol=1e-9)


@pytest.mark.parametrize("kwargs, words", [
    ({"target": 8}, "conditional"),
    ({"labels": (2, 5)}, "conditional"),
])
def test_a_target_or_labels_on_an_unconditional_model_are_refused(kwargs, words):
    a, b = pair()
    with pytest.raises(ValueError, match=words):
        merge(GaussianData(SCHEDULE, 0.1, 0.5), SCHEDULE, a, b, [0.5], levels=levels(3, SCHEDULE), **kwargs)


@pytest.mark.parametrize("kwargs, words", [
    ({"target": 10}, "outside 0..9"),
    ({"target": -1}, "outside 0..9"),
    ({"target": True}, "one class number"),
    ({"target": "8"}, "one class number"),
    ({"labels": (2, 12)}, "outside 0..9"),
    ({"labels": (2,)}, "labels of a, labels of b"),
    ({"guidance": 2.0}, "needs a target"),
    ({"target": 8, "guidance": -1.0}, "guidance must be"),
])
def test_bad_targets_labels_and_scales_are_one_line_errors(kwargs, words):
    a, b = pair()
    with pytest.raises(ValueError, match=words) as err:
        merge(ClassGaussians(), SCHEDULE, a, b, [0.5], levels=levels(3, SCHEDULE), **kwargs)
    assert "\n" not in str(err.value)


def test_scores_of_a_hand_made_case():
    """Three merges of a (top row inked) and b (bottom row inked), 2x2 pixels."""
    a = torch.tensor([[255, 255], [0, 0]], dtype=torch.uint8).expand(3, 1, 2, 2)
    b = torch.tensor([[0, 0], [255, 255]], dtype=torch.uint8).expand(3, 1, 2, 2)
    decoded = torch.tensor([[[255, 0], [0, 0]],  # MSE to a 1/4, to b 3/4; keeps one of a's ink pixels
                            [[0, 0], [128, 127]],  # 128 is inked (> 0.5), 127 is not
                            [[0, 0], [0, 0]]], dtype=torch.uint8).unsqueeze(1)  # equally far: not closer to a
    probs = torch.zeros(3, 10, dtype=torch.float64)
    probs[0, 8], probs[0, 2] = 0.7, 0.3
    probs[1, 8], probs[1, 5] = 0.4, 0.6
    probs[2, 8], probs[2, 0] = 0.9, 0.1
    s = score(decoded, a, b, probs, 8)
    mse_b_1 = ((128 / 255 - 1) ** 2 + (127 / 255 - 1) ** 2) / 4
    mse_a_1 = ((128 / 255) ** 2 + (127 / 255) ** 2 + 2) / 4
    expected = {"images": 3, "target_share": 2 / 3, "target_confidence": 2 / 3, "mse_a": (0.25 + mse_a_1 + 0.5) / 3,
                "mse_b": (0.75 + mse_b_1 + 0.5) / 3, "ink_a": 1 / 6, "ink_b": 1 / 6, "closer_to_a": 1 / 3}
    assert s.keys() == expected.keys()
    for key, value in expected.items():
        assert s[key] == pytest.approx(value, abs=1e-12), key


class Recording(nn.Module):
    """A model that records the labels of every call."""

    def __init__(self, model):
        super().__init__()
        self.model, self.config, self.seen = model, model.config, []

    def forward(self, xt, t, labels=None):
        self.seen.append(None if labels is None else labels.tolist())
        return self.model(xt, t, labels=labels)


@pytest.fixture(scope="module")
def test_digits():
    from mnistdiff.data.idx import read_split

    images, labels = read_split(DATA / "mnist-test-500-images-idx3-ubyte.gz",
                                DATA / "mnist-test-500-labels-idx1-ubyte.gz")
    return torch.from_numpy(images.copy()).unsqueeze(1), torch.from_numpy(labels.astype("int64"))


@pytest.mark.parametrize("invert_with", ["labels", "none"])
def test_the_study_inverts_with_the_labels_and_decodes_each_scale_towards_the_target(test_digits, invert_with):
    model, schedule, _ = load_checkpoint(COND)
    recording = Recording(model)
    classifier, _ = load_classifier("mnist")
    steps, per_class = 2, 3
    study = guided_merge_study(recording, schedule, *test_digits, classifier, levels(steps, schedule), pair=(2, 5),
                               target=8, scales=(1.0, 2.0), invert_with=invert_with, per_class=per_class,
                               progress=False)
    seen, p = recording.seen, per_class
    by_label = invert_with == "labels"
    assert seen[:steps] == [[2] * p if by_label else None] * steps  # A
    assert seen[steps : 2 * steps] == [[5] * p if by_label else None] * steps  # B
    assert seen[2 * steps : 3 * steps] == [None] * steps  # the pixel mix: no label
    decoding = seen[3 * steps :]
    rules = len(RULES) + 1
    assert decoding == [None] * rules * steps + [[8] * p] * rules * steps + [[8] * p + [10] * p] * rules * steps
    assert list(study["rules"]) == [*RULES, "pixel"] and study["scales"] == [None, 1.0, 2.0]
    for rows in study["rules"].values():
        assert [r["guidance"] for r in rows] == [None, 1.0, 2.0]
        for r in rows:
            assert r["images"] == p
            for key in ("target_share", "target_confidence", "ink_a", "ink_b", "closer_to_a", "mse_a", "mse_b"):
                assert 0 <= r[key] <= 1, key
    headers, rows = table(study, "slerp")
    assert headers[:3] == ["guidance", "read as 8", "mean p(8)"] and [r[0] for r in rows] == ["none", "1", "2"]
    assert to_markdown(study).count("| none |") == rules


def test_the_study_refuses_a_bad_target_pair_or_scale(test_digits):
    model, schedule, _ = load_checkpoint(COND)
    grid = levels(2, schedule)
    for kwargs, words in (({"target": 10}, "outside 0..9"), ({"pair": (2, 11)}, "outside 0..9"),
                          ({"scales": (1.0, -2.0)}, "guidance must be"), ({"invert_with": "yes"}, "invert_with")):
        with pytest.raises(ValueError, match=words):
            guided_merge_study(model, schedule, *test_digits, None, grid, **kwargs)
    old, schedule, _ = load_checkpoint(OLD)
    with pytest.raises(ValueError, match="conditional"):
        guided_merge_study(old, schedule, *test_digits, None, grid)


@pytest.fixture
def test_set(tmp_path):
    """A --data-dir holding the first 500 test digits (test image 1 is a 2, image 8 a 5)."""
    folder = tmp_path / "data"
    folder.mkdir()
    for kind in ("images-idx3", "labels-idx1"):
        shutil.copy(DATA / f"mnist-test-500-{kind}-ubyte.gz", folder / f"t10k-{kind}-ubyte.gz")
    return folder


def test_merge_from_the_cli_takes_the_test_images_labels_by_default(test_set, tmp_path, monkeypatch, capsys):
    from PIL import Image

    png = tmp_path / "digit.png"
    Image.new("L", (28, 28)).save(png)
    calls = []
    real = experiment_commands.merge
    monkeypatch.setattr(experiment_commands, "merge", lambda *a, **k: calls.append(k) or real(*a, **k))
    common = ["--checkpoint", str(COND), "--data-dir", str(test_set), "--steps", "2", "--weights", "0,0.5,1"]
    out = str(tmp_path / "m.png")
    assert main(["merge", "1", "8", *common, "--target", "8", "--guidance", "3", "--out", out]) == 0
    assert main(["merge", "1", str(png), *common, "--out", out]) == 0
    assert main(["merge", "1", "8", *common, "--invert-with", "none", "--target", "0", "--out", out]) == 0
    assert main(["merge", "1", "8", *common, "--invert-with", "labels", "--out", out]) == 0
    assert [(k["labels"], k["target"], k["guidance"]) for k in calls] == [
        ((2, 5), 8, 3.0), ((2, None), None, None), (None, 0, None), ((2, 5), None, None)]
    assert Path(out).stat().st_size > 1000
    capsys.readouterr()
    for argv, words in ((["--target", "10"], "target 10 is outside 0..9"),
                        (["--guidance", "2"], "--guidance needs --target"),
                        (["--invert-with", "labels", "--checkpoint", str(OLD)], "needs a conditional model"),
                        (["--target", "8", "--checkpoint", str(OLD)], "needs a conditional model")):
        assert main(["merge", "1", "8", *common, *argv, "--out", out]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and words in err[0], err
    assert main(["merge", str(png), "8", *common, "--invert-with", "labels", "--out", out]) == 2
    assert "digit.png has no known label" in capsys.readouterr().err


def test_merge_study_with_a_target_from_the_cli(test_set, tmp_path, capsys):
    out = tmp_path / "guided"
    common = ["--checkpoint", str(COND), "--data-dir", str(test_set), "--steps", "2", "--per-class", "2"]
    assert main(["merge-study", *common, "--target", "8", "--guidance", "1,2,4", "--pair", "2,5",
                 "--out", str(out)]) == 0
    study = json.loads((tmp_path / "guided.json").read_text())
    assert study["command"].startswith("mnistdiff merge-study --checkpoint") and "--target 8" in study["command"]
    assert study["pair"] == [2, 5] and study["invert_with"] == "labels"
    assert all(len(rows) == 4 for rows in study["rules"].values())
    text = (tmp_path / "guided.md").read_text()
    assert study["command"] in text and text.count("| guidance | read as 8 | mean p(8) |") == 4
    assert not (tmp_path / "guided.png").exists()
    capsys.readouterr()
    for argv, words in ((["--guidance", "2"], "go with --target"), (["--pair", "2,5"], "go with --target"),
                        (["--target", "8", "--pair", "2,10"], "outside 0..9"),
                        (["--target", "8", "--checkpoint", str(OLD)], "conditional")):
        assert main(["merge-study", *common, *argv, "--out", str(out)]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and words in err[0], err
