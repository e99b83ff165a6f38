"""Class-conditional models: the label embedding, label dropout, training from an unconditional model,
and unconditional models left exactly as they were."""

import json
import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from mnistdiff import load_checkpoint, loading
from mnistdiff.cli import main
from mnistdiff.diffusion import EpsLoss, linear_schedule
from mnistdiff.model import TrainConfig, UNet, UNetConfig, get_preset, precondition
from mnistdiff.model.grow import deepen
from mnistdiff.training import checkpoint
from mnistdiff.training.labels import drop_labels
from test_kills import kill_later, start, step_of_latest

DATA = Path(__file__).parent / "data"
OLD = DATA / "tiny-old-checkpoint"  # unconditional, written before class conditioning
COND = DATA / "tiny-cond-checkpoint"  # conditional, 10 classes (scripts/tiny_cond_checkpoint.py)
TINY = get_preset("tiny").unet
XT = torch.randn(4, 1, 28, 28, generator=torch.Generator().manual_seed(1))
T = torch.tensor([0, 10, 500, 999])


def cli_train(out, data_dir, *extra):
    return main(["train", "--preset", "tiny", "--sample-every", "1000", "--data-dir", str(data_dir),
                 "--out", str(out), *extra])


@pytest.mark.parametrize("p", [0.1, 0.2, 0.5])
def test_label_dropout_drops_the_asked_share(p):
    gen, n = torch.Generator().manual_seed(0), 64 * 2000
    labels = torch.randint(0, 10, (n,), generator=torch.Generator().manual_seed(1))
    dropped = drop_labels(labels, p, 10, gen)
    assert ((dropped == labels) | (dropped == 10)).all()  # a label is kept or becomes "no label"
    share = (dropped == 10).double().mean().item()
    assert abs(share - p) < 5 * math.sqrt(p * (1 - p) / n)  # 5 binomial standard deviations


def test_label_dropout_of_0_keeps_every_label_and_of_1_drops_every_one():
    labels = torch.arange(10).repeat(100)
    assert torch.equal(drop_labels(labels, 0.0, 10, torch.Generator().manual_seed(0)), labels)
    assert (drop_labels(labels, 1.0, 10, torch.Generator().manual_seed(0)) == 10).all()


def test_label_dropout_of_a_data_parallel_slice_is_the_plain_runs_slice():
    labels = torch.arange(8) % 5
    whole = drop_labels(labels, 0.5, 5, torch.Generator().manual_seed(3))
    halves = [drop_labels(labels[4 * r : 4 * r + 4], 0.5, 5, torch.Generator().manual_seed(3), shard=(r, 2))
              for r in range(2)]
    assert torch.equal(torch.cat(halves), whole)


def test_the_settings_are_checked():
    with pytest.raises(ValueError, match="classes"):
        UNetConfig(classes=-1)
    for bad in (-0.1, 1.5, float("nan")):
        with pytest.raises(ValueError, match="--label-dropout"):
            TrainConfig(label_dropout=bad)
    assert TrainConfig(label_dropout=0.0).label_dropout == 0 and TrainConfig(label_dropout=1.0).label_dropout == 1


def test_an_unconditional_model_gives_the_eps_and_weights_it_gave():
    """Reference written by the code before class conditioning (scripts/unconditional_reference.py): equal
    bit for bit on the machine that wrote it with its two threads; one thread moves eps by up to 8e-7,
    hence a tolerance of 1e-5 for other CPUs and thread counts."""
    expected = np.load(DATA / "unconditional-eps.npz")
    for name in ("tiny-old-checkpoint", "tiny-edm-checkpoint"):
        model, _, config = load_checkpoint(DATA / name)
        assert "classes" not in config["unet"] and model.config.classes == 0  # old configs load unconditional
        with torch.no_grad():
            eps = model(XT, T)
        torch.testing.assert_close(eps, torch.from_numpy(expected[name.replace("-", "_")]), rtol=1e-5, atol=1e-5)
    torch.manual_seed(0)
    fresh = UNet(TINY).eval()  # the same initialisation draws: no new parameter, none drawn more
    state = fresh.state_dict()
    assert list(state) == list(expected["fresh_tiny_names"])
    np.testing.assert_allclose([v.double().sum().item() for v in state.values()], expected["fresh_tiny_sums"],
                               rtol=1e-6, atol=1e-6)
    with torch.no_grad():
        torch.testing.assert_close(fresh(XT, T), torch.from_numpy(expected["fresh_tiny"]), rtol=1e-5, atol=1e-5)
    assert not hasattr(fresh, "label_embedding")


