"""minbert vs Hugging Face, side by side in one run, on MASSIVE en-US with all-MiniLM-L6-v2 (or another checkpoint).

    python benchmarks/bench.py                 # full: one epoch of training per trainer (~15 min on 2 cores)
    python benchmarks/bench.py --smoke         # a tiny version of every measurement (CI)
    python benchmarks/bench.py --checkpoint all-mpnet-base-v2 --train-examples 1000 --dev-examples 500 \
        --infer-examples 500 --out benchmarks/results_mpnet.json   # the base model, subsampled (~20 min)

Every contender runs in its own subprocess (so peak RSS is its own) with the same tokenizer,
max_length, batch size, thread count and model (pooler -> dropout -> linear, as
AutoModelForSequenceClassification builds it). Prints a table and writes benchmarks/results.json.

1. training: examples/s over one epoch, peak RSS, dev accuracy after that epoch
   minbert (length buckets, dynamic padding, fused AdamW; fp32 and bf16) vs transformers
   AutoModelForSequenceClassification with a plain torch AdamW loop (shuffled, padded per batch), fp32 and
   under bf16 autocast (transformers' own bf16 path on CPU);
   minbert again with transformers' classifier init (one-epoch accuracy depends on it);
   --train-rounds N trains each of them N times in alternating order and reports the median round;
   and a frozen-encoder probe: seconds per epoch on cached sentence vectors vs re-encoding every epoch
2. inference: sentences/s over all dev sentences at batch 64, and p50/p99 latency at batch 1; the
   contenders' processes stay loaded side by side and take turns, one pass each per round, so a slow
   spell of the machine hits all of them alike (--one-at-a-time runs them one after another instead)
   minbert encode (length-sorted batches; and without, in input order) and its bf16 / ONNX / int8 ONNX
   paths vs transformers AutoModel (+ mean pooling) in the plain loop (slices of 64 in input order,
   each padded to its longest), the same loop after sorting by length (what minbert's bucketing buys
   transformers), the sorted loop under bf16 autocast, and sentence-transformers encode (which sorts
   by length itself), fp32 and under bf16 autocast
3. the machine's limit: encoder FLOPs per real token x tokens/s against the measured GEMM rate of the
   same precision, for training (3x the forward FLOPs) and inference
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, cast

HERE = Path(__file__).resolve().parent
DATA = Path(os.environ.get("MINBERT_DATA", HERE.parent.parent / "shared" / "data")) / "massive_en_us"
MAX_LENGTH, BATCH, LR, SEED = 64, 32, 1e-4, 0
INFER_BATCH = 64
PROBE_EPOCHS = 10


def load_split(name: str, limit: int | None) -> tuple[list[str], list[str]]:
    rows = [json.loads(line) for line in (DATA / f"{name}.jsonl").read_text(encoding="utf-8").splitlines()]
    if limit:
        rows = random.Random(SEED).sample(rows, min(limit, len(rows)))
    return [r["text"] for r in rows], [r["label_text"] for r in rows]


def autocast(bf16: bool) -> contextlib.AbstractContextManager:
    """The anchors' bf16 path on CPU: torch autocast around their forward (and loss)."""
    import torch

    return torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()


def real_tokens(args: argparse.Namespace, texts: list[str]) -> float:
    """Mean tokens per text (with special tokens, after truncation): FLOPs are counted on these, not on padding."""
    from minbert.model.tokenizer import Tokenizer

    lengths = [len(ids) for ids in Tokenizer.from_pretrained(args.checkpoint, max_length=MAX_LENGTH).ids(texts)]
    return sum(lengths) / len(lengths)


def forward_flops_per_token(args: argparse.Namespace, length: float) -> float:
    from minbert.model.encoder import Encoder

    return Encoder.from_pretrained(args.checkpoint).flops_per_token(round(length))


def with_flops(args: argparse.Namespace, texts: list[str], result: dict, rate_key: str, passes: int) -> dict:
    """Add tokens/s and GFLOP/s (passes: 1 for inference, 3 for training's forward + backward)."""
    length = real_tokens(args, texts)
    tokens_per_s = result[rate_key] * length
    return {
        **result,
        "tokens_per_s": tokens_per_s,
        "gflops": passes * forward_flops_per_token(args, length) * tokens_per_s / 1e9,
    }


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# ---------------------------------------------------------------- workers (one per subprocess)


