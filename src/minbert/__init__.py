"""minbert: pretrained BERT encoders -> sentence-level models, fast on a CPU.

import minbert
model = minbert.Model.from_pretrained("all-MiniLM-L6-v2")        # a directory, a known name or a Hub id
result = minbert.fit(model, train=(texts, labels), dev=dev_df, epochs=3, lr=1e-4)
model.predict(["wake me up at seven"])[0].label
model.save("intent-model"); minbert.load("intent-model")
# pairs: fit(..., head={"kind": "regression", "input": "cross"}); multitask: train={"sst": ..., "sts": ...}

config = minbert.load_config("configs/massive_intent.yaml", ["--train.epochs", "1"])
run = minbert.train(config)                     # the file-based run: read files, fit, write the run directory
minbert.evaluate(run.output_dir, "test.jsonl", "massive")
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from minbert.api import fit
    from minbert.config import (
        ContrastiveConfig,
        DataConfig,
        DistillConfig,
        HeadConfig,
        ModelConfig,
        MultitaskConfig,
        OosConfig,
        RunConfig,
        TaskConfig,
        TrainConfig,
        load_config,
    )
    from minbert.errors import MinbertError
    from minbert.model.encoder import Encoder, EncoderConfig, EncoderOutput
    from minbert.model.heads import HeadSpec
    from minbert.model.task_model import Model, Prediction, load
    from minbert.model.tokenizer import Tokenizer
    from minbert.run import RunResult, train
    from minbert.scoring import evaluate

# Where each public name lives: imported on first use, so `import minbert` (and `minbert --help`) stays light
# and torch loads only when a model does.
_LAZY = {
    **dict.fromkeys(("fit",), "minbert.api"),
    **dict.fromkeys(
        (
            "ContrastiveConfig",
            "DataConfig",
            "DistillConfig",
            "HeadConfig",
            "ModelConfig",
            "MultitaskConfig",
            "OosConfig",
            "RunConfig",
            "TaskConfig",
            "TrainConfig",
            "load_config",
        ),
        "minbert.config",
    ),
    "MinbertError": "minbert.errors",
    **dict.fromkeys(("Encoder", "EncoderConfig", "EncoderOutput"), "minbert.model.encoder"),
    "HeadSpec": "minbert.model.heads",
    **dict.fromkeys(("Model", "Prediction", "load"), "minbert.model.task_model"),
    "Tokenizer": "minbert.model.tokenizer",
    **dict.fromkeys(("RunResult", "train"), "minbert.run"),
    "evaluate": "minbert.scoring",
}


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'minbert' has no attribute {name!r}")
    value = getattr(importlib.import_module(_LAZY[name]), name)
    globals()[name] = value
    return value


__version__ = "0.3.0"

__all__ = [
    "ContrastiveConfig",
    "DataConfig",
    "DistillConfig",
    "Encoder",
    "EncoderConfig",
    "EncoderOutput",
    "HeadConfig",
    "HeadSpec",
    "MinbertError",
    "Model",
    "ModelConfig",
    "MultitaskConfig",
    "OosConfig",
    "Prediction",
    "RunConfig",
    "RunResult",
    "TaskConfig",
    "Tokenizer",
    "TrainConfig",
    "__version__",
    "evaluate",
    "fit",
    "load",
    "load_config",
    "train",
]
