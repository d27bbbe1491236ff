"""The HTTP API of a saved model.

    GET  /              a page to try the model in a browser (self-contained: no CDN)
    GET  /health        liveness: the process answers
    GET  /ready         readiness: the model is loaded and warm, and the server is not shutting down
    GET  /info          model name, kind, labels / tasks, limits, the endpoints, minbert version
    POST /predict       {"texts": [...]} (or {"pairs": [[a, b], ...], "task": NAME} for pair tasks) -> predictions
    POST /embed         {"texts": [...]} -> sentence embeddings
    GET  /metrics       Prometheus text format: requests, latency, batch sizes, queue, rejections
    GET  /openapi.json  the OpenAPI schema (no Swagger page: it would load its scripts from a CDN)
    GET  /runs/         with --runs DIR: the runs browser of serving/runs.py

Every bad request is a 4xx whose `detail` says what to fix (never a 500): an empty list, too many
texts, a text too long or empty, wrong JSON types, an unknown task, a body over the size limit.
A full queue is a 503 with Retry-After.
"""

from __future__ import annotations

import asyncio
import difflib
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import HTMLResponse, JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field

from minbert import __version__
from minbert.errors import MinbertError
from minbert.model.backends import TORCH_BACKENDS, load_backend
from minbert.model.layout import is_model_directory
from minbert.model.task_model import Model, load, unicode_problem
from minbert.serving.batcher import MicroBatcher
from minbert.serving.guards import Guards, Lifecycle
from minbert.serving.metrics import Measured, ServerMetrics
from minbert.serving.page import PAGE
from minbert.serving.runs import runs_router


@dataclass(frozen=True)
class Limits:
    max_texts: int = 256
    max_chars: int = 10_000
    max_body_bytes: int = 4_000_000
    max_batch: int = 64
    max_wait_ms: float = 5.0
    max_queue: int = 2048  # texts waiting for the model, over all requests; beyond it: 503
    header_timeout_s: float = 10.0  # to send a request head (also: idle keep-alive connections)
    body_timeout_s: float = 30.0  # to send the whole body


class PredictRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"texts": ["wake me up at seven"]}]})
    texts: list[str] | None = Field(None, description="sentences (single-sentence tasks)")
    pairs: list[tuple[str, str]] | None = Field(None, description="sentence pairs (pair tasks of a multitask model)")
    task: str | None = Field(None, description="multitask models: which task (default: the only one)")
    top_k: int | None = Field(
        None, ge=1, description="list only the k most probable labels' probabilities (default: every label)"
    )


class EmbedRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"texts": ["a sentence to embed"]}]})
    texts: list[str] = Field(..., description="sentences")
    normalize: bool = Field(True, description="L2-normalise the vectors")


class ServedModel:
    """A saved model (PyTorch or its ONNX export) or a plain checkpoint (a sentence encoder), behind one interface.

    Its kind: `sentence-encoder` (no heads: /embed only), `classifier` (one head on single sentences:
    {"texts": [...]} only), `multitask` (anything else: a task and texts or pairs)."""

    def __init__(self, model_dir: str | Path, backend: str = "torch", device: str = "cpu") -> None:
        self.model_dir, self.backend = str(model_dir), backend
        if not is_model_directory(model_dir) and backend not in TORCH_BACKENDS:
            raise MinbertError(
                f"{model_dir}: the ONNX backends serve exported minbert models; this is a plain checkpoint"
            )
        self.model = load_backend(model_dir, backend, device)
        self._torch_model: Model | None = self.model if isinstance(self.model, Model) else None

    @property
    def kind(self) -> str:
        tasks = self.model.tasks
        if not tasks:
            return "sentence-encoder"
        single = self.model.spec(tasks[0])
        return (
            "classifier"
            if len(tasks) == 1 and single.kind == "classification" and single.input == "single"
            else "multitask"
        )

    def info(self) -> dict[str, Any]:
        info: dict[str, Any] = {
            "model": Path(self.model_dir).name,  # never the absolute path: it tells clients about the host
            "kind": self.kind,
            "backend": self.backend,
            "minbert_version": __version__,
        }
        if self.kind == "classifier":
            info["labels"] = list(self.model.labels)
        elif self.kind == "multitask":
            info["tasks"] = {
                s.name: {"kind": s.kind, "input": s.input, "labels": s.labels} for s in self.model.config.heads
            }
        return info

    def check_task(self, request: PredictRequest) -> tuple[str, list[Any]]:
        """The task to run and its inputs, or an HTTP 4xx saying what is wrong with the request."""
        if self.kind == "sentence-encoder":
            raise HTTPException(400, "this model is a sentence encoder without a head: use POST /embed")
        if self.kind == "classifier":
            if request.task is not None or request.pairs is not None:
                raise HTTPException(422, 'this classifier takes {"texts": [...]} only (no task, no pairs)')
            task, pair = self.model.default_task(), False
        else:
            try:
                task = request.task or self.model.default_task()
                pair = self.model.spec(task).pair
            except MinbertError as e:
                raise HTTPException(422, str(e)) from None
        inputs = request.pairs if pair else request.texts
        if inputs is None:
            raise HTTPException(422, f"task {task!r} takes " + ('"pairs": [[a, b], ...]' if pair else '"texts": [...]'))
        return task, list(inputs)

    def predict(self, task: str, inputs: list[Any]) -> list[dict[str, Any]]:
        return [
            {"score": p} if isinstance(p, float) else {k: v for k, v in asdict(p).items() if v is not None}
            for p in self.model.predict(inputs, task=task)
        ]

    def embed(self, texts: list[str], normalize: bool = True) -> list[list[float]]:
        if self._torch_model is None:  # ONNX serves the heads; embeddings come from the PyTorch weights
            self._torch_model = load(self.model_dir)
        return self._torch_model.encode(texts, normalize=normalize).tolist()


