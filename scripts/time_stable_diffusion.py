"""Seconds per UNet evaluation of Stable Diffusion 1.5's architecture on this machine, with random
weights built from its config (nothing is downloaded): what `mnistdiff invert` and `merge` on a
Stable Diffusion pipeline spend their time on (docs/diffusers.md counts the evaluations).

    python scripts/time_stable_diffusion.py --size 512 --batch 1 --repeats 2 [--device cuda]
"""

from __future__ import annotations

import argparse
import json
import time

import torch

# Stable Diffusion 1.5's unet/config.json, the fields that set its shape.
SD15_UNET = {"sample_size": 64, "in_channels": 4, "out_channels": 4, "layers_per_block": 2,
             "block_out_channels": (320, 640, 1280, 1280), "cross_attention_dim": 768, "attention_head_dim": 8,
             "down_block_types": ("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
             "up_block_types": ("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3}


def time_unet(size: int, batch: int, repeats: int, device: str) -> dict:
    import diffusers

    unet = diffusers.UNet2DConditionModel(**SD15_UNET).eval().requires_grad_(False).to(device)
    x = torch.randn(batch, 4, size // 8, size // 8, device=device)
    text = torch.randn(batch, 77, 768, device=device)  # a prompt's CLIP embeddings: 77 tokens
    t = torch.full((batch,), 500, device=device)
    seconds = []
    with torch.no_grad():
        for _ in range(repeats + 1):  # the first call warms up
            start = time.perf_counter()
            unet(x, t, encoder_hidden_states=text)
            if device == "cuda":
                torch.cuda.synchronize()
            seconds.append(time.perf_counter() - start)
    return {"size": size, "batch": batch, "device": device, "threads": torch.get_num_threads(),
            "parameters": sum(p.numel() for p in unet.parameters()), "seconds_per_evaluation": min(seconds[1:])}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=512, help="picture side in pixels (latents are 1/8 of it)")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    from mnistdiff.runtime import fit_threads_to_load

    fit_threads_to_load()
    print(json.dumps(time_unet(args.size, args.batch, args.repeats, args.device), indent=2))
