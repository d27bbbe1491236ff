"""`minbert serve`: a real uvicorn server on loopback, real HTTP requests."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from fastapi import FastAPI

from minbert.model.task_model import load
from minbert.serving.app import Limits, create_app
from minbert.serving.server import bind, build
from tests.helpers import classifier

LABELS = ["alarm_set", "weather_query", "play_music"]
TEXTS = [
    "wake me up at seven",
    "will it rain tomorrow",
    "play some jazz",
    "set an alarm for noon",
    "is it sunny in paris",
]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    """A saved classifier (fresh head on the real encoder): enough to check the server answers as the model does."""
    directory = tmp_path_factory.mktemp("served") / "model"
    classifier(LABELS, max_length=32).save(directory)
    return directory


@contextlib.contextmanager
def running(app: FastAPI, **server_options: float) -> Iterator[str]:
    """`app` served by minbert's server (timeouts, drain) on a free loopback port, in a thread."""
    sock = bind("127.0.0.1", 0)
    port = sock.getsockname()[1]
    uv = build(app, sock, "127.0.0.1", log_level="warning", **server_options)
    thread = threading.Thread(target=uv.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.time() + 30
    while not uv.started:
        assert time.time() < deadline, "server did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        uv.should_exit = True
        thread.join(timeout=10)


@pytest.fixture(scope="module")
def server(model_dir):
    app = create_app(model_dir, limits=Limits(max_texts=8, max_chars=200, max_batch=64, max_wait_ms=20))
    with running(app) as url:
        yield url, app


def test_health_ready_info_and_schema(server, model_dir):
    url, _ = server
    assert httpx.get(f"{url}/health").json() == {"status": "ok"}
    assert httpx.get(f"{url}/ready").json() == {"status": "ready"}  # warm: the model ran once at startup
    info = httpx.get(f"{url}/info").json()
    assert info["kind"] == "classifier" and info["labels"] == LABELS and info["minbert_version"]
    assert "/predict" in httpx.get(f"{url}/openapi.json").json()["paths"]
    assert "POST /predict" in info["endpoints"] and "GET /ready" in info["endpoints"]


def test_the_page_is_self_contained_and_uses_the_api(server):
    """The page at / loads nothing from elsewhere (no CDN, no external script, style, font or image)."""
    url, _ = server
    page = httpx.get(f"{url}/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    html = page.text
    assert "<script src" not in html and "<link" not in html and "http://" not in html and "https://" not in html
    for call in ('fetch("info"', 'url = "predict"', 'url = "embed"', '"x-api-key"', "oos_threshold"):
        assert call in html


def test_no_page_needs_the_internet_and_no_answer_reveals_host_paths(server, model_dir):
    """/docs would load Swagger UI from a CDN (blank offline), so it is off; paths stay on the host."""
    url, _ = server
    assert httpx.get(f"{url}/docs").status_code == 404 and httpx.get(f"{url}/redoc").status_code == 404
    for path in ("/", "/info", "/openapi.json"):
        text = httpx.get(f"{url}{path}").text
        assert str(Path(model_dir).parent) not in text and "cdn" not in text.lower().replace("needs a cdn", "")
    assert httpx.get(f"{url}/info").json()["model"] == Path(model_dir).name


def test_predict_and_embed_answer_like_the_model(server, model_dir):
    url, _ = server
    model = load(model_dir)
    answer = httpx.post(f"{url}/predict", json={"texts": TEXTS}).json()["predictions"]
    expected = model.predict(TEXTS)
    assert [a["label"] for a in answer] == [p.label for p in expected]
    assert [a["probability"] for a in answer] == pytest.approx([p.probability for p in expected], abs=1e-5)
    top = httpx.post(f"{url}/predict", json={"texts": TEXTS, "top_k": 3}).json()["predictions"]
    for full, short in zip(answer, top, strict=True):
        assert len(short["probabilities"]) == 3 and short["label"] == full["label"]
        assert short["probabilities"] == dict(sorted(full["probabilities"].items(), key=lambda kv: -kv[1])[:3])
    embedded = httpx.post(f"{url}/embed", json={"texts": TEXTS[:2]}).json()
    assert embedded["dimension"] == 384
    assert np.allclose(embedded["embeddings"], model.encode(TEXTS[:2]), atol=1e-5)


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        ({"texts": []}, 422, "empty"),
        ({"texts": ["x"] * 9}, 413, "limit is 8"),
        ({"texts": ["a" * 201]}, 413, "201 characters"),
        ({"texts": ["  "]}, 422, "text 0 is empty"),
        ({"texts": [3, 4]}, 422, "texts.0: Input should be a valid string"),
        ({"texts": "one string"}, 422, "texts: Input should be a valid list"),
        ({"sentences": ["hi"]}, 422, "sentences: Extra inputs are not permitted (this endpoint takes texts, pairs"),
        ({"text": "hi"}, 422, "text: Extra inputs are not permitted (did you mean 'texts'? this endpoint takes"),
        ({"texts": ["hi"], "top_k": 0}, 422, "top_k: Input should be greater than or equal to 1"),
        ({"texts": ["hi"], "task": "sts"}, 422, 'texts": [...]} only'),
    ],
)
def test_bad_requests_get_clear_4xx(server, body, status, message):
    url, _ = server
    response = httpx.post(f"{url}/predict", json=body)
    assert response.status_code == status and message in response.json()["detail"]


