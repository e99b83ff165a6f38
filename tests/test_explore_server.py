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

from explore_support import fixture_digits, folder_with_test_set, free_port, live_server, tiny_checkpoint, tiny_explorer

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
    ("/api/sample", {"seed": "zero"}),
    ("/api/sample", [1, 2]),
])
def test_bad_input_gets_a_4xx_with_a_message(client, path, body):
    response = client.post(path, json=body)
    assert 400 <= response.status_code < 500 and response.json()["error"]


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


def test_a_crash_in_the_model_is_a_500_without_a_traceback(explorer, monkeypatch):
    monkeypatch.setattr(explorer, "sample", lambda *a: 1 / 0)
    response = TestClient(create_app(explorer), raise_server_exceptions=False).post("/api/sample", json={})
    assert response.status_code == 500
    assert response.json() == {"error": "internal error (ZeroDivisionError)"}


class OneAtATime(nn.Module):
    """Wraps a model and records whether two calls ever ran at once (each call lingers a little)."""

    def __init__(self, model):
        super().__init__()
        self.model, self.running, self.overlapped, self.calls = model, 0, False, 0

    def forward(self, xt, t):
        self.running += 1
        self.overlapped |= self.running > 1
        self.calls += 1
        time.sleep(0.002)
        try:
            return self.model(xt, t)
        finally:
            self.running -= 1


def test_requests_that_arrive_together_get_their_own_results_one_model_call_at_a_time():
    explorer = tiny_explorer(digits=False)
    requests = [("/api/mix", {"a": A, "b": B, "rule": "slerp", "weight": w / 10, "steps": 3}) for w in range(6)]
    requests += [("/api/sample", {"seed": s, "n": 2, "steps": 3}) for s in range(6)]
    with live_server(explorer) as (url, _):
        alone = [httpx.post(url + p, json=b, timeout=60).json() for p, b in requests]
        explorer.model = OneAtATime(explorer.model)
        together = [None] * len(requests)

        def fetch(i):
            together[i] = httpx.post(url + requests[i][0], json=requests[i][1], timeout=60).json()

        threads = [threading.Thread(target=fetch, args=(i,)) for i in range(len(requests))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert together == alone
    assert explorer.model.calls > 0 and not explorer.model.overlapped


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
