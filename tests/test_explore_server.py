"""The explorer's web server holds up: bounded input, 4xx messages, one model call at a time, disconnects."""

import json
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from torch import nn

from explore_support import (fixture_digits, folder_with_test_set, free_port, live_server, tiny_checkpoint,
                             tiny_conditional_explorer, tiny_explorer)

pytest.importorskip("fastapi", reason="the explore extra (FastAPI, uvicorn) is not installed")
pytest.importorskip("uvicorn", reason="the explore extra (FastAPI, uvicorn) is not installed")
httpx = pytest.importorskip("httpx")
from fastapi.testclient import TestClient  # noqa: E402

from mnistdiff.explore import create_app  # noqa: E402
from mnistdiff.explore.server import MAX_BODY  # noqa: E402

IMAGES, _ = fixture_digits()
A, B = IMAGES[0].flatten().tolist(), IMAGES[1].flatten().tolist()


@pytest.fixture(scope="module")
def explorer():
    return tiny_explorer()


@pytest.fixture(scope="module")
def client(explorer):
    return TestClient(create_app(explorer), raise_server_exceptions=False)


def test_the_page_and_its_files_are_served_from_the_package(client):
    page = client.get("/")
    assert page.status_code == 200 and "<canvas" in page.text
    for name, kind in (("app.js", "javascript"), ("style.css", "css")):
        response = client.get("/" + name)
        assert response.status_code == 200 and kind in response.headers["content-type"]
    assert "http" not in page.text + client.get("/app.js").text + client.get("/style.css").text  # nothing remote


def test_the_api_answers_with_images_and_readings(client):
    info = client.get("/api/info").json()
    assert info["digits"] == 500 and "pixel" in info["rules"]
    mix = client.post("/api/mix", json={"a": A, "b": B, "rule": "linear", "weight": 1, "steps": 3})
    assert mix.status_code == 200 and len(mix.json()["image"]) == 784
    sample = client.post("/api/sample", json={"n": 3, "steps": 2, "trajectory": True}).json()
    assert len(sample["images"]) == len(sample["readings"]) == 3 and sample["trajectory"][-1]["t"] == -1
    assert len(client.get("/api/digits", params={"start": 10, "count": 3}).json()["digits"]) == 3


@pytest.mark.parametrize("path, body", [
    ("/api/invert", {"image": A[:100]}),
    ("/api/invert", {"image": [300] * 784}),
    ("/api/invert", {"image": [0.5] * 784}),
    ("/api/invert", {"image": A, "steps": 10_000}),
    ("/api/invert", {"image": A, "extra": 1}),
    ("/api/mix", {"a": A, "b": B, "weight": 9.0}),
    ("/api/mix", {"a": A, "b": B, "rule": "average"}),
    ("/api/mix", {"a": A}),
    ("/api/sample", {"n": 65}),
    ("/api/sample", {"eta": -1}),
    ("/api/sample", {"eta": 5}),
    ("/api/sample", {"seed": "zero"}),
    ("/api/sample", [1, 2]),
])
def test_bad_input_gets_a_4xx_with_a_message(client, path, body):
    response = client.post(path, json=body)
    assert 400 <= response.status_code < 500 and response.json()["error"]


def test_eta_gets_the_command_lines_check(client):
    for eta in (5, float("nan"), float("inf")):
        body = json.dumps({"eta": eta}).encode()  # NaN and Infinity as Python's json writes them
        error = client.post("/api/sample", content=body, headers={"content-type": "application/json"}).json()["error"]
        assert "eta must be a number in [0, 1]" in error, error


def test_bad_requests_beyond_the_schema_get_a_4xx_with_a_message(client):
    cases = [
        client.post("/api/mix", content=b"{not json", headers={"content-type": "application/json"}),
        client.post("/api/sample", json={"sampler": "ddpm", "n": 64}),  # over the work bound: 400
        client.post("/api/invert", content=b" " * (MAX_BODY + 1), headers={"content-type": "application/json"}),
        client.post("/api/invert", content=iter([b"{}"]), headers={"content-type": "application/json"}),  # chunked
        client.get("/api/digits", params={"count": 10_000}),
        client.get("/secrets.txt"),
    ]
    assert [r.status_code for r in cases] == [422, 400, 413, 411, 422, 404]
    assert all(r.json()["error"] for r in cases)


@pytest.fixture(scope="module")
def conditional_client():
    return TestClient(create_app(tiny_conditional_explorer()), raise_server_exceptions=False)