def top_probabilities(prediction: dict[str, Any], k: int) -> dict[str, Any]:
    """A prediction with only its k most probable labels' probabilities (a regression score is left as it is)."""
    if "probabilities" not in prediction:
        return prediction
    top = sorted(prediction["probabilities"].items(), key=lambda item: -item[1])[:k]
    return {**prediction, "probabilities": dict(top)}


def unknown_field_hint(request: Request, error: Any) -> str:
    """For a field the endpoint does not take: the fields it does, and the likely one meant."""
    if error.get("type") != "extra_forbidden":
        return ""
    model = PredictRequest if request.url.path.endswith("/predict") else EmbedRequest
    fields = list(model.model_fields)
    given = str(error["loc"][-1]) if error.get("loc") else ""
    close = difflib.get_close_matches(given, fields, n=1)
    return f" ({'did you mean ' + repr(close[0]) + '? ' if close else ''}this endpoint takes {', '.join(fields)})"


def check_texts(texts: list, limits: Limits) -> None:
    if not texts:
        raise HTTPException(422, "the list is empty; send at least one text")
    if len(texts) > limits.max_texts:
        raise HTTPException(
            413, f"{len(texts)} texts in one request; the limit is {limits.max_texts}: split the request"
        )
    for i, item in enumerate(texts):
        for text in item if isinstance(item, tuple) else (item,):
            if not text.strip():
                raise HTTPException(422, f"text {i} is empty; every text needs some content")
            problem = unicode_problem(text)
            if problem:
                raise HTTPException(422, f"text {i} {problem}")
            if len(text) > limits.max_chars:
                raise HTTPException(413, f"text {i} has {len(text)} characters; the limit is {limits.max_chars}")


