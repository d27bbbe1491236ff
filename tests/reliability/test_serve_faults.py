"""The server under faults: poisoned, oversize, slow and excess requests; shutdown; a taken port."""

from __future__ import annotations

import asyncio
import logging
import signal
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from minbert.model.task_model import load
from minbert.serving.app import Limits, create_app
from minbert.serving.batcher import MicroBatcher
from minbert.serving.server import bind, build
from tests.serving.test_app import TEXTS, model_dir, running, server  # noqa: F401  (fixtures)


def test_a_lone_surrogate_among_30_good_requests_gets_422_and_they_all_get_their_answer(server, model_dir):  # noqa: F811
    url, _ = server
    expected = {text: p.label for text, p in zip(TEXTS, load(model_dir).predict(TEXTS), strict=True)}
    poisoned = b'{"texts": ["fine", "\\ud800 x"]}'  # valid JSON, not encodable text

    async def burst() -> tuple[list[tuple[str, int, str]], httpx.Response]:
        async with httpx.AsyncClient(base_url=url, timeout=60) as client:

            async def good(i: int) -> tuple[str, int, str]:
                text = TEXTS[i % len(TEXTS)]
                response = await client.post("/predict", json={"texts": [text]})
                return text, response.status_code, response.json()["predictions"][0]["label"]

            bad = client.post("/predict", content=poisoned, headers={"content-type": "application/json"})
            *answers, bad_response = await asyncio.gather(*(good(i) for i in range(30)), bad)
            return answers, bad_response

    answers, bad = asyncio.run(burst())
    assert bad.status_code == 422 and "text 1 is not valid Unicode" in bad.json()["detail"]
    assert all(status == 200 and label == expected[text] for text, status, label in answers)


def test_a_batch_that_fails_is_retried_request_by_request():
    """A failure the checks cannot foresee (here: the model raising on one item) reaches only its request."""

    def run(items: list[str]) -> list[str]:
        if "poison" in items:
            raise ValueError("the model failed on poison")
        return [item.upper() for item in items]

    async def scenario() -> list[object]:
        batcher = MicroBatcher(run, ThreadPoolExecutor(max_workers=1), max_batch=64, max_wait_ms=50)
        requests = [[f"good {i}"] for i in range(30)]
        requests.insert(13, ["poison"])
        return await asyncio.gather(*(batcher.submit(r) for r in requests), return_exceptions=True)

    results = asyncio.run(scenario())
    failures = [r for r in results if isinstance(r, Exception)]
    assert len(failures) == 1 and "poison" in str(failures[0])
    assert [r for r in results if not isinstance(r, Exception)] == [[f"GOOD {i}"] for i in range(30)]


def raw_request(url: str, head: bytes) -> socket.socket:
    host, port = url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=10)
    sock.sendall(head)
    return sock


def status_of(sock: socket.socket) -> tuple[int, bytes]:
    """The status and the whole response (head and a Content-Length body); 0 when closed without one."""
    answer = b""
    while b"\r\n\r\n" not in answer or len(answer.split(b"\r\n\r\n", 1)[1]) < length_of(answer):
        chunk = sock.recv(65536)
        if not chunk:
            break
        answer += chunk
    return (int(answer.split(b" ", 2)[1]) if answer else 0), answer


def length_of(answer: bytes) -> int:
    for line in answer.split(b"\r\n\r\n", 1)[0].lower().split(b"\r\n"):
        if line.startswith(b"content-length:"):
            return int(line.split(b":", 1)[1])
    return 0


def test_a_chunked_upload_over_the_limit_is_refused_while_it_streams(model_dir):  # noqa: F811
    """No Content-Length to check up front: the limit must hold while the body is read (not after 64 MB)."""
    app = create_app(model_dir, limits=Limits(max_body_bytes=100_000))
    with running(app) as url:
        sock = raw_request(
            url,
            b"POST /predict HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n",
        )
        sent, answered = 0, threading.Event()

        def upload() -> None:
            nonlocal sent
            chunk = b"4000\r\n" + b"x" * 0x4000 + b"\r\n"
            try:
                while sent < 64_000_000 and not answered.is_set():
                    sock.sendall(chunk)
                    sent += 0x4000
            except OSError:  # the server closed the connection: what it should do
                pass

        uploader = threading.Thread(target=upload)
        uploader.start()
        status, answer = status_of(sock)
        answered.set()
        uploader.join(timeout=30)
        sock.close()
    assert status == 413 and b"limit" in answer and b"connection: close" in answer.lower()
    assert sent < 16_000_000, f"the server read {sent} bytes before refusing"


