"""The final softmax classifier stage shared by CADA-VAE, ACMR and its ablations.

A Linear(latent, K) + LogSoftmax classifier is trained with NLL and Adam on latent codes and
scored on the test latents after every epoch. There are tens of thousands of tiny steps, so
the per-step Python and dispatch overhead is what matters: the forward and backward pass of
the single linear layer and the Adam update are written out by hand on one (latent + 1, K)
parameter matrix (weights and bias together, inputs get a column of ones), updated by
the fused kernel behind ``torch.optim.Adam(fused=True)`` (or its single-tensor operation
sequence where that kernel is missing).
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from gzslbench.methods.base import RunContext, Scores
from gzslbench.methods.vae.parts import INIT_GAIN


@dataclass(frozen=True)
class ClassifierSettings:
    """Final-classifier hyper-parameters."""

    epochs: int
    lr: float
    beta1: float
    batch_size: int
    drop_last: bool
    beta2: float = 0.999
    eps: float = 1e-8

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> ClassifierSettings:
        return cls(
            epochs=int(config["cls_epochs"]),
            lr=float(config["cls_lr"]),
            beta1=float(config["cls_beta1"]),
            batch_size=int(config["cls_batch_size"]),
            drop_last=bool(config["cls_drop_last"]),
        )


def per_class_indices(labels: np.ndarray, classes: np.ndarray, count: int) -> np.ndarray:
    """Indices of ``count`` instances per class, class by class, as the reference samples them.

    For each class in ``classes`` order, its instances in data order are repeated until there
    are at least ``count`` of them and the first ``count`` are kept (no randomness).
    """
    if count <= 0:
        return np.zeros(0, dtype=np.int64)
    out = []
    for c in classes:
        members = np.flatnonzero(labels == c)
        if len(members) == 0:
            raise ValueError(f"class {c} has no instances to sample from")
        out.append(members[np.arange(count) % len(members)])
    return np.concatenate(out).astype(np.int64) if out else np.zeros(0, dtype=np.int64)


def with_ones(z: torch.Tensor) -> torch.Tensor:
    """``z`` with a column of ones appended, so one matrix product applies weights and bias."""
    return torch.cat((z, z.new_ones(z.shape[0], 1)), dim=1)


class SoftmaxClassifier:
    """Linear + LogSoftmax trained with mean NLL and Adam, forward, backward and update by hand.

    ``params`` is (latent + 1, K): rows ``:latent`` are the transposed weight, the last row the
    bias. Initialisation as in the reference: xavier_uniform (gain 0.5) weights, zero bias.
    """

    def __init__(
        self,
        latent: int,
        n_classes: int,
        settings: ClassifierSettings,
        device: torch.device,
        generator: torch.Generator,
    ) -> None:
        weight = torch.empty(n_classes, latent, device=device)
        nn.init.xavier_uniform_(weight, gain=INIT_GAIN, generator=generator)
        self.params = torch.zeros(latent + 1, n_classes, device=device)
        self.params[:latent] = weight.T
        self.settings = settings
        self.exp_avg = torch.zeros_like(self.params)
        self.exp_avg_sq = torch.zeros_like(self.params)
        self._denom = torch.empty_like(self.params)
        self._grad = torch.empty_like(self.params)
        self.steps = 0
        self.fused = hasattr(torch, "_fused_adam_") and device.type in ("cpu", "cuda")

    @property
    def weight(self) -> torch.Tensor:
        """(K, latent) weight, as ``nn.Linear`` stores it."""
        return self.params[:-1].T

    @property
    def bias(self) -> torch.Tensor:
        return self.params[-1]

    def log_probs(self, z: torch.Tensor) -> torch.Tensor:
        """(n, K) log-probabilities of latent codes ``z`` (n, latent)."""
        return torch.log_softmax(torch.addmm(self.bias, z, self.weight.T), dim=1)

    def adam_step(self, grad: torch.Tensor, step: torch.Tensor | None = None) -> None:
        """One Adam update of ``params`` with gradient ``grad``.

        Uses the fused kernel of ``torch.optim.Adam(fused=True)`` where available (one pass
        instead of seven small operations); ``step`` may pass the 1-based step count as a 0-d
        float tensor on the device to spare its creation. Otherwise runs the operation sequence
        of ``torch.optim.Adam``'s single-tensor path.
        """
        s = self.settings
        self.steps += 1
        if self.fused:
            if step is None:
                step = torch.tensor(float(self.steps), device=self.params.device)
            torch._fused_adam_(
                [self.params],
                [grad],
                [self.exp_avg],
                [self.exp_avg_sq],
                [],
                [step],
                amsgrad=False,
                lr=s.lr,
                beta1=s.beta1,
                beta2=s.beta2,
                weight_decay=0.0,
                eps=s.eps,
                maximize=False,
            )
            return
        self.exp_avg.lerp_(grad, 1 - s.beta1)
        self.exp_avg_sq.mul_(s.beta2).addcmul_(grad, grad, value=1 - s.beta2)
        step_size = s.lr / (1 - s.beta1**self.steps)
        bias_correction2_sqrt = math.sqrt(1 - s.beta2**self.steps)
        torch.sqrt(self.exp_avg_sq, out=self._denom)
        self._denom.div_(bias_correction2_sqrt).add_(s.eps)
        self.params.addcdiv_(self.exp_avg, self._denom, value=-step_size)

    def train_epoch(self, z1: torch.Tensor, y: torch.Tensor, order: torch.Tensor) -> torch.Tensor:
        """One epoch of mini-batch steps over ``z1[order]`` (``z1``: latents with a ones column).

        The gradient of the mean NLL w.r.t. the logits is ``(softmax - onehot) / b``; the ``1 / b``
        is folded into a pre-scaled copy of the inputs. Returns the mean NLL over the epoch's
        training samples as a 0-d tensor (no sync); a sample's NLL is capped at about 103 where
        its float32 softmax probability underflows.
        """
        b = self.settings.batch_size
        n = order.numel()
        steps = n // b if self.settings.drop_last else math.ceil(n / b)
        if steps == 0:
            return z1.new_zeros(())
        used = min(n, steps * b)
        device = z1.device
        order = order[:used]
        xp = z1.index_select(0, order)
        yp = y.index_select(0, order).unsqueeze(1)
        scale = torch.full((used, 1), 1.0 / b, device=device)
        if used % b:
            scale[used - used % b :] = 1.0 / (used % b)
        xs = xp * scale
        neg_ones = torch.full((b, 1), -1.0, device=device)
        partial_neg_ones = neg_ones[: used % b] if used % b else neg_ones
        picked = torch.empty(used, 1, device=device)
        step_values = torch.arange(self.steps + 1, self.steps + steps + 1, dtype=torch.float32, device=device)
        batches = zip(xp.split(b), xs.split(b), yp.split(b), picked.split(b), step_values.unbind(), strict=True)
        with _single_thread(device):
            for x_b, xs_b, y_b, picked_b, step in batches:
                p = torch.softmax(torch.mm(x_b, self.params), dim=1)
                torch.gather(p, 1, y_b, out=picked_b)
                p.scatter_add_(1, y_b, neg_ones if len(y_b) == b else partial_neg_ones)
                torch.mm(xs_b.T, p, out=self._grad)
                self.adam_step(self._grad, step)
        nll = -torch.log(picked.clamp_min_(torch.finfo(picked.dtype).tiny))
        return (nll * scale).sum() / steps


@contextmanager
def _single_thread(device: torch.device) -> Iterator[None]:
    """Run tiny CPU operations on one thread: thread hand-offs cost more than the work itself."""
    if device.type != "cpu":
        yield
        return
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def train_final_classifier(
    train_z: torch.Tensor,
    train_y: torch.Tensor,
    test_seen_z: torch.Tensor,
    test_unseen_z: torch.Tensor,
    n_classes: int,
    settings: ClassifierSettings,
    ctx: RunContext,
    generator: torch.Generator,
) -> Iterator[Scores]:
    """Train the final classifier and yield test log-probabilities after every epoch (1-based).

    Each epoch is a fresh random permutation of the training latents cut into batches (the
    reference's ``DataLoader(shuffle=True, drop_last=True)``). Logs ``classifier`` rows with the
    epoch's mean NLL and adds the stage's own wall time (not the consumer's) to
    ``ctx.timings["classifier_s"]``.
    """
    device = train_z.device
    start = _now(device)
    clf = SoftmaxClassifier(train_z.shape[1], n_classes, settings, device, generator)
    z1 = with_ones(train_z)
    elapsed = _now(device) - start
    for epoch in ctx.progress_bar(range(1, settings.epochs + 1), "classifier epochs"):
        start = _now(device)
        order = torch.randperm(z1.shape[0], generator=generator, device=device)
        loss = clf.train_epoch(z1, train_y, order)
        seen, unseen = clf.log_probs(test_seen_z), clf.log_probs(test_unseen_z)
        elapsed += _now(device) - start
        ctx.timings["classifier_s"] = ctx.timings.get("classifier_s", 0.0) + elapsed
        elapsed = 0.0
        ctx.log("classifier", epoch, loss=float(loss))
        yield Scores(epoch=epoch, seen=seen, unseen=unseen)


def _now(device: torch.device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter()
