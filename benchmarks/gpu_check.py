"""Check minbert on a CUDA GPU in one command; on a machine without one, say so and exit 0.

    python benchmarks/gpu_check.py                     # MiniLM, MASSIVE from ../shared/data (or MINBERT_DATA)
    python benchmarks/gpu_check.py --checkpoint bert-base-uncased --out gpu_check.json

Each check prints one line (ok / FAILED and its numbers) and the exit status is 1 if any failed:
  parity      encoder hidden states, GPU against CPU: fp32 within 1e-4, bf16 autocast within 0.1
              (bf16 keeps 8 bits of mantissa: about 3 significant digits on values of order 1-10)
  train       a short bf16 fine-tuning run on the GPU (minbert.fit): loss falls, dev accuracy above chance
  eval        `minbert eval`, `predict` and `embed` with --device cuda, equal to the CPU's within tolerance
  serve       `minbert serve --device cuda`: /predict answers and agrees with the CPU
  ddp         two processes (torchrun, nccl) when the machine has two GPUs
  throughput  sentences/s encoding on the GPU, minbert beside transformers, fp32 and bf16 autocast
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import random
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("MINBERT_DATA", REPO.parent / "shared" / "data"))
MINBERT = [sys.executable, "-m", "minbert"]


def sentences(n: int) -> list[tuple[str, str]]:
    """(text, intent) rows: MASSIVE's training file when it is there, else a small synthetic set."""
    from minbert.data.readers import read_examples

    path = DATA / "massive_en_us" / "train.jsonl"
    if path.is_file():
        rows = read_examples(path, "massive")
        return [(e.text, str(e.label)) for e in random.Random(0).sample(rows, min(n, len(rows)))]
    words = ["alarm", "weather", "music", "lights", "calendar", "email"]
    return [(f"please do the {w} thing number {i}", w) for i in range(n) for w in [words[i % len(words)]]]


def check_parity(checkpoint: str) -> dict[str, Any]:
    from minbert import Encoder, Tokenizer

    texts = [t for t, _ in sentences(256)]
    tokenizer = Tokenizer.from_pretrained(checkpoint, max_length=64)
    batch = tokenizer(texts[:64])
    cpu = Encoder.from_pretrained(checkpoint).eval()
    gpu = Encoder.from_pretrained(checkpoint, device="cuda").eval()
    with torch.no_grad():
        reference = cpu(**batch.as_kwargs()).last_hidden_state
        fp32 = gpu(**batch.to("cuda").as_kwargs()).last_hidden_state.cpu()
        with torch.autocast("cuda", dtype=torch.bfloat16):
            bf16 = gpu(**batch.to("cuda").as_kwargs()).last_hidden_state.float().cpu()
    mask = batch.attention_mask.bool()
    fp32_diff = (fp32 - reference)[mask].abs().max().item()
    bf16_diff = (bf16 - reference)[mask].abs().max().item()
    return {"ok": fp32_diff <= 1e-4 and bf16_diff <= 0.1, "fp32_max_abs": fp32_diff, "bf16_max_abs": bf16_diff}


def check_train(checkpoint: str, work: Path) -> dict[str, Any]:
    import minbert

    rows = sentences(2400)
    train, dev = rows[:2000], rows[2000:]
    started = time.perf_counter()
    result = minbert.fit(
        checkpoint,
        train=([t for t, _ in train], [y for _, y in train]),
        dev=([t for t, _ in dev], [y for _, y in dev]),
        epochs=1,
        batch_size=32,
        lr=1e-4,
        head_lr=1e-3,
        warmup_ratio=0.06,
        bf16=True,
        device="cuda",
        max_length=64,
        output_dir=work / "run",
        progress=False,
    )
    losses = [r["loss"] for r in result.history if r["event"] == "train"]
    chance = 1 / len({y for _, y in train})
    accuracy = result.results["dev"]["accuracy"]
    return {
        "ok": losses[-1] < losses[0] and accuracy > 3 * chance,
        "dev_accuracy": accuracy,
        "first_loss": losses[0],
        "last_loss": losses[-1],
        "examples_per_s": result.summary["train_examples_per_second"],
        "seconds": round(time.perf_counter() - started, 1),
    }