def create_app(
    model_dir: str | Path,
    backend: str = "torch",
    limits: Limits = Limits(),
    api_key: str | None = None,
    cors_origins: list[str] | None = None,
    runs_dir: str | Path | None = None,
    device: str = "cpu",
) -> FastAPI:
    """The app for one model; the model loads now, so a bad path fails before the server starts.

    `api_key`: required on every request but the probes. `cors_origins`: browsers on these origins
    may call the API (none by default). `runs_dir`: a folder of runs, browsed at /runs (`serving/runs.py`)."""
    served = ServedModel(model_dir, backend, device)
    lifecycle = Lifecycle()
    batchers: dict[tuple[str, str, bool], MicroBatcher] = {}
    metrics = ServerMetrics(lambda: sum(b.queued for b in batchers.values()))
    executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="minbert-model")

    def batcher(endpoint: str, task: str, normalize: bool = True) -> MicroBatcher:
        key = (endpoint, task, normalize)
        if key not in batchers:
            run = (
                (lambda items: served.predict(task, items))
                if endpoint == "predict"
                else (lambda items: served.embed(items, normalize))
            )
            batchers[key] = MicroBatcher(
                run, executor, limits.max_batch, limits.max_wait_ms, on_batch=metrics.batch_texts.observe
            )
        return batchers[key]

    async def submit(to: MicroBatcher, items: list[Any]) -> list[Any]:
        """Queue the items, or 503 + Retry-After when the queue (over all batchers) is full."""
        waiting = sum(b.queued for b in batchers.values())
        if waiting + len(items) > limits.max_queue:
            metrics.rejections.labels("queue_full").inc()
            detail = f"{waiting} texts are waiting for the model; the queue holds {limits.max_queue}: retry shortly"
            raise HTTPException(503, detail, {"Retry-After": "1"})
        return await to.submit(items)

    def warm_up() -> None:
        """One call through the model before /ready says yes, so the first client does not pay for it."""
        if served.kind == "sentence-encoder":
            served.embed(["warm-up"])
        else:
            task = served.model.default_task() if served.kind == "classifier" else served.model.tasks[0]
            spec = served.model.spec(task)
            served.predict(task, [("warm", "up")] if spec.pair else ["warm-up"])

    @asynccontextmanager
    async def lifespan(app: FastAPI):  # noqa: ANN202
        await asyncio.get_running_loop().run_in_executor(executor, warm_up)
        lifecycle.ready = True
        yield
        lifecycle.ready = False
        executor.shutdown(wait=False, cancel_futures=True)

    app = FastAPI(
        title="minbert",
        version=__version__,
        description=f"Predictions and embeddings from {Path(model_dir).name}",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
    )
    app.state.served, app.state.batchers, app.state.limits = served, batchers, limits
    app.state.lifecycle, app.state.api_key = lifecycle, api_key
    app.state.announce = f"serving {Path(served.model_dir).name} ({served.kind}, {served.backend} backend)"
    app.add_middleware(
        Guards,
        lifecycle=lifecycle,
        max_body_bytes=limits.max_body_bytes,
        body_timeout_s=limits.body_timeout_s,
        api_key=api_key,
    )
    app.add_middleware(Measured, metrics=metrics)  # outermost but CORS: it sees the guards' refusals too
    app.state.metrics = metrics
    if cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=cors_origins,
            allow_methods=["GET", "POST"],
            allow_headers=["content-type", "authorization", "x-api-key"],
        )

    if runs_dir is not None:
        app.include_router(runs_router(runs_dir), prefix="/runs")

    @app.exception_handler(RequestValidationError)
    async def readable_validation_error(request: Request, error: RequestValidationError) -> JSONResponse:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'] if p != 'body') or 'body'}: {e['msg']}"
            + unknown_field_hint(request, e)
            for e in error.errors()
        )
        return JSONResponse({"detail": f"bad request body: {problems}"}, status_code=422)

    @app.get("/", response_class=HTMLResponse)
    async def page() -> str:
        return PAGE

    endpoints = {
        "GET /": "a page to try the model",
        "GET /health": "liveness",
        "GET /ready": "readiness (model loaded and warm)",
        "GET /info": "labels, tasks, limits",
        "POST /predict": '{"texts": [...]} or {"pairs": [[a, b], ...], "task": NAME}',
        "POST /embed": '{"texts": [...]}',
        "GET /metrics": "Prometheus metrics",
        "GET /openapi.json": "the OpenAPI schema (the Swagger page is off: it needs a CDN)",
    }
    if runs_dir is not None:
        endpoints["GET /runs/"] = "the runs browser: metrics, reports, comparisons"

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/ready")
    async def ready() -> JSONResponse:
        if not lifecycle.ready:  # (once shutdown begins, the guards answer 503 before this)
            return JSONResponse({"status": "warming up"}, status_code=503)
        return JSONResponse({"status": "ready"})

    @app.get("/info")
    async def info() -> dict[str, Any]:
        return {**served.info(), "limits": asdict(limits), "endpoints": endpoints}

    @app.post("/predict")
    async def predict(request: PredictRequest) -> dict[str, Any]:
        task, inputs = served.check_task(request)
        check_texts(inputs, limits)
        predictions = await submit(batcher("predict", task), inputs)
        if request.top_k is not None:
            predictions = [top_probabilities(p, request.top_k) for p in predictions]
        rejected = sum(1 for p in predictions if "oos_threshold" in p and p["oos_score"] < p["oos_threshold"])
        if rejected:
            metrics.rejections.labels("out_of_scope").inc(rejected)
        return {"predictions": predictions}

    @app.get("/metrics")
    async def prometheus() -> Response:
        return Response(metrics.render(), media_type=metrics.content_type)

    @app.post("/embed")
    async def embed(request: EmbedRequest) -> dict[str, Any]:
        check_texts(request.texts, limits)
        vectors = await submit(batcher("embed", "", request.normalize), request.texts)
        return {"embeddings": vectors, "dimension": len(vectors[0])}

    return app


def serve(
    model_dir: str | Path,
    host: str = "127.0.0.1",
    port: int = 8000,
    backend: str = "torch",
    limits: Limits = Limits(),
    api_key: str | None = None,
    cors_origins: list[str] | None = None,
    runs_dir: str | Path | None = None,
    device: str = "cpu",
) -> None:
    from minbert.serving.server import bind, run

    sock = bind(host, port)  # before loading the model: a taken port fails at once
    app = create_app(model_dir, backend, limits, api_key, cors_origins, runs_dir, device)
    run(app, sock, host, header_timeout_s=limits.header_timeout_s)
