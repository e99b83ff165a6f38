"""The explorer: its model operations against known answers, and a server that holds up."""

import json
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
import torch
from torch import nn

from exact import GaussianData
from explore_support import fixture_digits, live_server, folder_with_test_set, tiny_checkpoint, tiny_explorer, free_port
from mnistdiff.cli import main
from mnistdiff.cli.parser import build_parser
from mnistdiff.data import to_model_range, to_uint8
from mnistdiff.diffusion import ScheduleConfig, make_schedule
from mnistdiff.evaluation import load_classifier
from mnistdiff.explore import Explorer, service

SCHEDULE = make_schedule(ScheduleConfig())
IMAGES, LABELS = fixture_digits()
A, B = IMAGES[0].flatten().tolist(), IMAGES[1].flatten().tolist()


class OnePoint(nn.Module):
    """The exact noise predictor of a data set holding the one image `point` (tests/exact.py)."""

    def __init__(self, point: torch.Tensor):
        super().__init__()
        self.anchor = nn.Parameter(torch.zeros(1), requires_grad=False)  # gives the explorer a device
        self.exact = GaussianData(SCHEDULE, point, 0.0)

    def forward(self, xt, t):
        return self.exact(xt, t)


@pytest.fixture(scope="module")
def explorer():
    return tiny_explorer()


@pytest.fixture(scope="module")
def point():
    return to_model_range(IMAGES[2])  # (1, 28, 28) in [-1, 1]


@pytest.fixture(scope="module")
def exact(point):
    return Explorer(OnePoint(point), SCHEDULE, load_classifier("mnist")[0])


def test_every_decode_of_a_one_point_data_set_gives_that_point(exact, point):
    expected = to_uint8(point).flatten().tolist()
    assert exact.invert(A, steps=10)["reconstruction"] == expected
    assert exact.mix(A, B, "slerp", 0.3, steps=10)["image"] == expected
    for sampler in ("ddim", "ddpm"):
        result = exact.sample(seed=1, sampler=sampler, steps=10, eta=0.5, n=2)
        assert result["images"] == [expected, expected], sampler
    # DPM-Solver++ stops at t = 0, as Lu et al., which leaves noise of std sqrt(beta_0): allow 5 of those.
    images = torch.tensor(exact.sample(seed=1, sampler="dpm-solver", steps=10, eta=0.0, n=2)["images"])
    bound = 5 * 127.5 * float(SCHEDULE.betas[0]) ** 0.5
    assert (images - torch.tensor([expected, expected])).abs().max() <= bound


def test_the_trajectory_predicts_the_point_at_every_step_and_ends_at_the_result(exact, point):
    frames = exact.sample(seed=0, sampler="ddim", steps=20, eta=0.0, n=1, trajectory=True)["trajectory"]
    assert len(frames) == service.STRIP + 1
    levels = [f["t"] for f in frames[:-1]]
    assert levels == sorted(set(levels), reverse=True) and levels[0] >= 0.9 * SCHEDULE.T and frames[-1]["t"] == -1
    expected = to_uint8(point).flatten().tolist()
    assert all(f["x0"] == expected for f in frames)
    assert frames[0]["xt"] != expected  # the strip starts from noise


def test_mixing_ends_give_the_reconstructions_and_pixel_mixing_the_images(explorer):
    recon_a, recon_b = (explorer.invert(x, steps=5)["reconstruction"] for x in (A, B))
    for rule in ("linear", "slerp"):
        assert explorer.mix(A, B, rule, 0.0, steps=5)["image"] == recon_a, rule
        assert explorer.mix(A, B, rule, 1.0, steps=5)["image"] == recon_b, rule
    # linear-norm rescales by |a| / |mix|, 1 up to float rounding: a pixel may round the other way.
    for weight, recon in ((0.0, recon_a), (1.0, recon_b)):
        image = torch.tensor(explorer.mix(A, B, "linear-norm", weight, steps=5)["image"])
        assert (image - torch.tensor(recon)).abs().max() <= 1
    assert explorer.mix(A, B, "pixel", 0.0, steps=5)["image"] == A
    assert explorer.mix(A, B, "pixel", 1.0, steps=5)["image"] == B
    half = explorer.mix(A, B, "pixel", 0.5, steps=5)["image"]
    assert half == [round((a + b) / 2 + 1e-9) if (a + b) % 2 == 0 else half[i] for i, (a, b) in enumerate(zip(A, B))]