def test_idle_slow_header_and_slow_body_clients_are_cut_off_while_a_prober_gets_answers(model_dir):  # noqa: F811
    app = create_app(model_dir, limits=Limits(body_timeout_s=1.5))
    with running(app, header_timeout_s=1.0) as url:
        idle = [raw_request(url, b"") for _ in range(5)]
        slow_head = [raw_request(url, b"POST /predict HTTP/1.1\r\nHost: localhost\r\n") for _ in range(5)]
        slow_body = [
            raw_request(
                url,
                b"POST /predict HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{",
            )
            for _ in range(5)
        ]
        probes = []
        with httpx.Client(base_url=url, timeout=10) as prober:
            started = time.time()
            while time.time() - started < 3.5:
                probes.append(prober.post("/predict", json={"texts": ["wake me up"]}).status_code)
                time.sleep(0.1)
        answers = []
        for sock in idle + slow_head + slow_body:
            sock.settimeout(2)
            try:
                answers.append(status_of(sock)[0])  # 0: closed without a word; else the status it got
            except TimeoutError:
                answers.append("still open")
            sock.close()
    assert len(probes) > 10 and set(probes) == {200}
    assert answers[:5] == [0] * 5  # idle: closed
    assert answers[5:10] == [408] * 5  # part of a request head: 408, closed
    assert answers[10:] == [408] * 5  # body too slow: 408


def test_a_full_queue_answers_503_with_retry_after_and_every_accepted_request_is_right(model_dir):  # noqa: F811
    expected = {text: p.label for text, p in zip(TEXTS, load(model_dir).predict(TEXTS), strict=True)}
    app = create_app(model_dir, limits=Limits(max_texts=8, max_queue=16, max_wait_ms=300))
    with running(app) as url:

        async def burst() -> list[httpx.Response]:
            async with httpx.AsyncClient(base_url=url, timeout=60) as client:
                return await asyncio.gather(
                    *(client.post("/predict", json={"texts": [TEXTS[i % 5]] * 8}) for i in range(10))
                )

        responses = asyncio.run(burst())
    statuses = [r.status_code for r in responses]
    assert set(statuses) == {200, 503} and statuses.count(200) >= 2
    for i, response in enumerate(responses):
        if response.status_code == 503:
            assert response.headers["retry-after"] == "1" and "queue holds 16" in response.json()["detail"]
        else:
            assert [p["label"] for p in response.json()["predictions"]] == [expected[TEXTS[i % 5]]] * 8


def test_a_small_request_does_not_wait_behind_a_large_one():
    """Equal shares per batch: a one-text request that arrives during a 256-text one rides in the next batch."""
    batches: list[list[str]] = []

    def run(items: list[str]) -> list[str]:
        batches.append(items)
        time.sleep(0.05)
        return [item.upper() for item in items]

    async def scenario() -> tuple[list[str], list[str], list[str]]:
        batcher = MicroBatcher(run, ThreadPoolExecutor(max_workers=1), max_batch=64, max_wait_ms=1)
        finished: list[str] = []

        async def tracked(name: str, items: list[str]) -> list[str]:
            result = await batcher.submit(items)
            finished.append(name)
            return result

        big = asyncio.create_task(tracked("big", [f"b{i}" for i in range(256)]))
        await asyncio.sleep(0.02)  # the first batch of the big request is running
        small = await tracked("small", ["s"])
        return await big, small, finished

    big, small, finished = asyncio.run(scenario())
    assert small == ["S"] and big == [f"B{i}" for i in range(256)]
    assert finished == ["small", "big"]
    assert "s" in batches[1] and all(len(batch) <= 64 for batch in batches)


def test_an_api_key_guards_everything_but_the_probes_and_is_never_logged(model_dir, caplog):  # noqa: F811
    app = create_app(model_dir, api_key="s3cret-key", cors_origins=["http://app.example"])
    body = {"texts": ["wake me up"]}
    with caplog.at_level(logging.DEBUG), running(app) as url:
        assert httpx.post(f"{url}/predict", json=body).status_code == 401
        assert httpx.post(f"{url}/predict", json=body, headers={"x-api-key": "wrong"}).status_code == 401
        assert httpx.get(f"{url}/info").status_code == 401
        assert (
            httpx.post(f"{url}/predict", json=body, headers={"authorization": "Bearer s3cret-key"}).status_code == 200
        )
        assert httpx.post(f"{url}/predict", json=body, headers={"x-api-key": "s3cret-key"}).status_code == 200
        assert httpx.get(f"{url}/health").status_code == 200 and httpx.get(f"{url}/ready").status_code == 200
        assert httpx.get(f"{url}/").status_code == 200  # the page holds no data; its script sends the key
        preflight = httpx.options(
            f"{url}/predict",
            headers={"origin": "http://app.example", "access-control-request-method": "POST"},
        )
        assert preflight.headers["access-control-allow-origin"] == "http://app.example"
        other = httpx.options(
            f"{url}/predict", headers={"origin": "http://evil.example", "access-control-request-method": "POST"}
        )
        assert other.headers.get("access-control-allow-origin") is None
    assert "s3cret-key" not in caplog.text


