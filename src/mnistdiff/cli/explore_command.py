"""The explore subcommand: a local web page over the model (needs the `explore` extra)."""

from __future__ import annotations

import sys
from pathlib import Path

from mnistdiff.cli.arguments import UsageError

INSTALL = "pip install 'mnistdiff[explore]'"


def install_hint() -> str:
    """How to add the explore extra: from the package index, or where mnistdiff runs from a clone
    (src/mnistdiff beside a pyproject.toml), from that clone."""
    import mnistdiff

    root = Path(mnistdiff.__file__).resolve().parents[2]
    if not (root / "pyproject.toml").is_file():
        return INSTALL
    where = "." if root == Path.cwd().resolve() else str(root)
    return f"pip install -e '{where}[explore]' (from this clone; from the package index: {INSTALL})"


def cmd_explore(args) -> None:
    try:
        import fastapi  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError as err:
        raise UsageError(f"explore needs FastAPI and uvicorn ({err.name} is missing): {install_hint()}") from None
    import os

    import torch

    from mnistdiff.explore import Explorer, listen, serve

    if "OMP_NUM_THREADS" not in os.environ:
        # One image a request: a second thread gains little and, spinning, takes the core the
        # server's own threads need (docs/explore.md has the figures).
        torch.set_num_threads(1)

    listener = listen(args.host, args.port)  # a port in use fails now, not after loading the model
    print("mnistdiff explore: loading the model...", file=sys.stderr, flush=True)
    try:
        explorer = Explorer.from_checkpoint(args.checkpoint, data_dir=args.data_dir, device=args.device,
                                            inversion_iterations=args.inversion_iterations, student=args.student)
    except BaseException:
        listener.close()
        raise
    serve(explorer, host=args.host, port=args.port, open_browser=args.open, listener=listener)
