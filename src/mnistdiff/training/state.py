"""Training state (optimizer, RNG, data order) as safetensors plus JSON: nothing is ever unpickled.

A nested structure of dicts, lists, numbers, strings and tensors is split into a JSON tree in
which each tensor is replaced by {"tensor": NAME}, and a flat NAME -> tensor dict for safetensors.
"""

from __future__ import annotations

import torch


def split(tree, tensors: dict[str, torch.Tensor] | None = None, name: str = "") -> tuple[object, dict]:
    """(JSON tree, tensors) of a nested structure; dict keys become strings."""
    tensors = {} if tensors is None else tensors
    if isinstance(tree, torch.Tensor):
        tensors[name] = tree.detach().cpu().contiguous()
        return {"tensor": name}, tensors
    if isinstance(tree, dict):
        return {str(k): split(v, tensors, f"{name}.{k}".lstrip("."))[0] for k, v in tree.items()}, tensors
    if isinstance(tree, (list, tuple)):
        return [split(v, tensors, f"{name}.{i}".lstrip("."))[0] for i, v in enumerate(tree)], tensors
    if tree is None or isinstance(tree, (bool, int, float, str)):
        return tree, tensors
    raise TypeError(f"cannot store {type(tree).__name__} at {name!r} as JSON or a tensor")


def join(tree, tensors: dict[str, torch.Tensor]):
    """The inverse of `split`; raises KeyError naming a tensor that is missing."""
    if isinstance(tree, dict):
        if set(tree) == {"tensor"} and isinstance(tree["tensor"], str):
            return tensors[tree["tensor"]]
        return {k: join(v, tensors) for k, v in tree.items()}
    if isinstance(tree, list):
        return [join(v, tensors) for v in tree]
    return tree


def optimizer_state(saved: dict, optimizer: torch.optim.Optimizer) -> dict:
    """A state dict read back from JSON, with the key and value types `optimizer` expects."""
    groups = []
    for group, current in zip(saved["param_groups"], optimizer.param_groups):
        groups.append({k: tuple(v) if isinstance(current.get(k), tuple) else v for k, v in group.items()})
    return {"state": {int(k): v for k, v in saved["state"].items()}, "param_groups": groups}
