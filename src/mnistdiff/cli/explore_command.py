"""The explore subcommand: a local web page over the model (needs the `explore` extra)."""

from __future__ import annotations

import sys

from mnistdiff.cli.parser import UsageError

INSTALL = "pip install 'mnistdiff[explore]'"


def cmd_explore(args) -> None:
    try:
        import fastapi  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError as err:
        raise UsageError(f"explore needs FastAPI and uvicorn ({err.name} is missing): {INSTALL}") from None
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
                                            inversion_iterations=args.inversion_iterations)
    except BaseException:
        listener.close()
        raise
    serve(explorer, host=args.host, port=args.port, open_browser=args.open, listener=listener)
