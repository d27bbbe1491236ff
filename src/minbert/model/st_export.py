"""Export a minbert model's sentence encoder in the sentence-transformers layout.

    modules.json            Transformer (the encoder, a plain transformers checkpoint at the root)
    1_Pooling/config.json   cls or mean pooling, as the model pools
    2_Dense/                the shared projection, when the model has one (identity activation)
    3_Normalize             when the model's sentence vectors are unit length

so `SentenceTransformer(DIR).encode(texts)` gives the vectors `minbert embed` gives, for plain
checkpoints and trained models alike (the heads stay behind: sentence-transformers has no place for
them). BERT's pooler is not a sentence-transformers pooling mode, so a model pooling with it is refused.
"""

from __future__ import annotations

from pathlib import Path

from minbert.errors import MinbertError
from minbert.model.checkpoint import resolve_checkpoint, write_safetensors
from minbert.model.hf_export import copy_tokenizer, new_directory, write_json
from minbert.model.layout import is_model_directory, model_directory
from minbert.model.task_model import load


def export_sentence_transformers(source: str | Path, out: str | Path) -> Path:
    model = load(source)
    if model.config.pooling not in ("cls", "mean"):
        raise MinbertError(
            f"--to sentence-transformers: pooling {model.config.pooling!r} is not one of sentence-transformers' "
            "modes; train with --model.pooling cls or mean to export"
        )
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
            "pooling_mode_cls_token": model.config.pooling == "cls",
            "pooling_mode_mean_tokens": model.config.pooling == "mean",
            "pooling_mode_max_tokens": False,
            "pooling_mode_mean_sqrt_len_tokens": False,
            "pooling_mode_weightedmean_tokens": False,
            "pooling_mode_lasttoken": False,
            "include_prompt": True,
        },
    )
    if model.projection is not None:
        dense = out / "2_Dense"
        write_json(
            dense / "config.json",
            {
                "in_features": width,
                "out_features": model.projection.out_features,
                "bias": True,
                "activation_function": "torch.nn.modules.linear.Identity",
            },
        )
        state = {"linear.weight": model.projection.weight.detach(), "linear.bias": model.projection.bias.detach()}
        write_safetensors({k: v.contiguous() for k, v in state.items()}, dense / "model.safetensors")
        modules.append({"idx": 2, "name": "2", "path": "2_Dense", "type": "sentence_transformers.models.Dense"})
    if model.config.normalize or model.heads:  # minbert's embeddings of a model with heads are unit length
        (out / "3_Normalize").mkdir(exist_ok=True)
        modules.append(
            {
                "idx": len(modules),
                "name": str(len(modules)),
                "path": "3_Normalize",
                "type": "sentence_transformers.models.Normalize",
            }
        )
    write_json(out / "modules.json", modules)
    write_json(out / "config_sentence_transformers.json", {"similarity_fn_name": "cosine", "prompts": {}})
    return out