def run(args: list[str]) -> str:
    done = subprocess.run([*MINBERT, *args], capture_output=True, text=True, timeout=600)
    if done.returncode:
        raise RuntimeError(f"minbert {' '.join(args[:2])} exited {done.returncode}: {done.stderr.strip()[-500:]}")
    return done.stdout


def check_eval(work: Path) -> dict[str, Any]:
    import numpy as np

    run_dir = work / "run"
    dev = work / "dev.jsonl"
    rows = sentences(2400)[2000:]
    dev.write_text("".join(json.dumps({"text": t, "label": y}) + "\n" for t, y in rows))
    scores = {
        d: json.loads(run(["eval", str(run_dir), "--data", str(dev), "--format", "jsonl", "--device", d]))
        for d in ("cuda", "cpu")
    }
    texts = [t for t, _ in rows[:50]]
    predicted = {d: run(["predict", str(run_dir), "--device", d, *texts]).splitlines() for d in ("cuda", "cpu")}
    labels = {d: [json.loads(line)["label"] for line in lines] for d, lines in predicted.items()}
    vectors = {}
    for d in ("cuda", "cpu"):
        run(["embed", str(run_dir), "--device", d, "--out", str(work / f"{d}.npy"), *texts])
        vectors[d] = np.load(work / f"{d}.npy")
    accuracy_gap = abs(scores["cuda"]["accuracy"] - scores["cpu"]["accuracy"])
    agreement = float(np.mean([a == b for a, b in zip(labels["cuda"], labels["cpu"], strict=True)]))
    vector_diff = float(np.abs(vectors["cuda"] - vectors["cpu"]).max())
    return {
        "ok": accuracy_gap <= 0.005 and agreement >= 0.98 and vector_diff <= 1e-3,
        "accuracy_cuda": scores["cuda"]["accuracy"],
        "accuracy_cpu": scores["cpu"]["accuracy"],
        "predict_agreement": agreement,
        "embed_max_abs": vector_diff,
    }


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def check_serve(work: Path) -> dict[str, Any]:
    port = free_port()
    server = subprocess.Popen(
        [*MINBERT, "serve", str(work / "run"), "--port", str(port), "--device", "cuda"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.time() + 120
        while time.time() < deadline:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/ready", timeout=2)
                break
            except OSError:
                time.sleep(0.5)
        texts = [t for t, _ in sentences(2400)[2000:2032]]
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/predict",
            data=json.dumps({"texts": texts}).encode(),
            headers={"Content-Type": "application/json"},
        )
        started = time.perf_counter()
        answer = json.loads(urllib.request.urlopen(request, timeout=30).read())
        seconds = time.perf_counter() - started
        served = [p["label"] for p in answer["predictions"]]
        local = [
            json.loads(line)["label"]
            for line in run(["predict", str(work / "run"), "--device", "cpu", *texts]).splitlines()
        ]
        agreement = sum(a == b for a, b in zip(served, local, strict=True)) / len(texts)
        return {"ok": agreement >= 0.95, "agreement_with_cpu": agreement, "request_seconds": round(seconds, 3)}
    finally:
        server.terminate()
        server.wait(timeout=30)


def check_ddp(work: Path) -> dict[str, Any]:
    rows = sentences(1200)
    train = work / "ddp_train.jsonl"
    train.write_text("".join(json.dumps({"text": t, "label": y}) + "\n" for t, y in rows))
    config = work / "ddp.json"
    config.write_text(
        json.dumps(
            {
                "output_dir": str(work / "ddp"),
                "data": {"train": str(train), "format": "jsonl", "split": [0.8, 0.2]},
                "model": {"max_length": 64},
                "train": {"epochs": 1, "device": "cuda", "progress": False},
            }
        )
    )
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node",
        "2",
        "-m",
        "minbert",
        "train",
        str(config),
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=900)
    results = work / "ddp" / "results.json"
    ok = done.returncode == 0 and results.is_file()
    accuracy = json.loads(results.read_text())["results"]["dev"]["accuracy"] if ok else None
    return {"ok": ok, "dev_accuracy": accuracy, "stderr_tail": None if ok else done.stderr[-800:]}


