"""The inference backends of a saved model: PyTorch eager (`torch`), PyTorch with the encoder under
torch.compile (`torch-compiled`), and the ONNX export run by ONNX Runtime (`onnx`, `onnx-int8`).

    minbert export runs/massive_intent --int8      # writes model/onnx/model.onnx (+ model.int8.onnx)
    minbert predict runs/massive_intent --backend onnx-int8 "wake me up at seven"

Dynamic int8 quantisation stores the weights of every linear layer as int8 (one scale per
output channel) and quantises activations on the fly; on AVX-512 VNNI CPUs the matrix products run in int8. The export
command reports the accuracy change on a labelled file.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from torch import nn

from minbert.data.batching import sorted_batches
from minbert.errors import MinbertError
from minbert.model.task_model import (
    Prediction,
    SequenceClassifier,
    check_texts,
    load,
    model_directory,
    predictions_from_logits,
)
from minbert.model.tokenizer import Batch, Tokenizer
from minbert.runtime import compile_encoder

log = logging.getLogger(__name__)

ONNX_DIR = "onnx"
FILES = {"onnx": "model.onnx", "onnx-int8": "model.int8.onnx"}
TORCH_BACKENDS = ("torch", "torch-compiled")
INPUTS = ("input_ids", "attention_mask", "token_type_ids")


def _require(module: str) -> None:
    try:
        __import__(module)
    except ImportError as e:
        raise MinbertError(f"the ONNX backend needs {module}: pip install 'minbert[onnx]' (onnx, onnxruntime, onnxscript)") from e


class _LogitsGraph(nn.Module):
    """The classifier as a function of the three token tensors, for export."""

    def __init__(self, model: SequenceClassifier) -> None:
        super().__init__()
        self.model = model

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, token_type_ids: torch.Tensor) -> torch.Tensor:
        return self.model(Batch(input_ids, attention_mask, token_type_ids))


def export_onnx(model_dir: str | Path, int8: bool = False) -> dict[str, Path]:
    """Export a saved classifier to `<model>/onnx/model.onnx` (and `model.int8.onnx`); returns the files."""
    _require("onnxscript")
    _require("onnxruntime")
    directory = model_directory(model_dir)
    model = SequenceClassifier.load(directory).eval()
    out = directory / ONNX_DIR
    out.mkdir(exist_ok=True)
    example = model.tokenizer(["an example sentence", "and a second, longer example sentence"])
    batch, sequence = torch.export.Dim("batch"), torch.export.Dim("sequence", max=model.tokenizer.max_length)
    exporter_log = logging.getLogger("torch.onnx")
    level = exporter_log.level
    exporter_log.setLevel(logging.ERROR)  # it lists torchvision operators it skips: not ours
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(
            _LogitsGraph(model), (example.input_ids, example.attention_mask, example.token_type_ids),
            input_names=list(INPUTS), output_names=["logits"], dynamo=True, verbose=False,
            dynamic_shapes={name: {0: batch, 1: sequence} for name in INPUTS},
        )
    exporter_log.setLevel(level)
    files = {"onnx": out / FILES["onnx"]}
    program.save(str(files["onnx"]), external_data=False)
    if int8:
        from onnxruntime.quantization import QuantType, quantize_dynamic

        files["onnx-int8"] = out / FILES["onnx-int8"]
        logging.getLogger("root").setLevel(logging.ERROR)  # onnxruntime's pre-processing advice, not for transformers
        # Per-channel weight scales: on a MASSIVE classifier per-tensor int8 lost 0.77 accuracy points, per-channel 0.03.
        quantize_dynamic(str(files["onnx"]), str(files["onnx-int8"]), weight_type=QuantType.QInt8, per_channel=True)
    return files


class OnnxClassifier:
    """A saved classifier run by ONNX Runtime: same tokenizer, labels and `predict` as the PyTorch model."""

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
        config = SequenceClassifier.read_config(directory)
        self.labels = config.labels
        self.tokenizer = Tokenizer.from_pretrained(directory / "encoder", max_length=config.max_length)
        options = onnxruntime.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        self.session = onnxruntime.InferenceSession(str(file), options, providers=["CPUExecutionProvider"])

    def logits(self, texts: Sequence[str], batch_size: int = 128, bf16: bool = False) -> torch.Tensor:
        """Logits in input order (bf16 is a PyTorch option and does not apply here)."""
        ids = self.tokenizer.ids(list(texts))
        out = np.empty((len(texts), len(self.labels)), dtype=np.float32)
        for index in sorted_batches([len(i) for i in ids], batch_size):
            batch = self.tokenizer.pad([ids[i] for i in index])
            out[index] = self.session.run(None, {name: t.numpy() for name, t in batch.as_kwargs().items()})[0]
        return torch.from_numpy(out)

    def predict(self, texts: Sequence[str], batch_size: int = 128) -> list[Prediction]:
        texts = check_texts(texts)
        return predictions_from_logits(self.logits(texts, batch_size), self.labels)


def load_classifier(model_dir: str | Path, backend: str = "torch") -> Any:
    """The PyTorch model (classifier or multitask; `torch-compiled`: its encoder under torch.compile),
    or a classifier's ONNX export (`onnx`, `onnx-int8`)."""
    if backend in TORCH_BACKENDS:
        model_directory(model_dir)  # a saved minbert model, or an error saying what the path is
        return load_torch(model_dir, backend)
    return OnnxClassifier(model_dir, backend)


def load_torch(model_dir: str | Path | None, backend: str = "torch") -> Any:
    """`load` (any saved model or checkpoint), with the encoder compiled for `torch-compiled`."""
    model = load(model_dir)
    return compile_encoder(model) if backend == "torch-compiled" else model