def train_minbert(args: argparse.Namespace, bf16: bool, hf_init: bool = False) -> dict:
    """minbert's trainer; `hf_init` re-initialises the classifier the way transformers does (normal
    std 0.02, zero bias) instead of PyTorch's default, to compare one-epoch accuracy at equal init."""
    import tempfile

    import torch

    from minbert.config import TrainConfig
    from minbert.data.labels import LabelVocab
    from minbert.data.readers import Example
    from minbert.model.heads import HeadSpec, TaskHead
    from minbert.model.task_model import Model
    from minbert.tasks.head_task import HeadTask, evaluate_examples
    from minbert.training.metrics_log import MetricsLog
    from minbert.training.trainer import Trainer

    texts, labels = load_split("train", args.train_examples)
    dev_texts, dev_labels = load_split("validation", args.dev_examples)
    train = [Example(t, y, "train", i) for i, (t, y) in enumerate(zip(texts, labels, strict=True))]
    dev = [Example(t, y, "dev", i) for i, (t, y) in enumerate(zip(dev_texts, dev_labels, strict=True))]
    vocab = LabelVocab(sorted(set(labels) | set(dev_labels)))
    spec = HeadSpec("main", labels=vocab.labels, hidden_size=0, dropout=0.1)
    model = Model.from_checkpoint(args.checkpoint, [spec], pooling="pooler", max_length=MAX_LENGTH)
    if hf_init:
        mlp = cast(TaskHead, model.heads["main"]).mlp
        assert mlp is not None  # a classification head
        classifier = cast(torch.nn.Linear, mlp.layers[-1])
        torch.nn.init.normal_(classifier.weight, std=0.02)
        torch.nn.init.zeros_(classifier.bias)
    task = HeadTask(spec, model, train, None, batch_size=BATCH, seed=SEED, bf16=bf16)
    config = TrainConfig(
        epochs=1, batch_size=BATCH, lr=LR, schedule="constant", eval_before=False, progress=False, bf16=bf16, seed=SEED
    )
    with tempfile.TemporaryDirectory() as tmp:
        log = MetricsLog(Path(tmp) / "metrics.jsonl")
        fit = Trainer(model, task, config, log, torch.device("cpu")).fit()
        log.close()
    accuracy = evaluate_examples(model, "main", dev, 128).metrics["accuracy"]
    result = {"examples_per_s": fit.examples_per_second, "seconds": fit.train_seconds, "dev_accuracy": accuracy}
    return with_flops(args, texts, result, "examples_per_s", 3)


def train_probe(args: argparse.Namespace, cached: bool) -> dict:
    """A frozen-encoder probe ([CLS] -> 512 -> intents) trained with the sentence vectors cached once
    (epochs then train the head only) or re-encoded by the frozen encoder in every epoch."""
    import tempfile

    import torch

    from minbert.config import TrainConfig
    from minbert.data.labels import LabelVocab
    from minbert.data.readers import Example
    from minbert.model.heads import HeadSpec
    from minbert.model.task_model import Model
    from minbert.tasks.head_task import HeadTask
    from minbert.training.metrics_log import MetricsLog
    from minbert.training.optim import apply_freezing
    from minbert.training.trainer import Trainer

    texts, labels = load_split("train", args.train_examples)
    train = [Example(t, y, "train", i) for i, (t, y) in enumerate(zip(texts, labels, strict=True))]
    vocab = LabelVocab(sorted(set(labels)))
    spec = HeadSpec("main", labels=vocab.labels, hidden_size=512, dropout=0.1)
    model = Model.from_checkpoint(args.checkpoint, [spec], pooling="cls", max_length=MAX_LENGTH)
    apply_freezing(model, "encoder")
    started = time.perf_counter()
    task = HeadTask(spec, model, train, None, batch_size=BATCH, seed=SEED, cache_features=cached)
    cache_s = time.perf_counter() - started
    epochs = PROBE_EPOCHS if cached else 1
    config = TrainConfig(
        epochs=epochs, batch_size=BATCH, lr=1e-3, schedule="constant", eval_before=False, progress=False, seed=SEED
    )
    with tempfile.TemporaryDirectory() as tmp:
        log = MetricsLog(Path(tmp) / "metrics.jsonl")
        fit = Trainer(model, task, config, log, torch.device("cpu")).fit()
        log.close()
    return {"epoch_s": fit.train_seconds / epochs, "cache_s": cache_s if cached else 0.0, "epochs": epochs}


def train_transformers(args: argparse.Namespace, bf16: bool = False) -> dict:
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from minbert.model.checkpoint import resolve_checkpoint

    path = str(resolve_checkpoint(args.checkpoint))
    texts, labels = load_split("train", args.train_examples)
    dev_texts, dev_labels = load_split("validation", args.dev_examples)
    names = sorted(set(labels) | set(dev_labels))
    index = {name: i for i, name in enumerate(names)}
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForSequenceClassification.from_pretrained(path, num_labels=len(names))
    optimizer = torch.optim.AdamW(model.parameters(), lr=LR, weight_decay=0.01)
    order = list(range(len(texts)))
    random.Random(SEED).shuffle(order)
    model.train()
    started = time.perf_counter()
    for start in range(0, len(order), BATCH):
        batch = order[start : start + BATCH]
        inputs = tokenizer(
            [texts[i] for i in batch], padding=True, truncation=True, max_length=MAX_LENGTH, return_tensors="pt"
        )
        with autocast(bf16):
            loss = model(**inputs, labels=torch.tensor([index[labels[i]] for i in batch])).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad()
    seconds = time.perf_counter() - started
    model.eval()
    correct = 0
    with torch.no_grad(), autocast(bf16):
        for start in range(0, len(dev_texts), 128):
            inputs = tokenizer(
                dev_texts[start : start + 128],
                padding=True,
                truncation=True,
                max_length=MAX_LENGTH,
                return_tensors="pt",
            )
            predicted = model(**inputs).logits.argmax(-1).tolist()
            correct += sum(p == index[y] for p, y in zip(predicted, dev_labels[start : start + 128], strict=True))
    result = {"examples_per_s": len(texts) / seconds, "seconds": seconds, "dev_accuracy": correct / len(dev_texts)}
    return with_flops(args, texts, result, "examples_per_s", 3)


