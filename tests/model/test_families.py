"""Every encoder family loads into minbert's one encoder with the reference's numbers, saves back in a
form `transformers.AutoModel` loads, and trains, compiles and exports like BERT does."""

from __future__ import annotations

import warnings

import pytest
import torch

import minbert
from minbert import MinbertError
from minbert.model.encoder import Encoder
from minbert.model.heads import HeadSpec
from minbert.model.task_model import Model

FAMILIES = ["bert", "roberta", "xlm-roberta", "mpnet", "distilbert"]
TINY = {"hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4, "intermediate_size": 128}


def reference_model(family: str):
    """A small randomly initialised model of the family, as transformers builds it."""
    import transformers as t

    vocab = 30527
    if family == "bert":
        return t.BertModel(t.BertConfig(vocab_size=vocab, **TINY))
    if family == "roberta":
        return t.RobertaModel(t.RobertaConfig(vocab_size=vocab, max_position_embeddings=130, **TINY))
    if family == "xlm-roberta":
        return t.XLMRobertaModel(t.XLMRobertaConfig(vocab_size=vocab, max_position_embeddings=130, **TINY))
    if family == "mpnet":
        return t.MPNetModel(t.MPNetConfig(vocab_size=vocab, max_position_embeddings=130, **TINY))
    return t.DistilBertModel(t.DistilBertConfig(vocab_size=vocab, dim=64, n_layers=2, n_heads=4, hidden_dim=128))


@pytest.fixture(scope="module", params=FAMILIES)
def saved(request, tmp_path_factory):
    torch.manual_seed(0)
    reference = reference_model(request.param).eval()
    with torch.no_grad():  # transformers zero-initialises some biases; random ones make the check sharper
        for name, parameter in reference.named_parameters():
            if name.endswith("bias"):
                parameter.normal_(0, 0.02)
    directory = tmp_path_factory.mktemp(request.param)
    reference.save_pretrained(directory)
    return request.param, reference, directory


def padded_batch(pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Three sequences of lengths 9, 5 and 2 (special ids at the ends), right-padded."""
    generator = torch.Generator().manual_seed(1)
    lengths = [9, 5, 2]
    ids = torch.full((3, 9), pad_id)
    mask = torch.zeros(3, 9, dtype=torch.long)
    for row, length in enumerate(lengths):
        ids[row, :length] = torch.randint(5, 30000, (length,), generator=generator)
        mask[row, :length] = 1
    return ids, mask


def test_last_hidden_state_and_pooler_match_the_reference_with_padding(saved):
    family, reference, directory = saved
    ours = Encoder.from_pretrained(directory)
    assert ours.config.model_type == family
    ids, mask = padded_batch(reference.config.pad_token_id)
    with torch.no_grad():
        expected = reference(input_ids=ids, attention_mask=mask)
        got = ours(input_ids=ids, attention_mask=mask)
    real = mask.bool()
    difference = (got.last_hidden_state[real] - expected.last_hidden_state[real]).abs().max().item()
    print(f"\n{family}: max |last_hidden_state - transformers| at real tokens {difference:.2e}")
    assert difference < 1e-4
    if family == "distilbert":
        assert got.pooler_output is None
    else:
        assert (got.pooler_output - expected.pooler_output).abs().max().item() < 1e-4


def test_save_pretrained_loads_in_transformers_automodel(saved, tmp_path):
    from transformers import AutoModel

    family, reference, directory = saved
    ours = Encoder.from_pretrained(directory)
    ours.save_pretrained(tmp_path / "copy")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        again = AutoModel.from_pretrained(tmp_path / "copy").eval()
    assert type(again) is type(reference)
    ids, mask = padded_batch(reference.config.pad_token_id)
    with torch.no_grad():
        a = reference(input_ids=ids, attention_mask=mask).last_hidden_state
        b = again(input_ids=ids, attention_mask=mask).last_hidden_state
    assert (a - b)[mask.bool()].abs().max().item() < 1e-6


def test_train_mode_forward_and_backward_are_finite(saved):
    _, reference, directory = saved
    ours = Encoder.from_pretrained(directory).train()
    ids, mask = padded_batch(reference.config.pad_token_id)
    out = ours(input_ids=ids, attention_mask=mask).last_hidden_state
    out.pow(2).mean().backward()
    assert torch.isfinite(out).all()
    grads = [p.grad for p in ours.parameters() if p.requires_grad and p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)


def test_bf16_autocast_runs_for_every_family(saved):
    _, reference, directory = saved
    ours = Encoder.from_pretrained(directory)
    ids, mask = padded_batch(reference.config.pad_token_id)
    with torch.no_grad():
        full = ours(input_ids=ids, attention_mask=mask).last_hidden_state
        with torch.autocast("cpu", dtype=torch.bfloat16):
            half = ours(input_ids=ids, attention_mask=mask).last_hidden_state.float()
    real = mask.bool()
    assert torch.isfinite(half).all() and (half - full)[real].abs().max().item() < 0.1


def test_pooler_pooling_on_a_family_without_pooler_is_a_clear_error(tmp_path):
    from minbert.model.task_model import ModelDescription

    reference_model("distilbert").save_pretrained(tmp_path)
    with pytest.raises(MinbertError, match="a distilbert encoder has no pooler; use --model.pooling cls or mean"):
        Model(
            Encoder.from_pretrained(tmp_path), minbert.Tokenizer.from_pretrained(), ModelDescription(pooling="pooler")
        )


@pytest.mark.slow
def test_torch_compiled_and_onnx_paths_work_for_every_family(saved, tmp_path):
    """A classifier on each family (MiniLM's tokenizer: its ids fit every tiny vocabulary) through torch.compile and ONNX."""
    from minbert.model.backends import OnnxModel, export_onnx, load_backend
    from minbert.model.task_model import ModelDescription

    _, _, directory = saved
    texts = ["wake me up at seven", "play some jazz", "hi"]
    head = HeadSpec("main", labels=["a", "b", "c"], hidden_size=16)
    model = Model(
        Encoder.from_pretrained(directory),
        minbert.Tokenizer.from_pretrained(max_length=32),
        ModelDescription([head], "mean", max_length=32),
    )
    model.save(tmp_path / "model")
    eager = model.eval().raw_outputs("main", texts)
    compiled = load_backend(tmp_path / "model", "torch-compiled").raw_outputs("main", texts)
    assert (compiled - eager).abs().max().item() < 1e-4
    export_onnx(tmp_path / "model", int8=True)
    fp32 = OnnxModel(tmp_path / "model", "onnx").raw_outputs("main", texts)
    int8 = OnnxModel(tmp_path / "model", "onnx-int8").raw_outputs("main", texts)
    assert (fp32 - eager).abs().max().item() < 1e-4
    assert torch.isfinite(int8).all()
