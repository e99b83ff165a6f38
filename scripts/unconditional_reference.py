"""Write tests/data/unconditional-eps.npz: eps of the tiny test checkpoints and of a fresh tiny UNet
(seed 0) on fixed inputs, with the fresh model's tensor names and sums.

    python scripts/unconditional_reference.py tests/data/unconditional-eps.npz

The file in tests/data was written by the code before class conditioning; tests/test_conditional.py
checks that unconditional models still give these outputs.
"""

import sys
from pathlib import Path

import numpy as np
import torch

from mnistdiff import load_checkpoint
from mnistdiff.model import UNet, get_preset

out = Path(sys.argv[1])
xt = torch.randn(4, 1, 28, 28, generator=torch.Generator().manual_seed(1))
t = torch.tensor([0, 10, 500, 999])
res = {}
for name in ("tiny-old-checkpoint", "tiny-edm-checkpoint"):
    model, _, _ = load_checkpoint(Path("tests/data") / name)
    with torch.no_grad():
        res[name.replace("-", "_")] = model(xt, t).numpy()
torch.manual_seed(0)
fresh = UNet(get_preset("tiny").unet).eval()
with torch.no_grad():
    res["fresh_tiny"] = fresh(xt, t).numpy()
sd = fresh.state_dict()
res["fresh_tiny_names"] = np.array(list(sd))
res["fresh_tiny_sums"] = np.array([v.double().sum().item() for v in sd.values()])
np.savez(out, **res)