def test_labels_on_an_unconditional_model_or_outside_0_to_classes_are_refused():
    with pytest.raises(ValueError, match="unconditional"):
        UNet(TINY)(XT, T, torch.zeros(4, dtype=torch.long))
    model = UNet(replace(TINY, classes=10))
    for bad in ([-1, 0, 0, 0], [0, 11, 0, 0]):
        with pytest.raises(ValueError, match=r"0\.\.10"):
            model(XT, T, torch.tensor(bad))
    with pytest.raises(ValueError, match="integers"):
        model(XT, T, torch.zeros(4))
    with pytest.raises(ValueError, match="shape"):
        model(XT, T, torch.zeros(3, dtype=torch.long))


@pytest.mark.parametrize("preconditioning", ["none", "edm"])
def test_a_zero_label_embedding_gives_the_unconditional_models_outputs_and_a_nonzero_one_the_labels(preconditioning):
    cfg = replace(TINY, preconditioning=preconditioning)
    schedule = linear_schedule()
    torch.manual_seed(0)
    plain = precondition(UNet(cfg).eval(), schedule.alpha_bar)
    network = UNet(replace(cfg, classes=10)).eval()
    weights = (plain.inner if preconditioning == "edm" else plain).state_dict()
    network.load_state_dict(weights | {"label_embedding.weight": torch.zeros(11, 4 * cfg.base)})
    model = precondition(network, schedule.alpha_bar)
    with torch.no_grad():
        reference = plain(XT, T)
        for labels in (None, torch.tensor([0, 3, 9, 10])):
            assert torch.equal(model(XT, T) if labels is None else model(XT, T, labels), reference)
        torch.nn.init.normal_(network.label_embedding.weight)
        by_label = [model(XT, T, torch.full((4,), k)) for k in range(11)]
        assert torch.equal(model(XT, T), by_label[10])  # no labels: "no label" for each image
        for k in range(10):
            assert (by_label[k] - by_label[k + 1]).abs().max() > 1e-3  # each label its own output


def test_a_deepened_conditional_model_keeps_its_labels_outputs():
    torch.manual_seed(0)
    model = UNet(replace(TINY, classes=10)).eval()
    torch.nn.init.normal_(model.label_embedding.weight)
    deeper = deepen(model, 2).eval()
    labels = torch.tensor([0, 4, 9, 10])
    with torch.no_grad():
        torch.testing.assert_close(deeper(XT, T, labels), model(XT, T, labels), rtol=1e-5, atol=1e-5)


def test_the_loss_passes_labels_only_when_given():
    x0 = torch.zeros(4, 1, 2, 2)
    seen = []
    EpsLoss()(lambda xt, t: seen.append("none") or xt, linear_schedule(), x0)  # a model without labels
    EpsLoss()(lambda xt, t, labels: seen.append(labels) or xt, linear_schedule(), x0, labels=torch.arange(4))
    assert seen[0] == "none" and torch.equal(seen[1], torch.arange(4))


