"""The inference backends of a saved model: PyTorch eager (`torch`), PyTorch with the encoder under
torch.compile (`torch-compiled`), and the ONNX export run by ONNX Runtime (`onnx`, `onnx-int8`).

    minbert export runs/massive_intent --int8      # writes model/onnx/model.onnx (+ model.int8.onnx)
    minbert predict runs/massive_intent --backend onnx-int8 "wake me up at seven"

The export holds the encoder, the shared projection and every head that reads one sequence (single
sentences or cross-encoded pairs), one output per head, and a second one (`TASK:in_scope`) for a head whose
out-of-scope method scores the sentence vector (mahalanobis, knn); bi-encoder heads stay PyTorch-only.
Attention is written as ONNX Runtime's fused MultiHeadAttention kernel (`model/onnx_attention.py`), so the
files are for ONNX Runtime. The int8 export (`model/quantize.py`) stores the weights of every linear layer as
int8 (one scale per output channel) and quantises activations at run time to 7 bits with one scale per row,
so a text gets the same answer in any batch, and the int8 products are exact on every x86 CPU, VNNI or not.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from minbert.errors import MinbertError
from minbert.model.heads import HeadSpec
from minbert.model.inference import run_in_length_order
from minbert.model.layout import description_content, model_directory, read_description, write_description
from minbert.model.onnx_attention import translations
from minbert.model.quantize import FORMAT, FORMAT_KEY, quantize_per_row
from minbert.model.task_model import HeadPredictions, Model, load, read_config
from minbert.model.tokenizer import Batch, Pair, Tokenizer
from minbert.runtime import compile_encoder, resolve_device

log = logging.getLogger(__name__)

ONNX_DIR = "onnx"
FILES = {"onnx": "model.onnx", "onnx-int8": "model.int8.onnx"}
TORCH_BACKENDS = ("torch", "torch-compiled")
INPUTS = ("input_ids", "attention_mask", "token_type_ids")
# ONNX Runtime fuses residual Add + LayerNormalization into SkipLayerNormalization, whose CPU kernel took 2.4x
# the time of the two ops it replaces (MiniLM, MASSIVE dev, batch 64, one thread): without it int8 runs 18 % and
# fp32 8 % faster, with the same MASSIVE dev / test accuracy.
SLOWER_FUSED = ["SkipLayerNormFusion"]


def _require(module: str) -> None:
    try:
        __import__(module)
    except ImportError as e:
        raise MinbertError(
            f"the ONNX backend needs {module}: pip install 'minbert[onnx]' (onnx, onnxruntime, onnxscript)"
        ) from e


def exportable_tasks(model: Model) -> list[str]:
    """The heads that read one token sequence: what an ONNX graph of (ids, mask, types) can hold."""
    return [name for name in model.tasks if model.spec(name).input != "bi"]


IN_SCOPE = "{}:in_scope"  # the output of a head's vector out-of-scope score


def graph_outputs(model: Model, tasks: list[str]) -> list[str]:
    """The export's output names: each head's raw output, then its in-scope score when the head computes one."""
    return [
        name
        for task in tasks
        for name in (task, *([IN_SCOPE.format(task)] if model.head(task).rejector is not None else []))
    ]


class _HeadsGraph(nn.Module):
    """The model as a function of the three token tensors: the outputs named by `graph_outputs`."""

    def __init__(self, model: Model, tasks: list[str]) -> None:
        super().__init__()
        self.model, self.tasks = model, tasks

    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, token_type_ids: torch.Tensor
    ) -> tuple[torch.Tensor, ...]:
        shared = self.model.sentence_embedding(Batch(input_ids, attention_mask, token_type_ids))
        outputs = []
        for task in self.tasks:
            head = self.model.head(task)
            outputs.append(head(shared))
            if head.rejector is not None:
                outputs.append(head.rejector(shared))
        return tuple(outputs)


def export_onnx(model_dir: str | Path, int8: bool = False) -> dict[str, Path]:
    """Export a saved model to `<model>/onnx/model.onnx` (and `model.int8.onnx`); returns the files."""
    _require("onnxscript")
    _require("onnxruntime")
    directory = model_directory(model_dir)
    model = Model.load(directory).eval()
    tasks = exportable_tasks(model)
    if not tasks:
        raise MinbertError(
            f"{directory}: no head reads one sequence (bi-encoder heads and sentence encoders stay PyTorch-only)"
        )
    skipped = [t for t in model.tasks if t not in tasks]
    if skipped:
        log.warning(
            "ONNX export: bi-encoder heads %s are left out (they read two sequences); use --backend torch for them",
            skipped,
        )
    out = directory / ONNX_DIR
    out.mkdir(exist_ok=True)
    first = "an example sentence"
    example_inputs: list[Any] = (
        [(first, "and a second one")]
        if model.spec(tasks[0]).input == "cross"
        else [first, "and a second, longer example"]
    )
    example = model.tokenizer(example_inputs)
    batch, sequence = torch.export.Dim("batch"), torch.export.Dim("sequence", max=model.tokenizer.max_length)
    exporter_log = logging.getLogger("torch.onnx")
    level = exporter_log.level
    exporter_log.setLevel(logging.ERROR)  # it lists torchvision operators it skips: not ours
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(
            _HeadsGraph(model, tasks),
            (example.input_ids, example.attention_mask, example.token_type_ids),
            input_names=list(INPUTS),
            output_names=graph_outputs(model, tasks),
            dynamo=True,
            verbose=False,
            dynamic_shapes={name: {0: batch, 1: sequence} for name in INPUTS},
            custom_translation_table=translations(),
        )
    exporter_log.setLevel(level)
    if program is None:
        raise MinbertError(f"{directory}: the ONNX exporter returned no program")
    files = {"onnx": out / FILES["onnx"]}
    program.save(str(files["onnx"]), external_data=False)
    if int8:
        files["onnx-int8"] = out / FILES["onnx-int8"]
        quantize_per_row(files["onnx"], files["onnx-int8"], exclude=score_only_nodes(str(files["onnx"])))
    # the manifest now covers the exported files, as it does every backend's
    write_description(directory, description_content(read_description(directory)))
    return files


def score_only_nodes(path: str) -> list[str]:
    """The nodes that compute only an in-scope score (a rejector's): they stay fp32 under int8, since an int8
    Mahalanobis whitening moved scores by 40 % of their scale (with per-tensor dynamic int8). Found by the graph, not by names: the ancestors of
    the `:in_scope` outputs that no other output needs."""
    import onnx

    graph = onnx.load(path, load_external_data=False).graph
    producer = {output: node for node in graph.node for output in node.output}

    def ancestors(outputs: list[str]) -> set[str]:
        seen: set[str] = set()
        todo = [producer[o] for o in outputs if o in producer]
        while todo:
            node = todo.pop()
            if node.name not in seen:
                seen.add(node.name)
                todo += [producer[i] for i in node.input if i in producer]
        return seen

    scores = [o.name for o in graph.output if o.name.endswith(":in_scope")]
    return sorted(ancestors(scores) - ancestors([o.name for o in graph.output if o.name not in scores]))


class OnnxModel(HeadPredictions):
    """A saved model's ONNX export run by ONNX Runtime: the same tokenizer, heads and `predict` as the PyTorch model."""

    def __init__(self, model_dir: str | Path, backend: str = "onnx", threads: int | None = None) -> None:
        _require("onnxruntime")
        import onnxruntime

        if backend not in FILES:
            raise MinbertError(f"unknown backend {backend!r}; use torch, {', '.join(FILES)}")
        directory = model_directory(model_dir)
        file = directory / ONNX_DIR / FILES[backend]
        if not file.is_file():
            flag = " --int8" if backend == "onnx-int8" else ""
            raise MinbertError(f"{file}: not exported yet; run `minbert export {model_dir}{flag}` first")
        self.config = read_config(directory)[0]
        self.tokenizer = Tokenizer.from_pretrained(directory / "encoder", max_length=self.config.max_length)
        self.specs = {spec.name: spec for spec in self.config.heads}
        options = onnxruntime.SessionOptions()
        # As many threads as torch uses (OMP_NUM_THREADS, set_threads), not ONNX Runtime's one per core:
        # its spinning threads on an oversubscribed machine slow every process on it.
        options.intra_op_num_threads = threads or torch.get_num_threads()
        try:
            self.session = onnxruntime.InferenceSession(
                str(file), options, providers=["CPUExecutionProvider"], disabled_optimizers=SLOWER_FUSED
            )
        except Exception as e:  # ONNX Runtime raises its own types (InvalidProtobuf, Fail, ...) for a bad file
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise MinbertError(
                f"{file}: not an ONNX model ONNX Runtime can load ({type(e).__name__}: {first[:200]}); export it "
                f"again with `minbert export {model_dir}`"
            ) from None
        if backend == "onnx-int8" and self.session.get_modelmeta().custom_metadata_map.get(FORMAT_KEY) != FORMAT:
            raise MinbertError(
                f"{file}: an int8 export of an older minbert, whose products overflow on CPUs without VNNI; export "
                f"it again with `minbert export {model_dir} --int8`"
            )
        self.outputs = [o.name for o in self.session.get_outputs()]

    @property
    def tasks(self) -> list[str]:
        return list(self.specs)

    def spec(self, task: str) -> HeadSpec:
        if task not in self.specs:
            raise MinbertError(f"no task {task!r} in this model; its tasks: {', '.join(self.specs)}")
        if task not in self.outputs:
            raise MinbertError(
                f"task {task!r} is a bi-encoder head, which the ONNX export leaves out; use --backend torch"
            )
        return self.specs[task]

    def default_task(self) -> str:
        if len(self.specs) != 1:
            raise MinbertError(f"this model has several tasks ({', '.join(self.specs)}); say which (task=..., --task)")
        return next(iter(self.specs))

    def raw_outputs(
        self, task: str, inputs: Sequence[str] | Sequence[Pair], batch_size: int = 128, bf16: bool = False
    ) -> torch.Tensor:
        """Raw head outputs in input order (bf16 is a PyTorch option and does not apply here)."""
        self.spec(task)
        if self._encoded is not None and IN_SCOPE.format(task) in self.outputs:
            return self.scored_outputs(task, inputs, batch_size)[0]  # one remembered run for outputs and scores
        return self._run([task], inputs, batch_size)

    def scored_outputs(
        self, task: str, inputs: Sequence[str] | Sequence[Pair], batch_size: int = 128, bf16: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Raw outputs and in-scope scores: a vector method's from its graph output, the others from the logits."""
        score = IN_SCOPE.format(task)
        if score not in self.outputs:
            return super().scored_outputs(task, inputs, batch_size, bf16)
        self.spec(task)
        both = self._run([task, score], inputs, batch_size)
        return both[:, :-1], both[:, -1]

    def _run(self, names: list[str], inputs: Sequence[str] | Sequence[Pair], batch_size: int) -> torch.Tensor:
        """The named outputs in input order, side by side as columns (one output: as it is); inside encoding_once
        each (names, inputs) is run once."""
        return self._once(inputs, (tuple(names), batch_size), lambda: self._session_run(names, inputs, batch_size))

    def _session_run(self, names: list[str], inputs: Sequence[str] | Sequence[Pair], batch_size: int) -> torch.Tensor:
        """One pass of ONNX Runtime over the inputs, in length-sorted batches."""

        def run(batch: Batch) -> torch.Tensor:
            found = self.session.run(names, {name: t.numpy() for name, t in batch.as_kwargs().items()})
            columns = [torch.from_numpy(np.asarray(out, dtype=np.float32)) for out in found]
            if len(columns) == 1:
                return columns[0]
            return torch.cat([c if c.dim() == 2 else c.unsqueeze(1) for c in columns], dim=1)

        return run_in_length_order(self.tokenizer, inputs, batch_size, run)


def load_backend(model_dir: str | Path | None, backend: str = "torch", device: str = "cpu") -> Model | OnnxModel:
    """A saved model (or, for the torch backends, any checkpoint as a sentence encoder) on one backend; the torch
    backends run on `device` ('auto' = a CUDA GPU when there is one), the ONNX ones on ONNX Runtime's CPU."""
    if backend in TORCH_BACKENDS:
        model = load(model_dir, device=resolve_device(device))
        return compile_encoder(model) if backend == "torch-compiled" else model
    if model_dir is None:
        raise MinbertError("the ONNX backends run exported minbert models; give the model's directory")
    return OnnxModel(model_dir, backend)
