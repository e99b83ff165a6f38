"""Keep freed memory for reuse instead of handing it back to the kernel (Linux with glibc).

glibc serves every block above its mmap threshold (128 KiB to 32 MiB, moving) with its own mmap
and unmaps it on free. A forward pass of the UNet allocates its activations afresh each call, so
each call gets new pages from the kernel, zeroed one 4 KiB page fault at a time: 14,000-20,000
faults per compiled batch-64 forward of `small` on the 2-core dev machine, about 8% of its time
(benchmarks/results/cpu-2core-allocator/). Serving all blocks from the heap and never trimming
it removes the faults; the cost is that the process keeps what it freed until it exits.
"""

from __future__ import annotations

import ctypes
import platform

M_TRIM_THRESHOLD, M_MMAP_MAX = -1, -4  # mallopt parameters, from glibc's malloc.h


def keep_freed_memory() -> bool:
    """Tell glibc to serve every block from its heap and never trim it; True where it took effect.

    Process-wide and lasting. The CLI and the benchmarks call it; call it yourself before sampling
    or training from Python. Does nothing off glibc (macOS, Windows, musl).
    """
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    mallopt = getattr(ctypes.CDLL(None), "mallopt", None)
    if mallopt is None:
        return False
    return bool(mallopt(M_MMAP_MAX, 0)) and bool(mallopt(M_TRIM_THRESHOLD, 2**31 - 1))
