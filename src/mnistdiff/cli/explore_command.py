"""The explore subcommand: a local web page over the model (needs the `explore` extra)."""

from __future__ import annotations

from mnistdiff.cli.parser import UsageError

INSTALL = "pip install 'mnistdiff[explore]'"


def cmd_explore(args) -> None:
    try:
        import fastapi  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError as err:
        raise UsageError(f"explore needs FastAPI and uvicorn ({err.name} is missing): {INSTALL}") from None
    from mnistdiff.explore import Explorer, serve

    explorer = Explorer.from_checkpoint(args.checkpoint, data_dir=args.data_dir, device=args.device)
    serve(explorer, host=args.host, port=args.port, open_browser=args.open)
