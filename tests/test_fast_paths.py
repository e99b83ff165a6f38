"""Each way of running the UNet faster gives the plain path's outputs, within its tolerance."""

import subprocess
import sys

import pytest
import torch

from mnistdiff.diffusion import linear_schedule
from mnistdiff.generation import generate
from mnistdiff.model import UNet, get_preset
from mnistdiff.precision import autocast
from mnistdiff.runtime import GroupNorm
from mnistdiff.training.compiled import compile_for_training, compiled_grads_match


@pytest.fixture(scope="module")
def model_and_input():
    torch.manual_seed(0)
    model = UNet(get_preset("tiny").unet).eval()
    x = torch.randn(4, 1, 28, 28, generator=torch.Generator().manual_seed(1))
    t = torch.tensor([0, 10, 500, 999])
    with torch.no_grad():
        plain = model(x, t)
    return model, x, t, plain


def test_channels_last_matches(model_and_input):
    model, x, t, plain = model_and_input
    fast = UNet(model.config).eval()
    fast.load_state_dict(model.state_dict())
    fast = fast.to(memory_format=torch.channels_last)
    with torch.no_grad():
        out = fast(x.contiguous(memory_format=torch.channels_last), t)
    torch.testing.assert_close(out, plain, atol=1e-5, rtol=1e-4)


def test_bf16_autocast_matches_loosely(model_and_input):
    model, x, t, plain = model_and_input
    with torch.no_grad(), autocast("bf16"):
        out = model(x, t).float()
    # bf16 keeps 8 bits of mantissa: errors of a few parts in a thousand per layer add up.
    assert (out - plain).abs().max() < 0.05 * plain.abs().max()
    assert (out - plain).norm() < 0.02 * plain.norm()


def test_compile_matches(model_and_input):
    model, x, t, plain = model_and_input
    compiled = torch.compile(model)
    with torch.no_grad():
        out = compiled(x, t)
    torch.testing.assert_close(out, plain, atol=1e-4, rtol=1e-3)
    # Sampling through the compiled model: 6 images in batches of 4, the last one padded to 4.
    schedule = linear_schedule()
    fast = generate(model, schedule, 6, steps=5, batch_size=4, compile=True).int()
    slow = generate(model, schedule, 6, steps=5, batch_size=4).int()
    assert fast.shape == slow.shape == (6, 1, 28, 28)
    assert (fast - slow).abs().max() <= 1  # grey levels: rounding of nearly equal floats


def test_compiled_groupnorm_is_accurate_far_from_zero_in_both_layouts():
    torch.manual_seed(0)
    ours = GroupNorm(4, 24)
    with torch.no_grad():
        ours.weight.uniform_(0.5, 1.5)
        ours.bias.uniform_(-1, 1)
    compiled = torch.compile(ours)
    # Mean 30, spread 0.1, channel means apart: E[x^2] - E[x]^2 in fp32 would lose the variance.
    x = torch.randn(3, 24, 7, 7) * 0.1 + 30 + torch.linspace(0, 1, 24)[None, :, None, None]
    weights = torch.linspace(-1, 1, x.numel()).view_as(x)  # a loss that reaches every output

    def run(norm, x, w, b):
        x = x.detach().requires_grad_()
        out = torch.nn.functional.group_norm(x, 4, w, b) if norm is None else norm(x)
        (out * weights.to(out.dtype)).sum().backward()
        return out, x.grad

    expected, expected_grad = run(None, x.double(), ours.weight.double(), ours.bias.double())
    for layout in (torch.contiguous_format, torch.channels_last):
        # (torch's own CPU kernel is 0.03 off here in channels-last, fp32.)
        out, grad = run(compiled, x.clone(memory_format=layout), None, None)
        torch.testing.assert_close(out.double(), expected, atol=1e-3, rtol=1e-3)
        torch.testing.assert_close(grad.double(), expected_grad, atol=1e-2, rtol=1e-2)
    with torch.no_grad(), autocast("bf16"):  # on a CPU, torch's returns bf16 for bf16 input; so does ours
        x = torch.randn(3, 24, 7, 7).bfloat16()
        out, plain = compiled(x), torch.nn.functional.group_norm(x, 4, ours.weight, ours.bias)
    assert out.dtype == plain.dtype == torch.bfloat16
    torch.testing.assert_close(out, plain, atol=2e-2, rtol=1e-2)


