from dataclasses import replace

import pytest
import torch

from mnistdiff.diffusion import EpsLoss, linear_schedule
from mnistdiff.model import PRESETS, UNet, get_preset


def n_params(model):
    return sum(p.numel() for p in model.parameters())


def test_presets_build_and_tiny_is_tiny():
    assert n_params(UNet(get_preset("tiny").unet)) < 100_000
    seed = get_preset("seed")
    assert (seed.unet.base, seed.unet.mults, seed.unet.heads) == (64, (1, 2, 4), 4)
    assert (seed.train.lr, seed.train.batch_size) == (5e-4, 64)
    assert set(PRESETS) >= {"tiny", "small", "seed"}


def test_output_shape_on_28x28_and_dependence_on_t():
    torch.manual_seed(0)
    model = UNet(get_preset("tiny").unet).eval()
    x = torch.randn(3, 1, 28, 28)
    a = model(x, torch.tensor([0, 0, 0]))
    b = model(x, torch.tensor([999, 999, 999]))
    assert a.shape == x.shape
    assert (a - b).abs().mean() > 1e-3


def test_each_output_depends_only_on_its_own_input():
    model = UNet(get_preset("tiny").unet).eval()
    x = torch.randn(2, 1, 28, 28)
    t = torch.tensor([5, 500])
    y = model(x, t)
    x2 = x.clone()
    x2[1] = torch.randn(1, 28, 28)
    torch.testing.assert_close(model(x2, t)[0], y[0])


def test_a_patched_unet_sees_every_pixel_and_puts_each_output_in_its_place():
    torch.manual_seed(0)
    cfg = replace(get_preset("tiny").unet, patch=2)
    model = UNet(cfg).eval()
    assert model.stem.in_channels == 4 and model.out.out_channels == 4
    x = torch.randn(2, 1, 28, 28, requires_grad=True)
    y = model(x, torch.tensor([3, 700]))
    assert y.shape == x.shape
    (grad,) = torch.autograd.grad(y[0, 0, 27, 0], x)
    assert grad[0].abs().gt(0).float().mean() > 0.5 and grad[1].abs().max() == 0  # a wide view, its own image
    # The output layer's 4 channels at each 14x14 position are that position's 2x2 block of pixels, in reading order.
    with torch.no_grad():
        model.out.weight.zero_()
        model.out.bias.copy_(torch.tensor([1.0, 2.0, 3.0, 4.0]))
        out = model(x, torch.tensor([3, 700]))
    assert torch.equal(out, torch.tensor([[1.0, 2.0], [3.0, 4.0]]).repeat(2, 1, 14, 14))


def test_a_full_resolution_correction_starts_at_zero_then_learns_and_sees_across_patches():
    torch.manual_seed(0)
    cfg = replace(get_preset("tiny").unet, patch=2)
    plain = UNet(cfg).eval()
    torch.manual_seed(0)
    model = UNet(replace(cfg, full_res=8)).eval()
    x, t = torch.randn(2, 1, 28, 28), torch.tensor([3, 700])
    torch.testing.assert_close(model(x, t), plain(x, t), rtol=0, atol=0)  # a new model is the patch model
    model(x, t).square().mean().backward()
    assert all(p.grad is not None and p.grad.abs().max() > 0
               for name, p in model.full_res.named_parameters() if name.startswith("conv2"))
    with torch.no_grad():
        model.full_res.conv2.weight.normal_()
    a, temb = torch.randn(2, 8, 14, 14), torch.randn(2, 32)
    x.requires_grad_(True)
    (grad,) = torch.autograd.grad(model.full_res(a, x, temb)[0, 0, 1, 1], x)
    # The correction reads the pixels themselves, two 3x3 convolutions around each: into the next 2x2 block, no further.
    assert grad[0, 0, 3, 3] != 0 and grad[0, 0, 4, 4] == 0 and grad[1].abs().max() == 0
    with pytest.raises(ValueError, match="--full-res"):
        replace(cfg, full_res=-1)


@pytest.mark.parametrize("shape, message", [(dict(patch=3), "divide the image side 28"),
                                            (dict(patch=0), "at least 1"),
                                            (dict(patch=2, mults=(1, 2, 2)), "cannot be halved 2 times")])
def test_a_patch_that_does_not_fit_the_image_is_refused(shape, message):
    with pytest.raises(ValueError, match=message):
        replace(get_preset("tiny").unet, **shape)


def test_tiny_preset_overfits_a_small_batch():
    torch.manual_seed(0)
    model = UNet(get_preset("tiny").unet)
    schedule = linear_schedule()
    x0 = torch.rand(8, 1, 28, 28) * 2 - 1
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    gen = torch.Generator().manual_seed(0)
    losses = []
    for _ in range(300):
        loss = EpsLoss()(model, schedule, x0, generator=gen)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    first, last = sum(losses[:20]) / 20, sum(losses[-20:]) / 20
    assert last < 0.5 * first
