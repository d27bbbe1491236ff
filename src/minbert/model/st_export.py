"""Export a minbert model's sentence encoder in the sentence-transformers layout.

    modules.json            Transformer (the encoder, a plain transformers checkpoint at the root)
    1_Pooling/config.json   cls or mean pooling, as the model pools (cls for BERT's pooler)
    2_Dense/                BERT's pooler, when the model pools with it: its dense layer with tanh
    3_Dense/                the shared projection, when the model has one (identity activation)
    4_Normalize             when the model's sentence vectors are unit length

so `SentenceTransformer(DIR).encode(texts)` gives the vectors `minbert embed` gives, for plain
checkpoints and trained models alike (the heads stay behind: sentence-transformers has no place for
them). The pooler is not a sentence-transformers pooling mode, but it is [CLS] -> dense -> tanh, which
their Pooling and Dense modules express exactly.
"""

from __future__ import annotations

from pathlib import Path

from torch import nn

from minbert.model.checkpoint import resolve_checkpoint, write_safetensors
from minbert.model.hf_export import copy_tokenizer, new_directory, write_json
from minbert.model.layout import is_model_directory, model_directory
from minbert.model.task_model import load


def export_sentence_transformers(source: str | Path, out: str | Path) -> Path:
    model = load(source)
    pooler = model.encoder.pooler if model.config.pooling == "pooler" else None  # a Model checks it exists
    out = new_directory(out)
    model.encoder.save_pretrained(out)
    tokenizer_dir = model_directory(source) / "encoder" if is_model_directory(source) else resolve_checkpoint(source)
    length = model.config.max_length
    copy_tokenizer(Path(tokenizer_dir), out, length)
    write_json(out / "sentence_bert_config.json", {"max_seq_length": length, "do_lower_case": False})
    width = model.encoder.config.hidden_size
    modules = [
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
    ]
    write_json(
        out / "1_Pooling" / "config.json",
        {
            "word_embedding_dimension": width,
            "pooling_mode_cls_token": model.config.pooling in ("cls", "pooler"),
            "pooling_mode_mean_tokens": model.config.pooling == "mean",
            "pooling_mode_max_tokens": False,
            "pooling_mode_mean_sqrt_len_tokens": False,
            "pooling_mode_weightedmean_tokens": False,
            "pooling_mode_lasttoken": False,
            "include_prompt": True,
        },
    )
    if pooler is not None:
        modules.append(dense_module(out / "2_Dense", len(modules), pooler.dense, "torch.nn.modules.activation.Tanh"))
    if model.projection is not None:
        modules.append(
            dense_module(out / "3_Dense", len(modules), model.projection, "torch.nn.modules.linear.Identity")
        )
    if model.config.normalize or model.heads:  # minbert's embeddings of a model with heads are unit length
        (out / "4_Normalize").mkdir(exist_ok=True)
        modules.append(
            {
                "idx": len(modules),
                "name": str(len(modules)),
                "path": "4_Normalize",
                "type": "sentence_transformers.models.Normalize",
            }
        )
    write_json(out / "modules.json", modules)
    write_json(out / "config_sentence_transformers.json", {"similarity_fn_name": "cosine", "prompts": {}})
    return out


def dense_module(directory: Path, index: int, layer: nn.Linear, activation: str) -> dict[str, object]:
    """A sentence-transformers Dense module (its config and weights) holding `layer`; its modules.json entry."""
    write_json(
        directory / "config.json",
        {
            "in_features": layer.in_features,
            "out_features": layer.out_features,
            "bias": True,
            "activation_function": activation,
        },
    )
    state = {"linear.weight": layer.weight.detach(), "linear.bias": layer.bias.detach()}
    write_safetensors({k: v.contiguous() for k, v in state.items()}, directory / "model.safetensors")
    return {"idx": index, "name": str(index), "path": directory.name, "type": "sentence_transformers.models.Dense"}