def test_malformed_json_and_oversized_body_are_4xx(server):
    url, _ = server
    response = httpx.post(f"{url}/predict", content=b"{not json", headers={"content-type": "application/json"})
    assert response.status_code == 422 and "JSON" in response.json()["detail"]
    response = httpx.post(f"{url}/predict", content=b"x" * 4_000_001, headers={"content-type": "application/json"})
    assert response.status_code == 413


def test_concurrent_requests_are_batched_and_none_is_lost(server, model_dir):
    url, app = server
    expected = {text: p.label for text, p in zip(TEXTS, load(model_dir).predict(TEXTS), strict=True)}
    httpx.post(f"{url}/predict", json={"texts": TEXTS[:1]})  # the batcher exists, whichever test ran first
    batcher = next(b for key, b in app.state.batchers.items() if key[0] == "predict")
    calls_before, items_before = batcher.calls, batcher.items

    async def burst() -> list[tuple[str, str]]:
        async with httpx.AsyncClient(base_url=url, timeout=60) as client:

            async def one(i: int) -> tuple[str, str]:
                text = TEXTS[i % len(TEXTS)]
                response = await client.post("/predict", json={"texts": [text]})
                return text, response.json()["predictions"][0]["label"]

            return await asyncio.gather(*(one(i) for i in range(40)))

    answers = asyncio.run(burst())
    assert len(answers) == 40 and all(label == expected[text] for text, label in answers)
    assert batcher.items - items_before == 40
    assert batcher.calls - calls_before < 40  # requests shared model calls


@pytest.mark.parametrize(
    ("arguments", "key_file", "message"),
    [
        (["--api-key-file", "KEY"], "", "must hold one key"),
        (["--api-key-file", "KEY"], "two words", "must hold one key"),
        (["--api-key-file", "missing-file"], None, "cannot read it"),
        (["--max-queue", "4", "--max-texts", "8"], None, "a full request would never fit"),
        (["--timeout", "0"], None, "more than 0 seconds"),
    ],
)
def test_serve_options_are_checked_before_anything_loads(tmp_path, capsys, arguments, key_file, message):
    from minbert.cli import main

    if key_file is not None:
        (tmp_path / "KEY").write_text(key_file)
    arguments = [str(tmp_path / a) if a in ("KEY", "missing-file") else a for a in arguments]
    assert main(["serve", str(tmp_path / "no-model"), *arguments]) == 2
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1 and message in error


def test_metrics_count_requests_batches_and_refusals_in_the_prometheus_format(server):
    from prometheus_client.parser import text_string_to_metric_families

    url, _ = server
    httpx.post(f"{url}/predict", json={"texts": TEXTS[:3]})
    httpx.post(f"{url}/predict", json={"texts": []})  # a 422
    families = {f.name: f for f in text_string_to_metric_families(httpx.get(f"{url}/metrics").text)}
    requests = {
        (s.labels["endpoint"], s.labels["status"]): s.value
        for s in families["minbert_requests"].samples
        if s.name.endswith("_total")
    }
    assert requests[("/predict", "200")] >= 1 and requests[("/predict", "422")] >= 1
    batches = {s.name: s.value for s in families["minbert_batch_texts"].samples}
    assert batches["minbert_batch_texts_count"] >= 1 and batches["minbert_batch_texts_sum"] >= 3
    assert families["minbert_queue_texts"].samples[0].value == 0
    assert any(s.labels.get("endpoint") == "/predict" for s in families["minbert_request_seconds"].samples)