def test_cors_is_off_by_default(server):  # noqa: F811
    url, _ = server
    response = httpx.post(f"{url}/predict", json={"texts": ["hi"]}, headers={"origin": "http://app.example"})
    assert response.status_code == 200 and "access-control-allow-origin" not in response.headers


def test_listening_beyond_loopback_without_a_key_warns(model_dir, caplog):  # noqa: F811
    app = create_app(model_dir)
    with bind("127.0.0.1", 0) as sock, caplog.at_level(logging.WARNING, logger="minbert"):
        build(app, sock, "0.0.0.0")
        assert "without --api-key-file" in caplog.text
        caplog.clear()
        build(app, sock, "127.0.0.1")
        assert "without --api-key-file" not in caplog.text


def start_serving(model: Path, port: int, *options: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "minbert", "serve", str(model), "--port", str(port), "--threads", "1", *options],
        stderr=subprocess.PIPE,
        text=True,
    )


def test_a_taken_port_is_one_line_and_no_address_is_announced(model_dir):  # noqa: F811
    with bind("127.0.0.1", 0) as taken:
        port = taken.getsockname()[1]
        done = start_serving(model_dir, port)
        _, err = done.communicate(timeout=120)
    assert done.returncode == 2
    assert err.strip().splitlines() == [
        f"minbert: error: cannot listen on 127.0.0.1:{port}: Address already in use; choose another with --port"
    ]


def received_predictions(client: httpx.Client) -> float:
    """/predict requests the server holds (texts waiting for the batcher, in requests of TEXTS) or has answered."""
    queued = answered = 0.0
    for family in text_string_to_metric_families(client.get("/metrics").text):
        for sample in family.samples:
            if sample.name == "minbert_queue_texts":
                queued = sample.value
            elif sample.name == "minbert_requests_total" and sample.labels.get("endpoint") == "/predict":
                answered += sample.value
    return queued / len(TEXTS) + answered


@pytest.mark.slow
def test_sigterm_under_load_finishes_in_flight_requests_and_answers_keep_alive_ones_503(model_dir):  # noqa: F811
    with bind("127.0.0.1", 0) as probe:
        port = probe.getsockname()[1]
    process = start_serving(model_dir, port, "--max-wait-ms", "1500")
    assert process.stderr is not None
    for line in process.stderr:  # the address appears once the socket is bound and the model warm
        if "serving model" in line:
            assert f"http://127.0.0.1:{port}" in line
            break
    url = f"http://127.0.0.1:{port}"
    expected = {text: p.label for text, p in zip(TEXTS, load(model_dir).predict(TEXTS), strict=True)}
    with httpx.Client(base_url=url, timeout=30) as keep_alive:
        assert keep_alive.get("/ready").status_code == 200
        with ThreadPoolExecutor(8) as pool:
            in_flight = [pool.submit(httpx.post, f"{url}/predict", json={"texts": TEXTS}, timeout=30) for _ in range(8)]
            deadline = time.monotonic() + 20
            while received_predictions(keep_alive) < 8 and time.monotonic() < deadline:
                time.sleep(0.02)  # a loaded machine takes a while to send all eight
            process.send_signal(signal.SIGTERM)
            while (answer := keep_alive.get("/ready")).status_code == 200:
                time.sleep(0.02)
            answers = [f.result() for f in in_flight]
    assert answer.status_code == 503 and answer.headers["connection"] == "close"
    assert "shutting down" in answer.json()["detail"]
    assert [r.status_code for r in answers] == [200] * 8
    assert all([p["label"] for p in r.json()["predictions"]] == [expected[t] for t in TEXTS] for r in answers)
    _, rest = process.communicate(timeout=30)
    assert process.returncode in (0, -signal.SIGTERM)  # uvicorn re-raises the signal once it has shut down
    assert "Finished server process" in rest