def latency_and_throughput(
    encode_all, encode_one, texts: list[str], single: list[str], args: argparse.Namespace
) -> dict:
    """Sentences/s for `encode_all(texts)` (each contender's own way of running a list at batch 64; the
    median of its passes, as one pass over dev takes only seconds), then batch-1 latency percentiles."""
    encode_all(texts[:64])  # warm-up
    throughput = statistics.median(timed_passes(encode_all, texts, args))
    times = []
    for text in single:
        t0 = time.perf_counter()
        encode_one([text])
        times.append(1000 * (time.perf_counter() - t0))
    times.sort()
    return {
        "sentences_per_s": throughput,
        "p50_ms": statistics.median(times),
        "p99_ms": times[min(len(times) - 1, int(0.99 * len(times)))],
    }


TURN = "@bench "  # prefix of the lines a worker taking turns writes to the parent (libraries print too)
PAUSE_S = 0.5  # between turns, so the last contender's spinning thread pools have gone idle


def timed_passes(encode_all, texts: list[str], args: argparse.Namespace) -> list[float]:
    """Sentences/s of each pass over `texts`. Alone: `repeats` passes back to back. Taking turns (--turns):
    one pass each time the parent writes `pass`, until it writes `end`, so that contenders alternate and a
    slow spell of a shared machine falls on all of them alike instead of on whichever ran then."""

    def one_pass() -> float:
        started = time.perf_counter()
        encode_all(texts)
        return len(texts) / (time.perf_counter() - started)

    if not args.turns:
        return [one_pass() for _ in range(args.repeats)]
    print(TURN + "ready", flush=True)
    rates = []
    for line in sys.stdin:
        if line.strip() != "pass":
            break
        rates.append(one_pass())
        print(TURN + json.dumps(rates[-1]), flush=True)
    return rates


def in_input_order(encode_batch):
    """The plain loop: consecutive slices of 64 in the order given, each padded to its longest text."""
    return lambda texts: [
        encode_batch(texts[start : start + INFER_BATCH]) for start in range(0, len(texts), INFER_BATCH)
    ]


def length_sorted(encode_batch):
    """Slices of 64 after sorting by length, so each batch pads to about its own length (minbert's bucketing)."""

    def run(texts: list[str]) -> list:
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        return [
            encode_batch([texts[i] for i in order[start : start + INFER_BATCH]])
            for start in range(0, len(texts), INFER_BATCH)
        ]

    return run


def infer_minbert(args: argparse.Namespace, bf16: bool, bucketed: bool = True, compiled: bool = False) -> dict:
    """minbert's encode; `compiled` wraps the encoder in torch.compile(dynamic=True) and warms it up on
    every length first (the compile time is reported, not counted in the throughput)."""
    import torch

    from minbert.model.task_model import Model
    from minbert.runtime import compile_encoder

    texts, _ = load_split("validation", args.infer_examples)
    model = Model.from_checkpoint(args.checkpoint, pooling="mean", max_length=MAX_LENGTH)
    if compiled:
        compile_encoder(model)

    def encode(batch: list[str]) -> torch.Tensor:
        return model.pooled_vectors(batch, INFER_BATCH, bf16)

    started = time.perf_counter()
    if compiled:  # every batch-64 length, then batch 1 (torch.compile specialises size-1 dimensions)
        encode(texts)
        for text in texts[:2]:
            encode([text])
    compile_s = time.perf_counter() - started
    result = latency_and_throughput(
        encode if bucketed else in_input_order(encode), encode, texts, texts[: args.latency_examples], args
    )
    result = with_flops(args, texts, result, "sentences_per_s", 1)
    return {**result, "compile_s": compile_s} if compiled else result