def test_a_conditional_model_takes_a_label_and_guidance(conditional_client, client):
    info = conditional_client.get("/api/info").json()
    assert info["classes"] == 10 and info["guidance"] == {"min": 0.0, "max": 5.0, "step": 0.5, "default": 2.0}
    assert client.get("/api/info").json()["classes"] == 0  # the page hides its label picker and slider
    body = {"n": 2, "steps": 2, "label": 7, "guidance": 3}
    guided = conditional_client.post("/api/sample", json=body)
    assert guided.status_code == 200 and len(guided.json()["images"]) == 2
    plain = conditional_client.post("/api/sample", json={"n": 2, "steps": 2}).json()
    assert plain["images"] != guided.json()["images"]  # the same noise, decoded another way
    mix = conditional_client.post("/api/mix", json={"a": A, "b": B, "steps": 2, "label": 8, "guidance": 1.5})
    assert mix.status_code == 200 and len(mix.json()["image"]) == 784


@pytest.mark.parametrize("path, extra, status", [
    ("/api/sample", {"label": 10}, 400),  # beyond the model's classes
    ("/api/sample", {"label": -1}, 422),
    ("/api/sample", {"label": "7"}, 422),
    ("/api/sample", {"label": 7.5}, 422),
    ("/api/sample", {"label": 7, "guidance": 5.5}, 422),
    ("/api/sample", {"label": 7, "guidance": -0.5}, 422),
    ("/api/sample", {"label": 7, "guidance": "2"}, 422),
    ("/api/sample", {"guidance": 2}, 400),  # guidance needs a label
    ("/api/sample", {"label": 7, "n": 64, "steps": 200, "guidance": 2}, 400),  # a doubled batch: over the work bound
    ("/api/mix", {"a": A, "b": B, "label": 10}, 400),
    ("/api/mix", {"a": A, "b": B, "label": 3, "guidance": 6}, 422),
])
def test_bad_labels_and_guidance_get_a_4xx_with_a_message(conditional_client, path, extra, status):
    response = conditional_client.post(path, json={"steps": 2, **extra})
    assert response.status_code == status and response.json()["error"], response.json()


def test_guidance_must_be_finite(conditional_client):
    for guidance in (float("nan"), float("inf")):
        body = json.dumps({"label": 3, "guidance": guidance}).encode()
        response = conditional_client.post("/api/sample", content=body, headers={"content-type": "application/json"})
        assert response.status_code == 422 and "finite" in response.json()["error"], response.json()


def test_a_label_on_an_unconditional_model_is_a_400(client):
    response = client.post("/api/sample", json={"n": 1, "steps": 2, "label": 3})
    assert response.status_code == 400 and "unconditional" in response.json()["error"]


def test_a_crash_in_the_model_is_a_500_without_a_traceback(explorer, monkeypatch):
    monkeypatch.setattr(explorer, "sample", lambda *a: 1 / 0)
    response = TestClient(create_app(explorer), raise_server_exceptions=False).post("/api/sample", json={})
    assert response.status_code == 500
    assert response.json() == {"error": "internal error (ZeroDivisionError)"}


class WatchedLock:
    """The explorer's lock, counting the calls that wait for it."""

    def __init__(self):
        self.lock, self.waiting, self.changed = threading.Lock(), 0, threading.Condition()

    def __enter__(self):
        with self.changed:
            self.waiting += 1
            self.changed.notify_all()
        self.lock.acquire()
        with self.changed:
            self.waiting -= 1
        return self

    def __exit__(self, *exc):
        self.lock.release()


class HeldOpen(nn.Module):
    """Wraps a model: its first call waits inside the model until `release` is set; every call is
    logged as it enters and leaves, and a call that enters while another runs sets `overlapped`."""

    def __init__(self, model, changed: threading.Condition):
        super().__init__()
        self.model, self.changed = model, changed
        self.entered, self.release = threading.Event(), threading.Event()
        self.log, self.running, self.overlapped = [], 0, False

    def forward(self, xt, t):
        with self.changed:
            self.overlapped |= self.running > 0
            self.running += 1
            self.log.append("enter")
            self.changed.notify_all()
        try:
            if not self.entered.is_set():
                self.entered.set()
                assert self.release.wait(timeout=120), "never released"
            return self.model(xt, t)
        finally:
            with self.changed:
                self.running -= 1
                self.log.append("exit")