def check_throughput(checkpoint: str) -> dict[str, Any]:
    """Sentences/s on the GPU, minbert's length-sorted loop beside transformers with the same sorting."""
    import minbert
    from minbert.model.checkpoint import resolve_checkpoint

    texts = [t for t, _ in sentences(4000)]
    model = minbert.load(checkpoint, device="cuda")
    try:
        from transformers import AutoModel, AutoTokenizer
    except ImportError:
        return {"ok": True, "note": "transformers not installed: minbert alone", **timed_minbert(model, texts)}
    directory = str(resolve_checkpoint(checkpoint))
    reference = AutoModel.from_pretrained(directory).to("cuda").eval()
    tokenizer = AutoTokenizer.from_pretrained(directory)
    ordered = sorted(texts, key=len)

    def transformers_pass(bf16: bool) -> None:
        with torch.no_grad(), torch.autocast("cuda", dtype=torch.bfloat16, enabled=bf16):
            for i in range(0, len(ordered), 128):
                inputs = tokenizer(
                    ordered[i : i + 128], padding=True, truncation=True, max_length=128, return_tensors="pt"
                )
                reference(**inputs.to("cuda"))
        torch.cuda.synchronize()

    out = timed_minbert(model, texts)
    for bf16 in (False, True):
        out[f"transformers_{'bf16' if bf16 else 'fp32'}"] = round(
            len(texts) / best_of(functools.partial(transformers_pass, bf16)), 1
        )
    out["ok"] = True
    return out


def timed_minbert(model: Any, texts: list[str]) -> dict[str, Any]:
    def minbert_pass(bf16: bool) -> None:
        model.pooled_vectors(texts, batch_size=128, bf16=bf16)
        torch.cuda.synchronize()

    return {
        f"minbert_{'bf16' if b else 'fp32'}": round(len(texts) / best_of(functools.partial(minbert_pass, b)), 1)
        for b in (False, True)
    }


def best_of(work: Callable[[], None], rounds: int = 3) -> float:
    work()  # warm-up: CUDA context, kernels, caches
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        work()
        times.append(time.perf_counter() - started)
    return sorted(times)[len(times) // 2]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", default="all-MiniLM-L6-v2", help="a directory, known name or Hub id")
    parser.add_argument("--out", type=Path, help="also write the results as JSON here")
    args = parser.parse_args()
    if not torch.cuda.is_available():
        print(f"gpu_check: no CUDA device (torch {torch.__version__} sees none); nothing to check on this machine")
        return 0
    devices = torch.cuda.device_count()
    print(
        f"gpu_check: {devices} x {torch.cuda.get_device_name(0)}, torch {torch.__version__}, CUDA {torch.version.cuda}"
    )
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        checks: list[tuple[str, Callable[[], dict[str, Any]]]] = [
            ("parity", lambda: check_parity(args.checkpoint)),
            ("train", lambda: check_train(args.checkpoint, work)),
            ("eval", lambda: check_eval(work)),
            ("serve", lambda: check_serve(work)),
            ("throughput", lambda: check_throughput(args.checkpoint)),
        ]
        if devices >= 2:
            checks.append(("ddp", lambda: check_ddp(work)))
        else:
            print("ddp         skipped: one GPU (two-process nccl training needs two)")
        for name, check in checks:
            try:
                results[name] = check()
            except Exception as e:  # a check that crashes is a failed check; the others still run
                results[name] = {"ok": False, "error": f"{type(e).__name__}: {e}"}
            shown = ", ".join(f"{k} {v}" for k, v in results[name].items() if k != "ok")
            print(f"{name:<11} {'ok' if results[name]['ok'] else 'FAILED'}: {shown}", flush=True)
    if args.out:
        args.out.write_text(json.dumps(results, indent=2) + "\n")
    return 0 if all(r["ok"] for r in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