def infer_minbert_onnx(args: argparse.Namespace, backend: str) -> dict:
    """A classifier exported to ONNX and run by ONNX Runtime: `--model`'s trained one (then with its dev accuracy),
    or a fresh head of 60 intents on the checkpoint."""
    import shutil
    import tempfile

    from minbert.model.backends import OnnxModel, export_onnx
    from minbert.model.heads import HeadSpec
    from minbert.model.layout import model_directory
    from minbert.model.task_model import Model

    texts, labels = load_split("validation", args.infer_examples)
    with tempfile.TemporaryDirectory() as tmp:
        if args.model:
            shutil.copytree(model_directory(args.model), Path(tmp) / "model")
        else:
            head = HeadSpec("main", labels=sorted(set(labels)), hidden_size=512)
            Model.from_checkpoint(args.checkpoint, [head], max_length=MAX_LENGTH).save(Path(tmp) / "model")
        export_onnx(Path(tmp) / "model", int8=backend == "onnx-int8")
        model = OnnxModel(Path(tmp) / "model", backend, threads=args.threads)
        encode = lambda batch: model.raw_outputs("main", batch, INFER_BATCH)  # noqa: E731
        result = latency_and_throughput(encode, encode, texts, texts[: args.latency_examples], args)
        if args.model:
            predicted = [p.label for p in model.predict(texts, batch_size=INFER_BATCH)]  # type: ignore[union-attr]
            result["dev_accuracy"] = sum(p == y for p, y in zip(predicted, labels, strict=True)) / len(texts)
        return with_flops(args, texts, result, "sentences_per_s", 1)


def infer_transformers(args: argparse.Namespace, sort_by_length: bool = False, bf16: bool = False) -> dict:
    import torch
    from transformers import AutoModel, AutoTokenizer

    from minbert.model.checkpoint import resolve_checkpoint

    path = str(resolve_checkpoint(args.checkpoint))
    texts, _ = load_split("validation", args.infer_examples)
    tokenizer, model = AutoTokenizer.from_pretrained(path), AutoModel.from_pretrained(path).eval()

    def encode(batch: list[str]) -> torch.Tensor:
        inputs = tokenizer(batch, padding=True, truncation=True, max_length=MAX_LENGTH, return_tensors="pt")
        with torch.no_grad(), autocast(bf16):
            hidden = model(**inputs).last_hidden_state.float()
        mask = inputs["attention_mask"].unsqueeze(-1).float()
        return (hidden * mask).sum(1) / mask.sum(1)

    run_all = length_sorted(encode) if sort_by_length else in_input_order(encode)
    result = latency_and_throughput(run_all, encode, texts, texts[: args.latency_examples], args)
    return with_flops(args, texts, result, "sentences_per_s", 1)


def infer_sentence_transformers(args: argparse.Namespace, bf16: bool = False) -> dict:
    from sentence_transformers import SentenceTransformer

    from minbert.model.checkpoint import resolve_checkpoint

    texts, _ = load_split("validation", args.infer_examples)
    model = SentenceTransformer(str(resolve_checkpoint(args.checkpoint)), device="cpu")
    model.max_seq_length = MAX_LENGTH

    def encode(batch: list[str]) -> object:
        with autocast(bf16):
            return model.encode(batch, batch_size=INFER_BATCH)

    result = latency_and_throughput(encode, encode, texts, texts[: args.latency_examples], args)
    return with_flops(args, texts, result, "sentences_per_s", 1)


ST_ONNX_VENV = HERE / ".venv-st-onnx"
# sentence-transformers' ONNX backend needs optimum-onnx, which pins transformers < 4.58 while
# sentence-transformers 6 needs >= 5: its contenders run in their own working stack, made by --setup-st-onnx.
ST_ONNX_REQUIREMENTS = ["sentence-transformers[onnx]<6"]
ST_ONNX_WORKERS = ("infer/sentence-transformers-onnx", "infer/sentence-transformers-onnx-qint8")


def setup_st_onnx() -> None:
    """Make (or keep) the environment of sentence-transformers' ONNX contenders; torch is the CPU wheel on disk."""
    python = ST_ONNX_VENV / "bin" / "python"
    if not python.is_file():
        subprocess.run([sys.executable, "-m", "venv", str(ST_ONNX_VENV)], check=True)
    for requirement in (["torch==2.13.0"], ST_ONNX_REQUIREMENTS):
        subprocess.run([str(python), "-m", "pip", "install", "--quiet", *requirement], check=True)


def infer_sentence_transformers_onnx(args: argparse.Namespace, quantized: bool) -> dict:
    """sentence-transformers' own ONNX backend (exported by optimum), and its dynamic int8 export for AVX-512 VNNI,
    on a copy of the checkpoint (runs in the --setup-st-onnx environment; no minbert there)."""
    import shutil

    from sentence_transformers import SentenceTransformer, export_dynamic_quantized_onnx_model

    copy = HERE / ".cache" / "st-onnx" / Path(args.checkpoint_path).name
    if not (copy / "onnx" / "model.onnx").is_file():
        shutil.rmtree(copy, ignore_errors=True)
        shutil.copytree(args.checkpoint_path, copy)
        SentenceTransformer(str(copy), backend="onnx", device="cpu").save(str(copy))
    model_kwargs: dict[str, Any] | None = None
    if quantized:
        model_kwargs = {"file_name": "onnx/model_qint8_avx512_vnni.onnx"}
        if not (copy / "onnx" / "model_qint8_avx512_vnni.onnx").is_file():
            plain = SentenceTransformer(str(copy), backend="onnx", device="cpu")
            export_dynamic_quantized_onnx_model(plain, "avx512_vnni", str(copy))
    texts, _ = load_split("validation", args.infer_examples)
    model = SentenceTransformer(str(copy), backend="onnx", device="cpu", model_kwargs=model_kwargs)
    model.max_seq_length = MAX_LENGTH
    encode = lambda batch: model.encode(batch, batch_size=INFER_BATCH)  # noqa: E731
    return latency_and_throughput(encode, encode, texts, texts[: args.latency_examples], args)


