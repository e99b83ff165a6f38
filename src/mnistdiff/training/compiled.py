"""torch.compile for training, used only where its gradients match the plain model's.

On torch 2.13's CPU backend the compiled backward under bf16 autocast once returned zero
gradients for half of the UNet (nearest interpolate's; model/unet.py: upsample_nearest works
round it), so a compiled training step is checked against a plain one on a real batch before
the run trusts it.
"""

from __future__ import annotations

import torch

from mnistdiff.diffusion import EpsLoss, Schedule
from mnistdiff.precision import autocast
from mnistdiff.runtime import compile_model


def gradients(model, params, schedule: Schedule, x0: torch.Tensor, precision: str) -> torch.Tensor:
    """All parameter gradients of one eps-loss step, flattened; the same t and eps on every call."""
    for p in params:
        p.grad = None
    with autocast(precision, x0.device.type):
        loss = EpsLoss()(model, schedule, x0, generator=torch.Generator().manual_seed(0))
    loss.backward()
    grads = torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p)).flatten() for p in params])
    for p in params:
        p.grad = None
    return grads


def compiled_grads_match(model, compiled, schedule: Schedule, x0: torch.Tensor, precision: str,
                         tolerance: float = 0.05) -> tuple[bool, float]:
    """Whether `compiled` (model through torch.compile) gives model's gradients within `tolerance`
    (relative norm of the difference); returns the verdict and the relative error."""
    params = list(model.parameters())
    was_training = model.training
    model.eval()  # no dropout: both runs see the same network, and the global RNG is not drawn from
    plain = gradients(model, params, schedule, x0, precision)
    fast = gradients(compiled, params, schedule, x0, precision)
    model.train(was_training)
    error = ((fast - plain).norm() / plain.norm()).item()
    return error < tolerance, error


def compile_for_training(model, schedule: Schedule, x0: torch.Tensor, precision: str):
    """compile_model(model) if its gradients pass the check on batch x0, else model, with a message."""
    compiled = compile_model(model)
    try:
        ok, error = compiled_grads_match(model, compiled, schedule, x0, precision)
    except Exception as err:  # torch.compile builds on the first call: no C++ compiler, an unsupported op...
        first_line = (str(err).strip().splitlines() or [""])[0][:200]
        return model, (f"compile: NOT used, torch.compile failed ({type(err).__name__}: {first_line}); "
                       "training runs uncompiled")
    if ok:
        return compiled, f"compile: gradients match the plain model's (relative error {error:.1e})"
    return model, (f"compile: NOT used, its {precision} gradients differ from the plain model's by "
                   f"{error:.0%} (a torch.compile bug on this backend); training runs uncompiled")
