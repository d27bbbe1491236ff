"""Load test of `minbert serve` on loopback: requests/s and latency at 1, 8, 32 and 128 concurrent clients.

    python benchmarks/load_test.py [--model MODEL_DIR] [--requests 200] [--backend torch|onnx|onnx-int8]

Starts `minbert serve` in a subprocess on a free loopback port, sends a bounded number of one-text
requests (real MASSIVE test utterances) per concurrency level, and checks every 200 answer against
the model's own offline prediction; 4xx, 5xx and connection failures are counted apart. The last
level (`--big-clients`) repeats 8 one-text clients while two more send 256-text requests without
pause: the one-text latency there shows whether small requests wait behind large ones.
Prints a table, writes JSON. Without --model it serves a fresh classifier head on all-MiniLM-L6-v2
(speed does not depend on training).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, cast

import httpx

HERE = Path(__file__).resolve().parent
DATA = Path(os.environ.get("MINBERT_DATA", HERE.parent.parent / "shared" / "data"))


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


async def level(
    url: str, texts: list[str], expected: dict[str, str], clients: int, timeout: float, big_clients: int = 0
) -> dict:
    latencies: list[float] = []
    wrong = lost = client_errors = server_errors = big_requests = 0
    queue = list(range(len(texts)))

    async def client(http: httpx.AsyncClient) -> None:
        nonlocal wrong, lost, client_errors, server_errors
        while queue:
            text = texts[queue.pop()]
            started = time.perf_counter()
            try:
                response = await http.post("/predict", json={"texts": [text]})
            except httpx.HTTPError:
                lost += 1
                continue
            latencies.append(time.perf_counter() - started)
            if response.status_code >= 500:
                server_errors += 1
            elif response.status_code >= 400:
                client_errors += 1
            elif response.json()["predictions"][0]["label"] != expected[text]:
                wrong += 1

    async def big_client(http: httpx.AsyncClient) -> None:
        nonlocal big_requests
        batch = (texts * (256 // len(texts) + 1))[:256]
        while queue:
            response = await http.post("/predict", json={"texts": batch})
            big_requests += response.status_code == 200

    limits = httpx.Limits(max_connections=clients + big_clients, max_keepalive_connections=clients + big_clients)
    async with httpx.AsyncClient(base_url=url, timeout=timeout, limits=limits) as http:
        started = time.perf_counter()
        everyone = [client(http) for _ in range(clients)] + [big_client(http) for _ in range(big_clients)]
        await asyncio.wait_for(asyncio.gather(*everyone), timeout)
        wall = time.perf_counter() - started
    latencies.sort()
    return {
        "clients": clients,
        "big_clients": big_clients,
        "big_requests": big_requests,
        "requests": len(texts),
        "answered": len(texts) - lost,
        "wrong": wrong,
        "lost": lost,
        "4xx": client_errors,
        "5xx": server_errors,
        "requests_per_s": round(len(texts) / wall, 1),
        "p50_ms": round(1000 * statistics.median(latencies), 2),
        "p99_ms": round(1000 * latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))], 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, help="saved model dir (default: a fresh head on all-MiniLM-L6-v2)")
    parser.add_argument("--requests", type=int, default=200, help="requests per concurrency level (default: 200)")
    parser.add_argument("--clients", type=int, nargs="*", default=[1, 8, 32, 128])
    parser.add_argument("--big-clients", type=int, default=2, help="256-text clients beside 8 one-text ones (0: skip)")
    parser.add_argument("--backend", default="torch")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds per level before giving up")
    parser.add_argument("--out", type=Path, default=HERE / "results_serve.json")
    args = parser.parse_args()

    from minbert.data.readers import read_examples
    from minbert.model.heads import HeadSpec
    from minbert.model.task_model import Model, Prediction, load

    def offline_labels(backend_model: Any, texts: list[str]) -> list[str]:
        """The label the model gives each text offline (the load test's model is a single-label classifier)."""
        return [str(p.label) for p in cast(list[Prediction], backend_model.predict(texts))]

    texts = [e.text for e in read_examples(DATA / "massive_en_us" / "test.jsonl", "massive")][: args.requests]
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = args.model
        if model_dir is None:
            labels = sorted({str(e.label) for e in read_examples(DATA / "massive_en_us" / "train.jsonl", "massive")})
            model_dir = Model.from_checkpoint(
                None, [HeadSpec("main", labels=labels, hidden_size=512)], max_length=64
            ).save(Path(tmp) / "model")
        model = load(model_dir)
        expected = dict(zip(texts, offline_labels(model, texts), strict=True))
        if args.backend != "torch":  # compare with the backend's own offline answers
            from minbert.model.backends import load_backend

            expected = dict(zip(texts, offline_labels(load_backend(model_dir, args.backend), texts), strict=True))
        port = free_port()
        server = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "minbert",
                "-q",
                "serve",
                str(model_dir),
                "--port",
                str(port),
                "--backend",
                args.backend,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.time() + 120
            while True:
                try:
                    if httpx.get(f"{url}/ready", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if server.poll() is not None or time.time() > deadline:
                    raise SystemExit(
                        f"server did not start: {server.stderr.read().decode()[-2000:] if server.stderr else ''}"
                    )
                time.sleep(0.2)
            asyncio.run(level(url, texts[:10], expected, 1, args.timeout))  # warm-up
            results = [asyncio.run(level(url, texts, expected, c, args.timeout)) for c in args.clients]
            if args.big_clients:
                results.append(asyncio.run(level(url, texts, expected, 8, args.timeout, args.big_clients)))
        finally:
            server.terminate()
            server.wait(timeout=30)
    header = (
        f"{'clients':>11} {'requests':>8} {'answered':>8} {'wrong':>5} {'4xx':>4} {'5xx':>4} "
        f"{'req/s':>8} {'p50 ms':>8} {'p99 ms':>8}"
    )
    lines = [f"minbert serve load test ({args.backend}, {os.cpu_count()} cores, one text per request)", header]
    who = {
        id(r): f"{r['clients']} + {r['big_clients']}x256" if r["big_clients"] else str(r["clients"]) for r in results
    }
    lines += [
        f"{who[id(r)]:>11} {r['requests']:>8} "
        f"{r['answered']:>8} {r['wrong']:>5} {r['4xx']:>4} {r['5xx']:>4} {r['requests_per_s']:>8} {r['p50_ms']:>8} {r['p99_ms']:>8}"
        for r in results
    ]
    if args.big_clients:
        lines.append(
            f"last row: {results[-1]['big_requests']} requests of 256 texts ran beside the one-text ones (latencies: one-text only)"
        )
    print("\n".join(lines))
    args.out.write_text(json.dumps({"backend": args.backend, "levels": results}, indent=2) + "\n")
    # every backend, int8 included (one activation scale per row: an answer does not depend on its batch-mates),
    # must give each text the label it gets offline
    if any(r["lost"] or r["4xx"] or r["5xx"] or r["wrong"] for r in results):
        raise SystemExit("some requests were lost, refused or answered wrongly")


if __name__ == "__main__":
    main()
