"""The hand-written perceptron backward and the blocked small-batch product, against autograd."""

from __future__ import annotations

import math

import pytest
import torch

from gzslbench.methods.vae.mlp import perceptron, small_batch_matmul, uses_blocks
from gzslbench.methods.vae.parts import Encoder, init_linear_

CPU = torch.device("cpu")


def _reference(x: torch.Tensor, w1: torch.Tensor, b1: torch.Tensor, w2: torch.Tensor, b2: torch.Tensor) -> torch.Tensor:
    return torch.relu(x @ w1 + b1) @ w2 + b2


@pytest.mark.parametrize(
    ("rows", "n", "blocked"),
    [(20, 200, False), (20, 1024, True), (20, 1030, True), (300, 1030, False)],  # 1030: 4 blocks and 2 columns
)
@pytest.mark.parametrize("bias", [True, False])
def test_small_batch_matmul_equals_matmul(rows: int, n: int, blocked: bool, bias: bool) -> None:
    gen = torch.Generator().manual_seed(0)
    x, w = (
        torch.randn(rows, 1100, generator=gen, dtype=torch.float64),
        torch.randn(1100, n, generator=gen, dtype=torch.float64),
    )
    assert uses_blocks(x, w) == blocked
    b = torch.randn(n, generator=gen, dtype=torch.float64) if bias else None
    expected = x @ w + (b if bias else 0)
    assert torch.allclose(small_batch_matmul(x, w, b), expected, atol=1e-10)
    # a transposed view, as the backward passes it
    assert torch.allclose(small_batch_matmul(x, w.T.contiguous().T, b), expected, atol=1e-10)


@pytest.mark.parametrize(
    ("rows", "inputs", "hidden", "out"),
    [(7, 40, 30, 9), (50, 1000, 1100, 1030), (300, 40, 520, 700)],  # the middle one takes every blocked product
)
@pytest.mark.parametrize("input_grad", [True, False])
def test_perceptron_matches_autograd(rows: int, inputs: int, hidden: int, out: int, input_grad: bool) -> None:
    gen = torch.Generator().manual_seed(1)

    def leaf(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=gen, dtype=torch.float64).requires_grad_()

    tensors = [leaf(rows, inputs), leaf(inputs, hidden), leaf(hidden), leaf(hidden, out), leaf(out)]
    tensors[0].requires_grad_(input_grad)
    upstream = torch.randn(rows, out, generator=gen, dtype=torch.float64)

    ours = perceptron(*tensors)
    grads = torch.autograd.grad(ours, [t for t in tensors if t.requires_grad], upstream)
    expected = _reference(*tensors)
    expected_grads = torch.autograd.grad(expected, [t for t in tensors if t.requires_grad], upstream)

    assert torch.allclose(ours, expected, atol=1e-10)
    assert len(grads) == len(expected_grads) == (5 if input_grad else 4)
    for got, want in zip(grads, expected_grads, strict=True):
        assert torch.allclose(got, want, atol=1e-9)


def test_perceptron_relu_mask_blocks_gradient_of_dead_units() -> None:
    x = torch.ones(1, 1)
    w1 = torch.tensor([[1.0, -1.0]], requires_grad=True)
    b1 = torch.zeros(2, requires_grad=True)
    w2 = torch.ones(2, 1, requires_grad=True)
    b2 = torch.zeros(1, requires_grad=True)
    perceptron(x, w1, b1, w2, b2).sum().backward()
    assert w1.grad.tolist() == [[1.0, 0.0]]  # the second unit is dead (pre-activation -1)
    assert w2.grad.tolist() == [[1.0], [0.0]]


def test_encoder_heads_are_initialised_as_two_separate_layers() -> None:
    encoder = Encoder(30, 20, 4, CPU)
    init_linear_(encoder, torch.Generator().manual_seed(3))
    # the same generator stream, drawn as the reference does: hidden, then mean head, then log-variance head
    gen = torch.Generator().manual_seed(3)
    expected = [
        torch.nn.init.xavier_uniform_(torch.empty(o, i), gain=0.5, generator=gen)
        for o, i in ((20, 30), (4, 20), (4, 20))
    ]
    assert torch.equal(encoder.hidden.weight, expected[0])
    assert torch.equal(encoder.heads.weight, torch.cat(expected[1:]))
    assert encoder.heads.weight[:4].abs().max() <= 0.5 * math.sqrt(6 / (20 + 4))
    mu, logvar = encoder(torch.ones(3, 30))
    assert mu.shape == logvar.shape == (3, 4)
