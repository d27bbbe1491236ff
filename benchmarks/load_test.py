"""Load test of `minbert serve` on loopback: requests/s and latency at 1, 8 and 32 concurrent clients.

    python benchmarks/load_test.py [--model MODEL_DIR] [--requests 200] [--backend torch|onnx|onnx-int8]

Starts `minbert serve` in a subprocess on a free loopback port, sends a bounded number of one-text
requests (real MASSIVE test utterances) per concurrency level, and checks every answer against the
model's own prediction: nothing lost, nothing answered wrongly. Prints a table, writes JSON.
Without --model it serves a fresh classifier head on all-MiniLM-L6-v2 (speed does not depend on training).
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

import httpx

HERE = Path(__file__).resolve().parent
DATA = Path(os.environ.get("MINBERT_DATA", HERE.parent.parent / "shared" / "data"))


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


async def level(url: str, texts: list[str], expected: dict[str, str], clients: int, timeout: float) -> dict:
    latencies: list[float] = []
    wrong = lost = 0
    queue = list(range(len(texts)))

    async def client(http: httpx.AsyncClient) -> None:
        nonlocal wrong, lost
        while queue:
            text = texts[queue.pop()]
            started = time.perf_counter()
            try:
                response = await http.post("/predict", json={"texts": [text]})
                label = response.json()["predictions"][0]["label"] if response.status_code == 200 else None
            except httpx.HTTPError:
                label = None
            latencies.append(time.perf_counter() - started)
            if label is None:
                lost += 1
            elif label != expected[text]:
                wrong += 1

    async with httpx.AsyncClient(base_url=url, timeout=timeout) as http:
        started = time.perf_counter()
        await asyncio.wait_for(asyncio.gather(*(client(http) for _ in range(clients))), timeout)
        wall = time.perf_counter() - started
    latencies.sort()
    return {
        "clients": clients,
        "requests": len(texts),
        "answered": len(texts) - lost,
        "wrong": wrong,
        "lost": lost,
        "requests_per_s": round(len(texts) / wall, 1),
        "p50_ms": round(1000 * statistics.median(latencies), 2),
        "p99_ms": round(1000 * latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))], 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, help="saved model dir (default: a fresh head on all-MiniLM-L6-v2)")
    parser.add_argument("--requests", type=int, default=200, help="requests per concurrency level (default: 200)")
    parser.add_argument("--clients", type=int, nargs="*", default=[1, 8, 32])
    parser.add_argument("--backend", default="torch")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds per level before giving up")
    parser.add_argument("--out", type=Path, default=HERE / "results_serve.json")
    args = parser.parse_args()

    from minbert.data.readers import read_examples
    from minbert.model.heads import HeadSpec
    from minbert.model.task_model import Model, load

    texts = [e.text for e in read_examples(DATA / "massive_en_us" / "test.jsonl", "massive")][: args.requests]
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = args.model
        if model_dir is None:
            labels = sorted({e.label for e in read_examples(DATA / "massive_en_us" / "train.jsonl", "massive")})
            model_dir = Model.from_checkpoint(
                None, [HeadSpec("main", labels=labels, hidden_size=512)], max_length=64
            ).save(Path(tmp) / "model")
        model = load(model_dir)
        expected = {t: p.label for t, p in zip(texts, model.predict(texts), strict=True)}
        if args.backend != "torch":  # compare with the backend's own offline answers
            from minbert.model.backends import load_backend

            expected = {
                t: p.label for t, p in zip(texts, load_backend(model_dir, args.backend).predict(texts), strict=True)
            }
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
                    if httpx.get(f"{url}/health", timeout=1).status_code == 200:
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
        finally:
            server.terminate()
            server.wait(timeout=30)
    header = f"{'clients':>7} {'requests':>8} {'answered':>8} {'wrong':>5} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8}"
    lines = [f"minbert serve load test ({args.backend}, {os.cpu_count()} cores, one text per request)", header]
    lines += [
        f"{r['clients']:>7} {r['requests']:>8} {r['answered']:>8} {r['wrong']:>5} {r['requests_per_s']:>8} {r['p50_ms']:>8} {r['p99_ms']:>8}"
        for r in results
    ]
    print("\n".join(lines))
    args.out.write_text(json.dumps({"backend": args.backend, "levels": results}, indent=2) + "\n")
    if args.backend == "onnx-int8":
        # Dynamic int8 quantises activations with one scale per tensor, computed over the whole batch: a text's
        # logits depend on what it is batched with, so near-ties can flip between batchings. Reported, not failed.
        print(
            "onnx-int8: 'wrong' counts answers that differ from the same backend's offline batches (batch-dependent activation scales)"
        )
    if any(r["lost"] for r in results) or (args.backend != "onnx-int8" and any(r["wrong"] for r in results)):
        raise SystemExit("some requests were lost or answered wrongly")


if __name__ == "__main__":
    main()