def test_inference_mode_matches(model_and_input):
    model, x, t, plain = model_and_input
    with torch.inference_mode():
        torch.testing.assert_close(model(x, t), plain, atol=0, rtol=0)


def test_bf16_sampling_draws_nearly_the_same_images(model_and_input):
    model = model_and_input[0]
    schedule = linear_schedule()
    a = generate(model, schedule, 8, steps=5, precision="fp32").int()
    b = generate(model, schedule, 8, steps=5, precision="bf16").int()
    assert (a - b).abs().float().mean() < 4  # grey levels out of 255


def test_compiled_training_gradients_are_checked(model_and_input, monkeypatch):
    model = model_and_input[0]
    schedule = linear_schedule()
    x0 = torch.rand(4, 1, 28, 28, generator=torch.Generator().manual_seed(2)) * 2 - 1
    ok, error = compiled_grads_match(model, torch.compile(model), schedule, x0, "fp32")
    assert ok and error < 1e-3
    # A stand-in whose backward is wrong (no gradient reaches the weights) fails the check...
    broken = lambda x, t: model(x, t).detach() + 0 * model(x, t)  # noqa: E731
    ok, error = compiled_grads_match(model, broken, schedule, x0, "fp32")
    assert not ok and error == pytest.approx(1.0)
    # ...and training then keeps the plain model.
    monkeypatch.setattr(torch, "compile", lambda m: broken)
    chosen, message = compile_for_training(model, schedule, x0, "fp32")
    assert chosen is model and "NOT used" in message
    # A compile that cannot build (no C++ compiler, say) leaves the plain model too, and says why.

    def fails(x, t):
        raise RuntimeError("no C++ compiler found")

    monkeypatch.setattr(torch, "compile", lambda m: fails)
    chosen, message = compile_for_training(model, schedule, x0, "fp32")
    assert chosen is model and "NOT used" in message and "no C++ compiler" in message


def test_compiled_bf16_training_reaches_every_level_of_small():
    """The compiled bf16 backward of interpolate gave zero gradients at 14x14, so `small` fell back to
    plain training; its upsampling is a broadcast under compile now, and the gradients match."""
    torch.manual_seed(0)
    model = UNet(get_preset("small").unet)
    x0 = torch.rand(8, 1, 28, 28, generator=torch.Generator().manual_seed(3)) * 2 - 1
    ok, error = compiled_grads_match(model, torch.compile(model), linear_schedule(), x0, "bf16")
    assert ok, f"compiled bf16 gradients {error:.0%} off"


def test_cli_runs_compiled_fp32_in_channels_last_on_cpu():
    from argparse import Namespace

    from mnistdiff.cli.commands import load_model

    def convs_are_channels_last(precision, compile):
        args = Namespace(checkpoint=None, device="cpu", precision=precision, compile=compile)
        model = load_model(args)[0]
        weight = next(m.weight for m in model.modules() if isinstance(m, torch.nn.Conv2d) and m.in_channels > 1)
        return weight.is_contiguous(memory_format=torch.channels_last) and not weight.is_contiguous()

    assert convs_are_channels_last("fp32", compile=True)
    assert not convs_are_channels_last("bf16", compile=True)
    assert not convs_are_channels_last("fp32", compile=False)


FAULTS_OF_REPEATED_BLOCKS = """
import resource, sys, torch
from mnistdiff import keep_freed_memory
kept = keep_freed_memory() if sys.argv[1] == "keep" else False
def faults():
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(20):  # 64 MiB blocks, allocated, touched and freed: glibc's heap settles
    torch.empty(16 * 2**20).fill_(1)
before = faults()
for _ in range(5):  # as a forward pass does with its activations, call after call
    torch.empty(16 * 2**20).fill_(1)
print(kept, faults() - before)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's allocator")
def test_keep_freed_memory_ends_the_page_faults_of_reallocated_blocks():
    runs = {}
    for mode in ("keep", "default"):
        out = subprocess.run([sys.executable, "-c", FAULTS_OF_REPEATED_BLOCKS, mode], capture_output=True, text=True,
                             check=True).stdout.split()
        runs[mode] = (out[0] == "True", int(out[1]))
    assert runs["keep"][0]
    # Default glibc maps each block over 32 MiB afresh: 16,384 new 4 KiB pages, each a fault, per block.
    assert runs["default"][1] > 5 * 10_000
    assert runs["keep"][1] < 500
