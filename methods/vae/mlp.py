"""The two-layer perceptron of every encoder and decoder, with a backward shaped for small batches.

The VAE stage multiplies a batch of 50 rows by matrices of about 2000 x 2000. On a CPU, one such
product leaves the second core half idle, while a batch of independent products over column
blocks of the weight keeps every core busy with whole single-threaded products, about 1.3x
faster. Autograd would also emit each layer's weight gradient, bias gradient and ReLU mask as
separate graph nodes; one hand-written backward for the whole perceptron does the same
arithmetic with fewer, better-shaped products. The result equals ``relu(x @ w1 + b1) @ w2 + b2``
up to float rounding (tested against autograd).
"""

from __future__ import annotations

import torch
from torch.autograd.function import FunctionCtx, once_differentiable

BLOCKS = 4
MIN_BLOCKED_WEIGHTS = 1 << 20  # below about a million weights, the batched product is slower
MAX_BLOCKED_ROWS = 256


def uses_blocks(x: torch.Tensor, w: torch.Tensor) -> bool:
    """Whether :func:`small_batch_matmul` computes ``x @ w`` as a batched product over column blocks."""
    rows, (k, n) = x.shape[0], w.shape
    return x.device.type == "cpu" and rows <= MAX_BLOCKED_ROWS and k * n >= MIN_BLOCKED_WEIGHTS


def small_batch_matmul(x: torch.Tensor, w: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """``x @ w (+ bias)``; for a short ``x`` and a large ``w`` on a CPU, one batched product over column blocks.

    ``w`` may be any strided (k, n) view, e.g. a transposed weight. Columns beyond the last
    full block are a separate small product.
    """
    if not uses_blocks(x, w):
        return x @ w if bias is None else torch.addmm(bias, x, w)
    m, k = x.shape
    width = w.shape[1] // BLOCKS
    blocked = BLOCKS * width
    w_blocks = w[:, :blocked].unflatten(1, (BLOCKS, width)).transpose(0, 1)
    x_blocks = x.unsqueeze(0).expand(BLOCKS, m, k)
    if bias is None:
        out = torch.bmm(x_blocks, w_blocks)
    else:
        out = torch.baddbmm(bias[:blocked].view(BLOCKS, 1, width), x_blocks, w_blocks)
    out = out.transpose(0, 1).reshape(m, blocked)
    if blocked == w.shape[1]:
        return out
    rest = x @ w[:, blocked:] if bias is None else torch.addmm(bias[blocked:], x, w[:, blocked:])
    return torch.cat((out, rest), dim=1)


class _Perceptron(torch.autograd.Function):
    """``relu(x @ w1 + b1) @ w2 + b2`` with one backward for both layers."""

    @staticmethod
    def forward(
        ctx: FunctionCtx,
        x: torch.Tensor,
        w1: torch.Tensor,
        b1: torch.Tensor,
        w2: torch.Tensor,
        b2: torch.Tensor,
    ) -> torch.Tensor:
        hidden = small_batch_matmul(x, w1, b1).relu_()
        ctx.save_for_backward(x, w1, w2, hidden)
        return small_batch_matmul(hidden, w2, b2)

    @staticmethod
    @once_differentiable
    def backward(ctx: FunctionCtx, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        x, w1, w2, hidden = ctx.saved_tensors
        grad_hidden = small_batch_matmul(grad, w2.T).masked_fill_(hidden <= 0, 0.0)
        grad_x = small_batch_matmul(grad_hidden, w1.T) if ctx.needs_input_grad[0] else None
        return grad_x, x.T @ grad_hidden, grad_hidden.sum(0), hidden.T @ grad, grad.sum(0)


def perceptron(x: torch.Tensor, w1: torch.Tensor, b1: torch.Tensor, w2: torch.Tensor, b2: torch.Tensor) -> torch.Tensor:
    """``relu(x @ w1 + b1) @ w2 + b2`` for (in, out)-shaped weights, differentiable once."""
    return _Perceptron.apply(x, w1, b1, w2, b2)
