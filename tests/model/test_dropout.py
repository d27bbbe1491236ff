"""minbert's dropout draws its masks with a faster generator than `nn.Dropout`; it must regularise the same way:
drop p of the elements, keep the expected value, follow `torch.manual_seed`, and pass gradients only where kept."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from minbert.model.dropout import Dropout, keep_mask
from minbert.model.encoder import EncoderConfig, SelfAttention


@pytest.mark.parametrize("p", [0.1, 0.5, 0.9])
def test_the_mask_drops_p_of_the_elements_and_keeps_the_mean(p):
    torch.manual_seed(0)
    mask = keep_mask(torch.Size([1000, 1000]), p)
    dropped = (mask == 0).float().mean().item()
    assert abs(dropped - p) < 5 * (p * (1 - p) / 1e6) ** 0.5 + 1 / 65536  # five standard errors
    assert mask.unique().tolist() == [0.0, pytest.approx(1 / (1 - p))]
    assert mask.mean().item() == pytest.approx(1.0, abs=0.01)
    rows, cols = (mask == 0).float().mean(1), (mask == 0).float().mean(0)  # no structure along either axis
    assert rows.std().item() < 2 * (p * (1 - p) / 1000) ** 0.5 and cols.std().item() < 2 * (p * (1 - p) / 1000) ** 0.5


def test_masks_follow_torch_manual_seed_and_differ_between_calls():
    torch.manual_seed(1)
    first, second = keep_mask(torch.Size([64, 64]), 0.1), keep_mask(torch.Size([64, 64]), 0.1)
    torch.manual_seed(1)
    assert torch.equal(keep_mask(torch.Size([64, 64]), 0.1), first)
    assert not torch.equal(first, second)


def test_gradient_flows_through_kept_elements_only():
    torch.manual_seed(2)
    x = torch.randn(16, 32, requires_grad=True)
    y = Dropout(0.3).train()(x)
    y.sum().backward()
    kept = y.detach() != 0
    assert torch.allclose(y.detach()[kept], x.detach()[kept] / 0.7)
    assert torch.allclose(x.grad, kept.float() / 0.7)


def test_eval_mode_zero_one_and_bf16_behave_like_nn_dropout():
    x = torch.randn(8, 8)
    assert Dropout(0.5).eval()(x) is x
    assert Dropout(0.0).train()(x) is x
    assert torch.equal(Dropout(1.0).train()(x), torch.zeros_like(x))
    torch.manual_seed(4)
    half = Dropout(0.1).train()(x.bfloat16())
    assert half.dtype == torch.bfloat16
    kept = half != 0
    assert torch.equal(half[kept], (x.bfloat16().float() / 0.9).bfloat16()[kept])  # scaled in float32, rounded once
    assert isinstance(Dropout(0.1), nn.Dropout) and Dropout(0.1).state_dict() == {}


@pytest.mark.parametrize("additive", [False, True])
def test_spelled_out_attention_equals_sdpa(additive):
    """The path training takes when attention probabilities are dropped is SDPA's math, for a padding
    mask (BERT) and an additive bias with padding at -inf (MPNet)."""
    torch.manual_seed(3)
    attention = SelfAttention(EncoderConfig(hidden_size=32, num_attention_heads=4)).eval()
    q, k, v = (torch.randn(2, 4, 5, 8) for _ in range(3))
    mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]], dtype=torch.bool)[:, None, None, :]
    if additive:
        mask = torch.randn(1, 4, 5, 5).masked_fill(~mask, float("-inf"))
    expected = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    assert torch.allclose(attention.spelled_out(q, k, v, mask), expected, atol=1e-6)