def padding_overhead(args: argparse.Namespace) -> dict:
    """Padded tokens / real tokens over dev at batch 64: the most that packing (unpadded attention) could save."""
    from minbert.data.batching import sorted_batches
    from minbert.model.tokenizer import Tokenizer

    texts, _ = load_split("validation", args.infer_examples)
    lengths = [len(ids) for ids in Tokenizer.from_pretrained(args.checkpoint, max_length=MAX_LENGTH).ids(texts)]

    def padded(batches: list[list[int]]) -> float:
        return sum(len(b) * max(lengths[i] for i in b) for b in batches) / sum(lengths)

    in_order = [list(range(start, min(start + INFER_BATCH, len(texts)))) for start in range(0, len(texts), INFER_BATCH)]
    return {
        "input_order": padded(in_order),
        "length_sorted": padded([list(b) for b in sorted_batches(lengths, INFER_BATCH)]),
    }


def gemm_gflops(args: argparse.Namespace) -> dict:
    """2048^2 matmul rate in fp32 and bf16; whether the CPU has bf16 instructions decides which is faster.

    Up to 5 products or 2 s each: without bf16 instructions one bf16 product takes ~25 s on one core, and
    --smoke (256^2) only checks that the measurement runs."""
    import torch

    from minbert.runtime import cpu_has_native_bf16

    size = 256 if args.smoke else 2048
    out: dict = {"native_bf16": cpu_has_native_bf16(), "size": size}
    for name, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
        a, b = torch.randn(size, size, dtype=dtype), torch.randn(size, size, dtype=dtype)
        a @ b
        started, repeats = time.perf_counter(), 0
        while repeats < 5 and (repeats == 0 or time.perf_counter() - started < 2.0):
            a @ b
            repeats += 1
        out[name] = 2 * size**3 * repeats / (time.perf_counter() - started) / 1e9
    return out


WORKERS = {
    "train/minbert": lambda a: train_minbert(a, bf16=False),
    "train/minbert-bf16": lambda a: train_minbert(a, bf16=True),
    "train/minbert-hf-init": lambda a: train_minbert(a, bf16=False, hf_init=True),
    "train/transformers": train_transformers,
    "train/transformers-bf16": lambda a: train_transformers(a, bf16=True),
    "probe/cached": lambda a: train_probe(a, cached=True),
    "probe/re-encoded": lambda a: train_probe(a, cached=False),
    "infer/minbert-unbucketed": lambda a: infer_minbert(a, bf16=False, bucketed=False),
    "infer/minbert": lambda a: infer_minbert(a, bf16=False),
    "infer/minbert-bf16": lambda a: infer_minbert(a, bf16=True),
    "infer/minbert-compiled": lambda a: infer_minbert(a, bf16=False, compiled=True),
    "infer/minbert-onnx": lambda a: infer_minbert_onnx(a, "onnx"),
    "infer/minbert-onnx-int8": lambda a: infer_minbert_onnx(a, "onnx-int8"),
    "infer/transformers": infer_transformers,
    "infer/transformers-sorted": lambda a: infer_transformers(a, sort_by_length=True),
    "infer/transformers-sorted-bf16": lambda a: infer_transformers(a, sort_by_length=True, bf16=True),
    "infer/sentence-transformers": infer_sentence_transformers,
    "infer/sentence-transformers-bf16": lambda a: infer_sentence_transformers(a, bf16=True),
    "infer/sentence-transformers-onnx": lambda a: infer_sentence_transformers_onnx(a, quantized=False),
    "infer/sentence-transformers-onnx-qint8": lambda a: infer_sentence_transformers_onnx(a, quantized=True),
    "gemm": gemm_gflops,
    "padding": padding_overhead,
}


def worker_command(name: str, args: argparse.Namespace) -> list[str]:
    st_onnx = name in ST_ONNX_WORKERS
    return [
        str(ST_ONNX_VENV / "bin" / "python") if st_onnx else sys.executable,
        __file__,
        "--worker",
        name,
        "--threads",
        str(args.threads),
        "--train-examples",
        str(args.train_examples or 0),
        "--dev-examples",
        str(args.dev_examples or 0),
        "--infer-examples",
        str(args.infer_examples or 0),
        "--latency-examples",
        str(args.latency_examples),
        "--repeats",
        str(args.repeats),
        *(["--checkpoint", args.checkpoint] if args.checkpoint else []),
        *(["--model", str(args.model)] if args.model else []),
        *(["--checkpoint-path", str(checkpoint_path(args))] if st_onnx else []),
        *(["--smoke"] if args.smoke else []),
    ]


