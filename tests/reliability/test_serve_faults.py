"""One bad request never fails the good ones batched with it."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor

import httpx

from minbert.model.task_model import load
from minbert.serving.batcher import MicroBatcher
from tests.serving.test_app import TEXTS, model_dir, server  # noqa: F401  (fixtures)


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
