"""A deeper model that starts as a trained one: same outputs, then trainable like any other."""

from dataclasses import replace

import pytest
import torch

from mnistdiff import loading
from mnistdiff.cli import main
from mnistdiff.diffusion import linear_schedule
from mnistdiff.model import UNet, get_preset, precondition
from mnistdiff.model.grow import deepen

FAST = ["--preset", "tiny", "--checkpoint-every", "10", "--sample-every", "1000"]


def scrambled(cfg, seed=0):
    """A UNet whose every weight is random, zero-initialised ones too, so that nothing is zero by luck."""
    model = UNet(cfg).eval()
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(0.1 * torch.randn(p.shape, generator=gen))
    return model


@pytest.mark.parametrize("before, after", [(1, 2), (1, 3), (2, 3)])
@pytest.mark.parametrize("preconditioning", ["none", "edm"])
def test_a_deepened_model_gives_the_same_eps_everywhere(before, after, preconditioning):
    cfg = replace(get_preset("small").unet, base=16, blocks=before, dropout=0.0, preconditioning=preconditioning)
    alpha_bar = linear_schedule().alpha_bar
    model = scrambled(cfg)
    deeper = deepen(model, after).eval()
    assert deeper.config.blocks == after
    assert sum(p.numel() for p in deeper.parameters()) > sum(p.numel() for p in model.parameters())
    x = torch.randn(6, 1, 28, 28, generator=torch.Generator().manual_seed(1))
    t = torch.tensor([0, 1, 100, 500, 900, 999])
    with torch.no_grad():
        torch.testing.assert_close(precondition(deeper, alpha_bar)(x, t), precondition(model, alpha_bar)(x, t),
                                   rtol=0, atol=1e-6)


def test_a_deepened_patch_model_keeps_its_full_resolution_correction():
    model = scrambled(replace(get_preset("patch").unet, base=16, full_res=8))
    deeper = deepen(model, 2).eval()
    x, t = torch.randn(3, 1, 28, 28, generator=torch.Generator().manual_seed(1)), torch.tensor([0, 500, 999])
    with torch.no_grad():
        torch.testing.assert_close(deeper(x, t), model(x, t), rtol=0, atol=1e-6)


def test_the_new_blocks_learn():
    model = scrambled(replace(get_preset("tiny").unet, dropout=0.0))
    deeper = deepen(model, 2).train()
    x, t = torch.randn(4, 1, 28, 28), torch.tensor([3, 30, 300, 900])
    (deeper(x, t) - torch.randn(4, 1, 28, 28)).square().mean().backward()
    for new in (deeper.down[0].res[1], deeper.up[0].res[1]):  # a new block going down, and one going up
        assert new.conv2.weight.grad.abs().sum() > 0


def test_a_model_cannot_grow_shallower():
    model = UNet(replace(get_preset("tiny").unet, blocks=2))
    with pytest.raises(ValueError, match="deeper"):
        deepen(model, 1)


def test_init_from_with_more_blocks_starts_from_the_deeper_copy(idx_folder, tmp_path, capsys):
    first, second = tmp_path / "first", tmp_path / "second"
    common = [*FAST, "--data-dir", str(idx_folder)]
    assert main(["train", *common, "--steps", "20", "--out", str(first)]) == 0
    source = loading.find(first)
    config, weights = loading.read(source)
    old = UNet(loading.parse_config(config)[0])
    old.load_state_dict(weights["ema"])
    # A learning rate of ~0 leaves the weights where they started: a deeper copy with the same outputs.
    assert main(["train", *common, "--steps", "5", "--lr", "1e-20", "--blocks", "2", "--init-from", str(first),
                 "--out", str(second)]) == 0
    run_config, after = loading.read(loading.find(second))
    assert run_config["unet"]["blocks"] == 2 and run_config["init_from"]["blocks"] == 1
    deeper = UNet(loading.parse_config(run_config)[0]).eval()
    deeper.load_state_dict(after["model"])
    x, t = torch.randn(4, 1, 28, 28), torch.tensor([0, 10, 400, 999])
    with torch.no_grad():
        torch.testing.assert_close(deeper(x, t), old.eval()(x, t), rtol=0, atol=1e-5)
    # Fewer blocks than the model's, or another width, is still refused.
    for flag, value in (("--blocks", "1"), ("--base", "16")):
        assert main(["train", *common, "--steps", "5", flag, value, "--init-from", str(second),
                     "--out", str(tmp_path / flag.strip("-"))]) == 2
        assert "keeps it" in capsys.readouterr().err