def test_train_conditional_from_an_unconditional_model_starts_as_that_model(idx_folder, tmp_path):
    run = tmp_path / "run"
    # One step at a learning rate of 1e-20 moves no weight measurably: the EMA is the starting point.
    assert cli_train(run, idx_folder, "--conditional", "--steps", "1", "--lr", "1e-20", "--init-from", str(OLD)) == 0
    model, _, config = load_checkpoint(run)
    assert config["unet"]["classes"] == 10  # the blurry squares' labels, 0..9
    assert config["init_from"]["classes"] == 0 and config["train"]["label_dropout"] == 0.1
    source, _, _ = load_checkpoint(OLD)
    with torch.no_grad():
        reference = source(XT, T)
        for k in range(11):
            torch.testing.assert_close(model(XT, T, torch.full((4,), k)), reference, rtol=1e-6, atol=1e-6)
    # The conditional run resumes as such, and stays conditional with or without the flag.
    assert cli_train(run, idx_folder, "--steps", "2", "--resume") == 0
    assert loading.read(loading.find(run))[0]["unet"]["classes"] == 10


def test_conditional_is_refused_on_resuming_an_unconditional_run(idx_folder, tmp_path, capsys):
    run = tmp_path / "run"
    assert cli_train(run, idx_folder, "--steps", "2") == 0
    before = (loading.find(run) / "weights.safetensors").read_bytes()
    assert cli_train(run, idx_folder, "--steps", "4", "--resume", "--conditional") == 2
    assert "--conditional" in capsys.readouterr().err
    assert (loading.find(run) / "weights.safetensors").read_bytes() == before


def test_a_conditional_run_exports_and_its_record_says_so(idx_folder, tmp_path):
    run, out = tmp_path / "run", tmp_path / "exported"
    assert cli_train(run, idx_folder, "--conditional", "--steps", "3", "--label-dropout", "0.5") == 0
    assert main(["export", "--checkpoint", str(run), "--out", str(out)]) == 0
    config = json.loads((out / "config.json").read_text())
    assert config["unet"]["classes"] == 10 and config["train"]["label_dropout"] == 0.5
    model, _, _ = load_checkpoint(out)
    assert model.label_embedding.weight.shape == (11, 4 * TINY.base)
    assert model.label_embedding.weight[:10].abs().max() > 0  # trained with labels, away from zero


def test_the_shipped_conditional_fixture_loads_and_its_labels_matter():
    model, _, config = load_checkpoint(COND)
    assert config["unet"]["classes"] == 10
    with torch.no_grad():
        assert (model(XT, T, torch.full((4,), 3)) - model(XT, T)).abs().max() > 1e-4


def test_a_killed_conditional_run_resumes_bit_identically(idx_folder, tmp_path):
    straight, run = tmp_path / "straight", tmp_path / "killed"
    extra = ("--conditional", "--label-dropout", "0.3")
    unbroken = start(straight, idx_folder, resume=False, extra=extra)
    assert unbroken.wait(timeout=120) == 0, unbroken.stderr.read().decode()[-2000:]
    outcomes, last = [], None
    for delay_s in (None, 0.3):  # None: during a save
        outcomes.append(kill_later(start(run, idx_folder, resume=last is not None, extra=extra), run, delay_s))
        step = step_of_latest(run)
        last = step if step is not None else last
        if outcomes[-1] == "finished":
            break
    proc = start(run, idx_folder, resume=last is not None, extra=extra)
    assert proc.wait(timeout=120) == 0, proc.stderr.read().decode()[-2000:]
    assert "killed" in " ".join(outcomes), outcomes
    config, a = loading.read(loading.find(straight))
    _, b = loading.read(loading.find(run))
    assert config["unet"]["classes"] == 10
    for part in ("model", "ema"):
        assert set(a[part]) == set(b[part]) and "label_embedding.weight" in a[part]
        for name in a[part]:
            assert torch.equal(a[part][name], b[part][name]), (part, name)
    state_a, state_b = checkpoint.read_state(loading.find(straight)), checkpoint.read_state(loading.find(run))
    assert torch.equal(state_a["rng"]["gen"], state_b["rng"]["gen"])