WORKER_ENV = {**os.environ, "TOKENIZERS_PARALLELISM": "false"}


def worker_result(name: str, args: argparse.Namespace, returncode: int, stdout: str, stderr: str) -> dict:
    """A finished worker's JSON result (its stdout's last line)."""
    if returncode:
        raise SystemExit(f"benchmark worker {name} failed:\n{stderr[-3000:]}")
    result = json.loads(stdout.strip().splitlines()[-1])
    if name in ST_ONNX_WORKERS:  # FLOP accounting needs minbert, which that environment does not have
        result = with_flops(
            args, load_split("validation", args.infer_examples or None)[0], result, "sentences_per_s", 1
        )
    return result


def run_worker(name: str, args: argparse.Namespace) -> dict:
    """Run one contender alone in a fresh process."""
    done = subprocess.run(worker_command(name, args), capture_output=True, text=True, env=WORKER_ENV)
    return worker_result(name, args, done.returncode, done.stdout, done.stderr)


def run_in_rounds(names: list[str], args: argparse.Namespace) -> dict[str, dict]:
    """Training contenders, each `--train-rounds` times in a fresh process, the order reversed every other round
    so that a slow spell of a shared machine falls on all of them alike; each reports its median round
    (by examples/s) and the examples/s of every round."""
    rounds: dict[str, list[dict]] = {name: [] for name in names}
    for round_index in range(args.train_rounds):
        for name in names if round_index % 2 == 0 else names[::-1]:
            print(f"running {name} (round {round_index + 1} of {args.train_rounds}) ...", file=sys.stderr, flush=True)
            rounds[name].append(run_worker(name, args))
    results = {}
    for name, runs in rounds.items():
        ranked = sorted(runs, key=lambda r: r["examples_per_s"])
        results[name] = {**ranked[(len(ranked) - 1) // 2], "rounds": [r["examples_per_s"] for r in runs]}
    return results


def run_taking_turns(names: list[str], args: argparse.Namespace) -> dict[str, dict]:
    """Inference contenders side by side: each process is started and warmed up in turn, then every round
    gives each one throughput pass (rotating who goes first) for `repeats` rounds, and each reports the
    median of its passes; batch-1 latency is then measured one process at a time. One pass is seconds
    long and a shared machine's speed drifts over minutes, so ratios from alternating passes are fair
    where back-to-back runs are not. All the processes stay loaded at once (MiniLM: ~1 GB each)."""
    workers: dict[str, subprocess.Popen] = {}
    errors = {name: tempfile.TemporaryFile("w+") for name in names}

    def reply(name: str) -> str:
        for line in workers[name].stdout:  # type: ignore[union-attr]
            if line.startswith(TURN):
                return line[len(TURN) :].strip()
        errors[name].seek(0)
        raise SystemExit(f"benchmark worker {name} failed:\n{errors[name].read()[-3000:]}")

    def send(name: str, word: str) -> None:
        try:
            workers[name].stdin.write(word + "\n")  # type: ignore[union-attr]
            workers[name].stdin.flush()  # type: ignore[union-attr]
        except BrokenPipeError:  # it died: reply() reports its error output
            reply(name)

    try:
        for name in names:
            print(f"starting {name} ...", file=sys.stderr, flush=True)
            workers[name] = subprocess.Popen(
                [*worker_command(name, args), "--turns"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=errors[name],
                text=True,
                env=WORKER_ENV,
            )
            reply(name)  # loaded and warmed up
        for round_index in range(args.repeats):
            print(f"round {round_index + 1} of {args.repeats}: one pass each", file=sys.stderr, flush=True)
            first = round_index % len(names)
            for name in names[first:] + names[:first]:
                send(name, "pass")
                reply(name)
                time.sleep(PAUSE_S)
        results = {}
        for name in names:
            send(name, "end")
            stdout, _ = workers[name].communicate()
            errors[name].seek(0)
            results[name] = worker_result(name, args, workers[name].returncode, stdout, errors[name].read())
        return results
    finally:
        for worker in workers.values():
            if worker.poll() is None:
                worker.kill()
        for handle in errors.values():
            handle.close()


def checkpoint_path(args: argparse.Namespace) -> Path:
    from minbert.model.checkpoint import resolve_checkpoint

    return resolve_checkpoint(args.checkpoint)


BF16_FLAGS: dict[bool | None, str] = {True: "yes", False: "no, bf16 is emulated", None: "unknown"}


def cpu_facts() -> str:
    from minbert.runtime import cpu_description

    return cpu_description(("avx512f", "avx512_bf16", "avx512_vnni", "amx_bf16", "amx_int8"))


def ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}x"


def selects(word: str, name: str) -> bool:
    """`--only` word: a contender's whole name picks it alone, anything else is a prefix."""
    return word == name if word in WORKERS else name.startswith(word)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true", help="tiny sizes: checks that every measurement runs (CI)")
    parser.add_argument(
        "--threads",
        type=int,
        default=int(os.environ.get("OMP_NUM_THREADS", 0)) or os.cpu_count() or 1,
        help="threads for every contender (default: OMP_NUM_THREADS, else one per core)",
    )
    parser.add_argument("--train-examples", type=int, default=0, help="training examples (0 = all 11,514)")
    parser.add_argument("--dev-examples", type=int, default=0, help="dev examples (0 = all 2,033)")
    parser.add_argument("--infer-examples", type=int, default=0, help="sentences for throughput (0 = all dev)")
    parser.add_argument(
        "--repeats", type=int, default=5, help="passes over the inference sentences; the median is reported"
    )
    parser.add_argument("--latency-examples", type=int, default=300, help="sentences for batch-1 latency")
    parser.add_argument(
        "--train-rounds",
        type=int,
        default=1,
        help="train every training contender this many times, in alternating order (reversed every other round), "
        "and report each one's median round: on a shared host a training row moves by ~10 %% between runs",
    )
    parser.add_argument("--out", type=Path, default=HERE / "results.json")
    parser.add_argument(
        "--checkpoint", help="the encoder (default all-MiniLM-L6-v2; e.g. all-mpnet-base-v2, once downloaded)"
    )
    parser.add_argument(
        "--only",
        nargs="*",
        default=[],
        help="run only these contenders: a whole name picks that one (train/minbert), "
        "any other text the contenders whose name starts with it (infer, train/minbert-)",
    )
    parser.add_argument(
        "--model",
        type=Path,
        help="a trained MASSIVE model (run or model dir): the ONNX rows also report its dev accuracy",
    )
    parser.add_argument(
        "--setup-st-onnx",
        action="store_true",
        help=f"make the environment of sentence-transformers' ONNX contenders ({ST_ONNX_VENV.name}/), then run",
    )
    parser.add_argument(
        "--one-at-a-time",
        action="store_true",
        help="run the inference contenders one after another instead of side by side taking turns "
        "(less memory: all of them stay loaded while taking turns, ~2 GB each for a base model)",
    )
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--turns", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--checkpoint-path", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.train_rounds < 1:
        parser.error("--train-rounds takes a whole number from 1 (e.g. 3)")
    if args.setup_st_onnx:
        setup_st_onnx()
    if args.smoke:
        args.train_examples, args.dev_examples, args.infer_examples, args.latency_examples, args.repeats = (
            128,
            64,
            128,
            10,
            1,
        )
    if args.worker:
        import torch

        torch.manual_seed(SEED)
        torch.set_num_threads(args.threads)
        for key in ("train_examples", "dev_examples", "infer_examples"):
            setattr(args, key, getattr(args, key) or None)
        result = WORKERS[args.worker](args)
        print(json.dumps({**result, "peak_rss_mb": peak_rss_mb()}))
        return

    unknown = [word for word in args.only if not any(selects(word, name) for name in WORKERS)]
    if unknown:
        parser.error(f"--only {' '.join(unknown)}: no contender is named so; they are {', '.join(WORKERS)}")
    chosen = []
    for name in WORKERS:
        if args.only and not any(selects(word, name) for word in args.only):
            continue
        if name in ST_ONNX_WORKERS and not (ST_ONNX_VENV / "bin" / "python").is_file():
            print(f"skipping {name}: its environment is missing (run with --setup-st-onnx once)", file=sys.stderr)
            continue
        chosen.append(name)
    taking_turns = [] if args.one_at_a_time else [n for n in chosen if n.startswith("infer/")]
    results = run_in_rounds([n for n in chosen if n.startswith("train/")], args)
    for name in [n for n in chosen if n not in taking_turns and not n.startswith("train/")]:
        print(f"running {name} ...", file=sys.stderr, flush=True)
        results[name] = run_worker(name, args)
    if taking_turns:
        results |= run_taking_turns(taking_turns, args)
    gemm = results.get("gemm") or {}
    checkpoint = args.checkpoint or "all-MiniLM-L6-v2"

    def precision(name: str) -> str:
        return "int8" if "int8" in name else "bf16" if "bf16" in name else "fp32"  # qint8 is int8 too

    def share(r: dict, name: str) -> str:
        """Achieved GFLOP/s on real tokens as a share of the GEMM rate of the same precision."""
        rate = gemm.get(precision(name))
        return f"{100 * r['gflops'] / rate:>5.0f}%" if rate and "gflops" in r else "     "

    lines = [
        f"MASSIVE en-US, {checkpoint}, {args.threads} threads, max_length {MAX_LENGTH}, train batch {BATCH}"
        + (f", {args.train_examples} training examples" if args.train_examples else "")
        + (" (SMOKE: tiny sizes, numbers not meaningful)" if args.smoke else ""),
        "",
        "training (1 epoch)            examples/s   vs HF fp32   vs HF same precision   peak RSS MB   dev acc   GEMM share"
        + (f"   (median of {args.train_rounds} alternating rounds)" if args.train_rounds > 1 else ""),
    ]
    train_hf = results.get("train/transformers") or {}
    order = (
        "train/transformers",
        "train/transformers-bf16",
        "train/minbert",
        "train/minbert-bf16",
        "train/minbert-hf-init",
    )
    for name in [n for n in order if n in results and train_hf]:
        r = results[name]
        anchor = results.get("train/transformers-bf16" if precision(name) == "bf16" else "train/transformers")
        same = ratio(r["examples_per_s"], anchor["examples_per_s"]) if anchor and "minbert" in name else ""
        lines.append(
            f"  {name:<27} {r['examples_per_s']:>10.1f} {ratio(r['examples_per_s'], train_hf['examples_per_s']):>12} {same:>22} "
            f"{r['peak_rss_mb']:>13.0f} {r['dev_accuracy']:>9.4f} {share(r, name):>12}"
        )
    probe_cached, probe_encoded = results.get("probe/cached"), results.get("probe/re-encoded")
    if probe_cached and probe_encoded:
        lines += [
            "",
            f"frozen-encoder probe epoch: {probe_encoded['epoch_s']:.2f} s re-encoding every epoch, {probe_cached['epoch_s']:.3f} s on cached vectors "
            f"({probe_encoded['epoch_s'] / probe_cached['epoch_s']:.0f}x; the cache is built once in {probe_cached['cache_s']:.1f} s)",
        ]
    lines += [
        "",
        "inference                                sent/s @64   vs HF fp32   vs best anchor same precision   p50 ms @1   p99 ms @1   peak RSS MB   GEMM share",
    ]
    infer_hf = results.get("infer/transformers") or {}
    names = (
        "infer/transformers",
        "infer/transformers-sorted",
        "infer/transformers-sorted-bf16",
        "infer/sentence-transformers",
        "infer/sentence-transformers-bf16",
        "infer/sentence-transformers-onnx",
        "infer/sentence-transformers-onnx-qint8",
        "infer/minbert-unbucketed",
        "infer/minbert",
        "infer/minbert-bf16",
        "infer/minbert-compiled",
        "infer/minbert-onnx",
        "infer/minbert-onnx-int8",
    )
    for name in [n for n in names if n in results and infer_hf]:
        r = results[name]
        anchors = [
            results[n]["sentences_per_s"]
            for n in names
            if n in results and "minbert" not in n and precision(n) == precision(name)
        ]
        same = ratio(r["sentences_per_s"], max(anchors)) if anchors and "minbert" in name else ""
        lines.append(
            f"  {name:<38} {r['sentences_per_s']:>10.1f} {ratio(r['sentences_per_s'], infer_hf['sentences_per_s']):>12} {same:>31} "
            f"{r['p50_ms']:>11.2f} {r['p99_ms']:>11.2f} {r['peak_rss_mb']:>13.0f} {share(r, name):>12}"
            + (f"   (+{r['compile_s']:.0f} s compiling)" if "compile_s" in r else "")
            + (f"   dev acc {r['dev_accuracy']:.4f} (--model)" if "dev_accuracy" in r else "")
        )
    if gemm:
        lines += [
            "",
            f"machine: {cpu_facts()}; GEMM {gemm.get('size', 2048)}^2 {gemm['fp32']:.0f} GFLOP/s fp32, {gemm['bf16']:.0f} GFLOP/s bf16 "
            f"(CPU bf16 instructions: {BF16_FLAGS.get(gemm.get('native_bf16'), 'unknown')}). GEMM share: encoder FLOPs on real "
            "tokens (training: 3x forward) per second over the GEMM rate of the row's precision (int8 rows: not computed)",
        ]
    pad = results.get("padding")
    if pad:
        lines.append(
            f"padding at batch {INFER_BATCH}: input-order batches carry {pad['input_order']:.2f}x the real tokens, length-sorted "
            f"{pad['length_sorted']:.2f}x, so packing / unpadded attention could save at most {100 * (1 - 1 / pad['length_sorted']):.0f}% more"
        )
    print("\n".join(lines))
    args.out.with_suffix(".txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    args.out.write_text(
        json.dumps(
            {
                "smoke": args.smoke,
                "threads": args.threads,
                "checkpoint": checkpoint,
                "cpu": cpu_facts(),
                "results": results,
            },
            indent=2,
        )
        + "\n",
        encoding="utf-8",
    )
    print(f"\nwrote {args.out} and {args.out.with_suffix('.txt')}")


if __name__ == "__main__":
    main()