def test_requests_that_arrive_together_get_their_own_results_one_model_call_at_a_time():
    """The first request is held inside the model; every other request then waits for the lock,
    none enters the model (which a missing lock would let it), and all get what they get alone."""
    explorer = tiny_explorer(digits=False)
    requests = [("/api/mix", {"a": A, "b": B, "rule": "slerp", "weight": w / 10, "steps": 3}) for w in range(6)]
    requests += [("/api/sample", {"seed": s, "n": 2, "steps": 3}) for s in range(6)]
    with live_server(explorer) as (url, _):
        alone = [httpx.post(url + p, json=b, timeout=120).json() for p, b in requests]
        explorer._lock = lock = WatchedLock()
        explorer.model = held = HeldOpen(explorer.model, lock.changed)
        together = [None] * len(requests)

        def fetch(i):
            together[i] = httpx.post(url + requests[i][0], json=requests[i][1], timeout=120).json()

        threads = [threading.Thread(target=fetch, args=(i,)) for i in range(len(requests))]
        threads[0].start()
        try:
            assert held.entered.wait(timeout=120)
            for thread in threads[1:]:
                thread.start()
            with lock.changed:
                lock.changed.wait_for(lambda: lock.waiting == len(requests) - 1 or held.overlapped, timeout=120)
                assert lock.waiting == len(requests) - 1 and not held.overlapped
        finally:
            held.release.set()
            for thread in threads:
                if thread.ident is not None:  # started
                    thread.join()
    assert together == alone
    assert not held.overlapped and held.log == ["enter", "exit"] * (len(held.log) // 2)


class Started(nn.Module):
    """Wraps a model: sets `event` at its first call, and makes every call last a little."""

    def __init__(self, model):
        super().__init__()
        self.model, self.event = model, threading.Event()

    def forward(self, xt, t):
        self.event.set()
        time.sleep(0.02)
        return self.model(xt, t)


def _post(port: int, body: bytes, send: int) -> socket.socket:
    conn = socket.create_connection(("127.0.0.1", port))
    conn.sendall(b"POST /api/sample HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                 b"Content-Length: %d\r\n\r\n" % len(body) + body[:send])
    return conn


def test_a_client_that_disconnects_mid_request_does_not_stop_the_server():
    explorer = tiny_explorer(digits=False)
    explorer.model = Started(explorer.model)
    body = json.dumps({"seed": 0, "n": 1, "steps": 20}).encode()
    with live_server(explorer) as (url, thread):
        port = int(url.rsplit(":", 1)[1])
        _post(port, body, send=10).close()  # leaves half-way through its body
        slow = _post(port, body, send=len(body))  # leaves while the model runs
        assert explorer.model.event.wait(timeout=60)
        slow.close()
        after = httpx.post(url + "/api/mix", json={"a": A, "b": B, "steps": 2}, timeout=120)
        assert after.status_code == 200 and len(after.json()["image"]) == 784
        assert thread.is_alive()


def test_a_port_in_use_is_an_error_that_says_so_before_the_model_loads(capsys, monkeypatch):
    from mnistdiff.cli import main
    from mnistdiff.explore import Explorer

    def load(*args, **kwargs):
        raise AssertionError("loaded the model before finding the port in use")

    monkeypatch.setattr(Explorer, "from_checkpoint", load)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        assert main(["explore", "--port", str(taken.getsockname()[1])]) == 2
    assert "cannot listen on 127.0.0.1" in capsys.readouterr().err


def test_the_command_serves_a_checkpoint_and_prints_its_address(tmp_path):
    ckpt, data = tiny_checkpoint(tmp_path / "ckpt"), folder_with_test_set(tmp_path / "data")
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "mnistdiff", "explore", "--checkpoint", str(ckpt), "--port",
                             str(port), "--data-dir", str(data), "--device", "cpu"], stdout=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        assert f"http://127.0.0.1:{port}/" in line
        assert httpx.get(f"http://127.0.0.1:{port}/api/info", timeout=30).json()["digits"] == 500
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_the_latency_benchmark_runs_and_writes_json(tmp_path):
    ckpt, data = tiny_checkpoint(tmp_path / "ckpt"), folder_with_test_set(tmp_path / "data")
    out = tmp_path / "latency.json"
    script = Path(__file__).resolve().parent.parent / "benchmarks" / "explore_latency.py"
    subprocess.run([sys.executable, str(script), "--checkpoint", str(ckpt), "--data-dir", str(data), "--repeats", "2",
                    "--threads", "1", "--rules", "slerp", "--inversion-iterations", "1", "--out", str(out)],
                   check=True, capture_output=True)
    record = json.loads(out.read_text())
    assert record["slider_ddim10"]["slerp"]["http"]["runs"] == 2
    assert record["inversion_iterations"] == 1 and record["invert_ddim10"]["runs"] == 1
    assert 0 < record["start"]["answers_s"] <= record["start"]["first_picture_s"] <= record["start"]["first_mix_s"]
    assert "--data-dir DIR" in record["command"]
    assert record["guidance"] is None


def test_the_latency_benchmark_times_guided_slider_moves_on_a_conditional_model(tmp_path):
    out = tmp_path / "latency.json"
    script = Path(__file__).resolve().parent.parent / "benchmarks" / "explore_latency.py"
    base = [sys.executable, str(script), "--repeats", "2", "--rules", "slerp", "--out", str(out), "--guidance", "2"]
    refused = subprocess.run(base + ["--checkpoint", str(tiny_checkpoint(tmp_path / "ckpt"))], capture_output=True,
                             text=True)
    assert refused.returncode == 2 and "--guidance needs a conditional model" in refused.stderr
    cond = Path(__file__).parent / "data" / "tiny-cond-checkpoint"
    subprocess.run(base + ["--checkpoint", str(cond)], check=True, capture_output=True)
    record = json.loads(out.read_text())
    assert (record["guidance"], record["label"]) == (2.0, 8) and record["slider_ddim10"]["slerp"]["http"]["runs"] == 2


# Bodies that lie about their size, and clients that send nothing: each on a raw socket to a real server.

HEAD = (b"POST /api/sample HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n")


def _reply(conn: socket.socket) -> bytes:
    """What the server sends until it closes the connection (b"" if it closes at once)."""
    data = b""
    try:
        while chunk := conn.recv(65536):
            data += chunk
    except ConnectionResetError:
        pass
    return data


def test_a_chunked_body_behind_a_small_content_length_is_cut_at_the_limit(explorer):
    import select

    with live_server(explorer) as (url, thread):
        conn = socket.create_connection(("127.0.0.1", int(url.rsplit(":", 1)[1])), timeout=30)
        conn.sendall(HEAD + b"Content-Length: 20\r\nTransfer-Encoding: chunked\r\n\r\n")
        chunk = b"%x\r\n" % 65536 + b" " * 65536 + b"\r\n"
        sent, reply = 0, b""
        try:
            while sent < 40 * 2**20 and not reply:  # 40 MB offered
                conn.sendall(chunk)
                sent += 65536
                if select.select([conn], [], [], 0)[0]:
                    reply = conn.recv(65536)
        except (BrokenPipeError, ConnectionResetError):
            pass
        reply += _reply(conn)
        conn.close()
        assert reply.startswith(b"HTTP/1.1 413"), reply[:200]
        assert sent < 40 * 2**20  # the server stopped reading: the connection closed under the sender
        assert thread.is_alive() and httpx.get(url + "/api/info", timeout=30).status_code == 200


def test_a_content_length_longer_than_the_body_times_out(explorer):
    with live_server(explorer, body_timeout=0.5) as (url, _):
        conn = socket.create_connection(("127.0.0.1", int(url.rsplit(":", 1)[1])), timeout=30)
        conn.sendall(HEAD + b"Content-Length: 1000\r\n\r\n{\"seed\": 1")
        reply = _reply(conn)
        conn.close()
    assert reply.startswith(b"HTTP/1.1 408") and b"did not arrive within 0.5 s" in reply, reply[:300]


@pytest.mark.parametrize("sends", [b"", b"GET /api/info HTTP/1.1\r\nHo"])
def test_a_client_that_sends_nothing_or_half_a_request_is_dropped(explorer, sends):
    with live_server(explorer, idle_timeout=0.5) as (url, _):
        conn = socket.create_connection(("127.0.0.1", int(url.rsplit(":", 1)[1])), timeout=30)
        conn.sendall(sends)
        started = time.monotonic()
        assert _reply(conn) == b""  # closed by the server, without an answer
        assert time.monotonic() - started < 25  # well before the socket's own 30 s timeout
        conn.close()


def test_a_kept_alive_connection_that_goes_quiet_is_dropped_after_its_answer(explorer):
    with live_server(explorer, idle_timeout=0.5) as (url, _):
        conn = socket.create_connection(("127.0.0.1", int(url.rsplit(":", 1)[1])), timeout=30)
        conn.sendall(b"GET /api/info HTTP/1.1\r\nHost: x\r\n\r\n")
        reply = _reply(conn)
        conn.close()
    assert reply.startswith(b"HTTP/1.1 200") and b'"digits"' in reply
