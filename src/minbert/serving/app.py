"""The HTTP API of a saved model.

    GET  /health    liveness
    GET  /info      model, kind, labels / tasks, limits, minbert version
    POST /predict   {"texts": [...]} (or {"pairs": [[a, b], ...], "task": NAME} for pair tasks) -> predictions
    POST /embed     {"texts": [...]} -> sentence embeddings
    GET  /docs      OpenAPI documentation

Every bad request is a 4xx whose `detail` says what to fix (never a 500): an empty list, too many
texts, a text too long or empty, wrong JSON types, an unknown task, a body over the size limit.
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from minbert import __version__
from minbert.errors import MinbertError
from minbert.model.backends import TORCH_BACKENDS, load_backend
from minbert.model.layout import is_model_directory
from minbert.model.task_model import Model, load, unicode_problem
from minbert.serving.batcher import MicroBatcher

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Limits:
    max_texts: int = 256
    max_chars: int = 10_000
    max_body_bytes: int = 4_000_000
    max_batch: int = 64
    max_wait_ms: float = 5.0


class PredictRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"texts": ["wake me up at seven"]}]})
    texts: list[str] | None = Field(None, description="sentences (single-sentence tasks)")
    pairs: list[tuple[str, str]] | None = Field(None, description="sentence pairs (pair tasks of a multitask model)")
    task: str | None = Field(None, description="multitask models: which task (default: the only one)")


class EmbedRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"texts": ["a sentence to embed"]}]})
    texts: list[str] = Field(..., description="sentences")
    normalize: bool = Field(True, description="L2-normalise the vectors")


class ServedModel:
    """A saved model (PyTorch or its ONNX export) or a plain checkpoint (a sentence encoder), behind one interface.

    Its kind: `sentence-encoder` (no heads: /embed only), `classifier` (one head on single sentences:
    {"texts": [...]} only), `multitask` (anything else: a task and texts or pairs)."""

    def __init__(self, model_dir: str | Path, backend: str = "torch") -> None:
        self.model_dir, self.backend = str(model_dir), backend
        if not is_model_directory(model_dir) and backend not in TORCH_BACKENDS:
            raise MinbertError(
                f"{model_dir}: the ONNX backends serve exported minbert models; this is a plain checkpoint"
            )
        self.model = load_backend(model_dir, backend)
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
            "model": self.model_dir,
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
        return [{"score": p} if isinstance(p, float) else asdict(p) for p in self.model.predict(inputs, task=task)]

    def embed(self, texts: list[str], normalize: bool = True) -> list[list[float]]:
        if self._torch_model is None:  # ONNX serves the heads; embeddings come from the PyTorch weights
            self._torch_model = load(self.model_dir)
        return self._torch_model.encode(texts, normalize=normalize).tolist()


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


def create_app(model_dir: str | Path, backend: str = "torch", limits: Limits = Limits()) -> FastAPI:
    """The app for one model; the model loads now, so a bad path fails before the server starts."""
    served = ServedModel(model_dir, backend)
    executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="minbert-model")
    batchers: dict[tuple[str, str, bool], MicroBatcher] = {}

    def batcher(endpoint: str, task: str, normalize: bool = True) -> MicroBatcher:
        key = (endpoint, task, normalize)
        if key not in batchers:
            run = (
                (lambda items: served.predict(task, items))
                if endpoint == "predict"
                else (lambda items: served.embed(items, normalize))
            )
            batchers[key] = MicroBatcher(run, executor, limits.max_batch, limits.max_wait_ms)
        return batchers[key]

    @asynccontextmanager
    async def lifespan(app: FastAPI):  # noqa: ANN202
        yield
        executor.shutdown(wait=False, cancel_futures=True)

    app = FastAPI(
        title="minbert",
        version=__version__,
        description=f"Predictions and embeddings from {model_dir}",
        lifespan=lifespan,
    )
    app.state.served, app.state.batchers, app.state.limits = served, batchers, limits

    @app.middleware("http")
    async def limit_body(request: Request, call_next):  # noqa: ANN001, ANN202
        length = request.headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > limits.max_body_bytes:
            return JSONResponse(
                {"detail": f"request body of {length} bytes; the limit is {limits.max_body_bytes}"}, status_code=413
            )
        return await call_next(request)

    @app.exception_handler(RequestValidationError)
    async def readable_validation_error(request: Request, error: RequestValidationError) -> JSONResponse:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'] if p != 'body') or 'body'}: {e['msg']}" for e in error.errors()
        )
        return JSONResponse({"detail": f"bad request body: {problems}"}, status_code=422)

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/info")
    async def info() -> dict[str, Any]:
        return {**served.info(), "limits": asdict(limits)}

    @app.post("/predict")
    async def predict(request: PredictRequest) -> dict[str, Any]:
        task, inputs = served.check_task(request)
        check_texts(inputs, limits)
        return {"predictions": await batcher("predict", task).submit(inputs)}

    @app.post("/embed")
    async def embed(request: EmbedRequest) -> dict[str, Any]:
        check_texts(request.texts, limits)
        vectors = await batcher("embed", "", request.normalize).submit(request.texts)
        return {"embeddings": vectors, "dimension": len(vectors[0])}

    return app


def serve(
    model_dir: str | Path, host: str = "127.0.0.1", port: int = 8000, backend: str = "torch", limits: Limits = Limits()
) -> None:
    import uvicorn

    app = create_app(model_dir, backend, limits)
    log.info(
        "serving %s (%s, %s backend) on http://%s:%d (docs at /docs)",
        model_dir,
        app.state.served.kind,
        backend,
        host,
        port,
    )
    uvicorn.run(app, host=host, port=port, log_level="info")