def test_a_slider_move_decodes_without_inverting_again(monkeypatch):
    explorer = tiny_explorer(digits=False)
    calls = []
    real = service._invert
    monkeypatch.setattr(service, "_invert", lambda *args: calls.append(args[3]) or real(*args))
    for weight in (0.2, 0.4, 0.6):
        explorer.mix(A, B, "slerp", weight, steps=4)
    assert calls == [4, 4]  # A and B once each
    explorer.mix(A, B, "slerp", 0.5, steps=6)
    assert calls == [4, 4, 6, 6]


def test_readings_are_the_classifiers(explorer):
    result = explorer.invert(A, steps=3)
    probs = explorer.classifier(to_model_range(IMAGES[:1])).softmax(1)[0]
    assert result["input_reading"] == {"digit": int(probs.argmax()), "confidence": round(float(probs.max()), 4)}
    assert result["input_reading"]["digit"] == int(LABELS[0])  # the shipped classifier reads a real 7


def test_samples_follow_the_seed(explorer):
    first = explorer.sample(seed=3, sampler="ddim", steps=3, eta=0.0, n=2)["images"]
    assert explorer.sample(seed=3, sampler="ddim", steps=3, eta=0.0, n=2)["images"] == first
    assert explorer.sample(seed=4, sampler="ddim", steps=3, eta=0.0, n=2)["images"] != first


@pytest.mark.parametrize("call, message", [
    (lambda e: e.invert(A[:-1], steps=3), "784 values"),
    (lambda e: e.invert(A[:-1] + [256], steps=3), "0..255"),
    (lambda e: e.invert(A, steps=0), "steps"),
    (lambda e: e.invert(A, steps=service.MAX_STEPS + 1), "steps"),
    (lambda e: e.mix(A, B, "slerp", 2.5, steps=3), "weight"),
    (lambda e: e.mix(A, B, "average", 0.5, steps=3), "rule"),
    (lambda e: e.sample(seed=0, sampler="euler", steps=3, eta=0.0, n=1), "sampler"),
    (lambda e: e.sample(seed=0, sampler="ddim", steps=3, eta=0.0, n=service.MAX_IMAGES + 1), "n must"),
    (lambda e: e.sample(seed=0, sampler="ddpm", steps=3, eta=0.0, n=service.MAX_IMAGES), "image-evaluations"),
])
def test_bad_arguments_are_value_errors(explorer, call, message):
    with pytest.raises(ValueError, match=message):
        call(explorer)


def test_the_picker_serves_test_digits_and_is_empty_without_data(explorer):
    digits = explorer.digits(498, 5)
    assert [d["index"] for d in digits] == [498, 499]
    assert digits[0]["pixels"] == IMAGES[498].flatten().tolist() and digits[0]["label"] == int(LABELS[498])
    assert tiny_explorer(digits=False).digits(0, 5) == [] and tiny_explorer(digits=False).info()["digits"] == 0


def test_from_checkpoint_finds_the_test_set_on_disk_and_never_downloads(tmp_path, monkeypatch):
    ckpt = tiny_checkpoint(tmp_path / "ckpt")
    monkeypatch.delenv("MNISTDIFF_DATA", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "empty-cache"))
    with_data = Explorer.from_checkpoint(ckpt, data_dir=folder_with_test_set(tmp_path / "data"), device="cpu")
    assert with_data.info()["digits"] == 500
    without = Explorer.from_checkpoint(ckpt, device="cpu")
    assert without.info()["digits"] == 0 and "no test digits" in without.info()["note"]
    assert not (tmp_path / "empty-cache").exists()


# --- The web server ---------------------------------------------------------------------------

fastapi = pytest.importorskip("fastapi")
from fastapi.testclient import TestClient  # noqa: E402

from mnistdiff.explore import create_app  # noqa: E402
from mnistdiff.explore.server import MAX_BODY  # noqa: E402


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


def test_a_port_in_use_is_an_error_that_says_so(explorer):
    from mnistdiff.explore import serve

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        with pytest.raises(ValueError, match="cannot listen on 127.0.0.1"):
            serve(explorer, port=taken.getsockname()[1])


def test_the_command_binds_to_this_machine_unless_told():
    args = build_parser().parse_args(["explore"])
    assert (args.host, args.port, args.open) == ("127.0.0.1", 8000, False)


def test_without_the_extra_the_command_says_what_to_install(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "fastapi", None)  # import fastapi now raises ImportError
    assert main(["explore"]) == 2
    assert "pip install 'mnistdiff[explore]'" in capsys.readouterr().err


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
                    "--threads", "1", "--rules", "slerp", "--out", str(out)], check=True, capture_output=True)
    record = json.loads(out.read_text())
    assert record["slider_ddim10"]["slerp"]["http"]["runs"] == 2
    assert 0 < record["start"]["answers_s"] <= record["start"]["first_picture_s"] <= record["start"]["first_mix_s"]
    assert "--data-dir DIR" in record["command"]
