"""A local web explorer: draw or pick digits, invert and decode them, mix latents, watch trajectories.

`Explorer` (service.py) does the model work with no web imports; `create_app`, `listen` and `serve`
(server.py) need the `explore` extra (FastAPI and uvicorn) and are imported only when used.
"""

from mnistdiff.explore.service import Explorer

__all__ = ["Explorer", "create_app", "listen", "serve"]


def __getattr__(name: str):
    if name in ("create_app", "listen", "serve"):
        from mnistdiff.explore import server

        return getattr(server, name)
    raise AttributeError(name)
