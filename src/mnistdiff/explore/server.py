"""The explorer's web app: one page and a small JSON API over `Explorer`, for a local browser."""

from __future__ import annotations

import socket
import threading
from importlib import resources
from typing import Annotated, Literal

from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from pydantic import AfterValidator, BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException

from mnistdiff.explore.limits import BODY_TIMEOUT, IDLE_TIMEOUT, MAX_BODY, BodyLimit, DropsIdleClients
from mnistdiff.explore.service import GUIDANCE, MAX_IMAGES, MAX_STEPS, RULES, SAMPLERS, SIDE, WEIGHTS, Explorer
from mnistdiff.samplers.ddim import check_eta

__all__ = ["MAX_BODY", "create_app", "listen", "make_server", "serve"]

STATIC = {"index.html": "text/html", "app.js": "text/javascript", "style.css": "text/css"}

Image = Annotated[list[Annotated[int, Field(ge=0, le=255)]], Field(min_length=SIDE * SIDE, max_length=SIDE * SIDE)]
Steps = Annotated[int, Field(ge=1, le=MAX_STEPS)]
# A conditional model's label (the service checks it against the model's classes) and guidance scale.
Label = Annotated[int, Field(ge=0)] | None
Guidance = Annotated[float, Field(ge=GUIDANCE[0], le=GUIDANCE[1], allow_inf_nan=False)] | None  # a number, not a string


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class InvertBody(_Body):
    image: Image
    steps: Steps = 10
    trajectory: bool = False


class MixBody(_Body):
    a: Image
    b: Image
    rule: Literal[RULES] = "slerp"  # type: ignore[valid-type]
    weight: Annotated[float, Field(ge=WEIGHTS[0], le=WEIGHTS[1], strict=False)] = 0.5
    steps: Steps = 10
    trajectory: bool = False
    label: Label = None
    guidance: Guidance = None
    fast: bool = False  # decode with the explorer's student


class SampleBody(_Body):
    seed: Annotated[int, Field(ge=0, le=2**31 - 1)] = 0
    sampler: Literal[SAMPLERS] = "ddim"  # type: ignore[valid-type]
    steps: Steps = 10
    eta: Annotated[float, Field(strict=False), AfterValidator(check_eta)] = 0.0  # the CLI's check
    n: Annotated[int, Field(ge=1, le=MAX_IMAGES)] = 16
    trajectory: bool = False
    label: Label = None
    guidance: Guidance = None


def _message(err: RequestValidationError) -> str:
    first = err.errors()[0]
    if first.get("type") == "json_invalid":
        return "the body is not valid JSON"
    where = ".".join(str(p) for p in first.get("loc", ())[1:]) or "body"
    return f"{where}: {first.get('msg', 'invalid')}"


def create_app(explorer: Explorer, body_timeout: float = BODY_TIMEOUT) -> FastAPI:
    """The app: GET / (the page), /app.js, /style.css, /api/info, /api/digits; POST /api/invert, /api/mix,
    /api/sample. Errors come back as JSON {"error": message}, never as a traceback. Bodies are
    bounded in size and in time (limits.py)."""
    app = FastAPI(title="mnistdiff explore", docs_url=None, redoc_url=None, openapi_url=None)
    app.add_middleware(BodyLimit, timeout=body_timeout)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, err: RequestValidationError):
        return JSONResponse({"error": _message(err)}, status_code=422)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, err: HTTPException):
        return JSONResponse({"error": str(err.detail)}, status_code=err.status_code)

    @app.exception_handler(ValueError)
    async def bad_value(request: Request, err: ValueError):
        return JSONResponse({"error": str(err)}, status_code=400)

    @app.exception_handler(Exception)
    async def crashed(request: Request, err: Exception):
        return JSONResponse({"error": f"internal error ({type(err).__name__})"}, status_code=500)

    # The page and the cheap reads are async: they never wait behind model calls for a worker thread.
    @app.get("/", response_class=HTMLResponse)
    async def index():
        return _static("index.html")

    @app.get("/{name}")
    async def static(name: str):
        if name not in STATIC:
            raise HTTPException(404, f"no page {name}")
        return _static(name)

    @app.get("/api/info")
    async def info():
        return explorer.info()

    @app.get("/api/digits")
    async def digits(start: Annotated[int, Query(ge=0)] = 0, count: Annotated[int, Query(ge=1, le=MAX_IMAGES)] = 20):
        return {"digits": explorer.digits(start, count), "total": explorer.info()["digits"]}

    # Plain `def` endpoints run in a thread pool; the explorer's lock queues their model calls.
    @app.post("/api/invert")
    def invert(body: InvertBody):
        return explorer.invert(body.image, body.steps, body.trajectory)

    @app.post("/api/mix")
    def mix(body: MixBody):
        return explorer.mix(body.a, body.b, body.rule, body.weight, body.steps, body.trajectory, body.label,
                            body.guidance, body.fast)

    @app.post("/api/sample")
    def sample(body: SampleBody):
        return explorer.sample(body.seed, body.sampler, body.steps, body.eta, body.n, body.trajectory, body.label,
                               body.guidance)

    return app


def _static(name: str) -> Response:
    text = (resources.files("mnistdiff.explore") / "static" / name).read_text(encoding="utf-8")
    return Response(text, media_type=STATIC[name], headers={"Cache-Control": "no-cache"})


def listen(host: str = "127.0.0.1", port: int = 8000) -> socket.socket:
    """A socket bound to host:port, or a ValueError that says why not (a port in use, say)."""
    listener = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        listener.bind((host, port))
    except OSError as err:
        listener.close()
        raise ValueError(f"cannot listen on {host}:{port} ({err.strerror}): pass another --port or --host") from None
    return listener


def make_server(explorer: Explorer, host: str = "127.0.0.1", port: int = 8000, idle_timeout: float = IDLE_TIMEOUT,
                body_timeout: float = BODY_TIMEOUT):
    """A uvicorn server of the app that drops a client sending nothing for `idle_timeout` seconds and
    a body that takes over `body_timeout` seconds (limits.py)."""
    import uvicorn

    config = uvicorn.Config(create_app(explorer, body_timeout), host=host, port=port, log_level="warning",
                            access_log=False, http=DropsIdleClients, timeout_keep_alive=idle_timeout)
    return uvicorn.Server(config)


def serve(explorer: Explorer, host: str = "127.0.0.1", port: int = 8000, open_browser: bool = False,
          listener: socket.socket | None = None) -> None:
    """Run the app with uvicorn until interrupted, printing its address; `listener` from `listen`,
    else bound here."""
    import webbrowser

    listener = listener or listen(host, port)
    server = make_server(explorer, host, port)
    url = f"http://{'[' + host + ']' if ':' in host else host}:{port}/"

    def announce():
        while not server.started and not server.should_exit:
            threading.Event().wait(0.05)
        if server.started:
            print(f"mnistdiff explore: serving {explorer.name} at {url} (Ctrl-C stops)", flush=True)
            if open_browser:
                webbrowser.open(url)

    threading.Thread(target=announce, daemon=True).start()
    server.run(sockets=[listener])
