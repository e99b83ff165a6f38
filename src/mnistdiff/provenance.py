"""Where a shipped file came from: the commit and the machine."""

from __future__ import annotations

import os
import platform
import subprocess
from pathlib import Path


def git_commit() -> str | None:
    """The commit of the checkout this package runs from, if it is one."""
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True,
                             cwd=Path(__file__).parent)
        return out.stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


def device_name(device) -> str:
    """A GPU's name, or the CPU's model name (from /proc/cpuinfo where there is one)."""
    import torch

    if torch.device(device).type == "cuda":
        return torch.cuda.get_device_name(device)
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine() -> str:
    """The architecture, CPU count, torch version and GPU, e.g. "x86_64, 2 CPUs, torch 2.13.0+cpu"."""
    import torch

    gpu = f", {device_name(torch.device('cuda'))}" if torch.cuda.is_available() else ""
    return f"{platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}{gpu}"


def machine_details(device) -> dict:
    """The machine in full, for a report: platform, CPU, cores and threads, and the device that ran."""
    import torch

    device = torch.device(device)
    return {"platform": platform.platform(), "processor": device_name(torch.device("cpu")),
            "cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(), "device": device.type,
            "device_name": device_name(device)}
