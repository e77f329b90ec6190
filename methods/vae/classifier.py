"""The final softmax classifier stage shared by CADA-VAE, ACMR and its ablations.

A Linear(latent, C) + LogSoftmax classifier per seed is trained with NLL and Adam on latent
codes and scored on the test latents after every epoch; one seed is a batch of one. There are
tens of thousands of tiny steps, so the per-step Python and dispatch overhead is what matters:
the forward and backward pass of the linear layer and the Adam update are written out by hand
on one (seeds, latent + 1, C) parameter tensor (weights and bias together, inputs get a column
of ones), updated by the fused kernel behind ``torch.optim.Adam(fused=True)`` (or its
single-tensor operation sequence where that kernel is missing). On CUDA with graphs asked for,
an epoch's steps are replayed as one CUDA graph (:mod:`gzslbench.core.cuda_graphs`).
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from gzslbench.core.cuda_graphs import GraphedIteration, cuda_graphs_enabled
from gzslbench.methods.base import RunContext, Scores, TrainingDiverged, one_cpu_thread
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


def initial_params(latent: int, n_classes: int, device: torch.device, generator: torch.Generator) -> torch.Tensor:
    """(latent + 1, K): xavier_uniform (gain 0.5) weights drawn from ``generator``, transposed, and a zero bias row."""
    weight = torch.empty(n_classes, latent, device=device)
    nn.init.xavier_uniform_(weight, gain=INIT_GAIN, generator=generator)
    params = torch.zeros(latent + 1, n_classes, device=device)
    params[:latent] = weight.T
    return params


def with_ones(z: torch.Tensor) -> torch.Tensor:
    """``z`` with a column of ones appended (last axis), so one matrix product applies weights and bias."""
    return torch.cat((z, z.new_ones(*z.shape[:-1], 1)), dim=-1)


class SoftmaxClassifier:
    """One Linear + LogSoftmax classifier per seed, trained with mean NLL and Adam; forward, backward, update by hand.

    ``params`` is (K, latent + 1, C) for K seeds (K = 1 for a single run): per seed, rows
    ``:latent`` are the transposed weight, the last row the bias. Each seed's matrix is
    initialised from its own generator as in the reference (xavier_uniform with gain 0.5, zero
    bias); the batched products (``bmm``) and the elementwise Adam update keep the seeds
    independent, so seed ``k`` trains as it would alone.
    """

    def __init__(
        self,
        latent: int,
        n_classes: int,
        settings: ClassifierSettings,
        device: torch.device,
        generators: Sequence[torch.Generator],
    ) -> None:
        self.params = torch.stack([initial_params(latent, n_classes, device, g) for g in generators])
        self.settings = settings
        self.exp_avg = torch.zeros_like(self.params)
        self.exp_avg_sq = torch.zeros_like(self.params)
        self._denom = torch.empty_like(self.params)
        self._grad = torch.empty_like(self.params)
        self.steps = 0
        self._buffers: _EpochBuffers | None = None
        self.fused = hasattr(torch, "_fused_adam_") and device.type in ("cpu", "cuda")

    @property
    def weight(self) -> torch.Tensor:
        """(K, C, latent) weights, each as ``nn.Linear`` stores it."""
        return self.params[:, :-1].transpose(1, 2)

    @property
    def bias(self) -> torch.Tensor:
        """(K, C) biases."""
        return self.params[:, -1]

    def log_probs(self, z: torch.Tensor) -> torch.Tensor:
        """(K, n, C) log-probabilities of latent codes ``z`` (K, n, latent)."""
        return torch.log_softmax(torch.baddbmm(self.params[:, -1:], z, self.params[:, :-1]), dim=2)

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
        """One epoch of mini-batch steps per seed over ``z1[k][order[k]]``.

        ``z1`` is (K, n, latent + 1), the latents with a ones column; ``y`` (n,) the labels every
        seed shares; ``order`` (K, n). The gradient of the mean NLL w.r.t. the logits is
        ``(softmax - onehot) / b``; the ``1 / b`` is folded into a pre-scaled copy of
        the inputs. Returns each seed's mean NLL over the epoch's training samples, shape (K,),
        without a sync; a sample's NLL is capped at about 103 where its float32 softmax probability
        underflows.
        """
        b = self.settings.batch_size
        seeds, n = order.shape
        steps = n // b if self.settings.drop_last else math.ceil(n / b)
        if steps == 0:
            return z1.new_zeros(seeds)
        used = min(n, steps * b)
        device = z1.device
        order = order[:, :used]
        # One row gather over the seeds' latents laid end to end (a 3-d gather is several times slower).
        rows = (order + torch.arange(seeds, device=device).unsqueeze(1) * n).reshape(-1)
        xp = z1.reshape(seeds * n, -1).index_select(0, rows).view(seeds, used, -1)
        yp = y[order].unsqueeze(2)
        buffers = self._epoch_buffers(seeds, used, device)
        first = self.steps
        step_values = torch.arange(first + 1, first + steps + 1, dtype=torch.float32, device=device)
        with one_cpu_thread(device):
            buffers.steps((seeds, used), xp, xp * buffers.scale, yp, step_values)
        self.steps = first + steps  # a replayed graph runs the steps without their Python side
        nll = -torch.log(buffers.picked.clamp_min_(torch.finfo(buffers.picked.dtype).tiny))
        return (nll * buffers.scale).sum(dim=(1, 2)) / steps

    def _epoch_buffers(self, seeds: int, used: int, device: torch.device) -> _EpochBuffers:
        """The tensors an epoch of ``used`` samples per seed steps through, kept from one epoch to the next."""
        if self._buffers is None or self._buffers.picked.shape[:2] != (seeds, used):
            b = self.settings.batch_size
            scale = torch.full((used, 1), 1.0 / b, device=device)
            if used % b:
                scale[used - used % b :] = 1.0 / (used % b)
            neg_ones = torch.full((seeds, b, 1), -1.0, device=device)
            capture = self.fused and cuda_graphs_enabled(device)  # the fused update reads its step count on the device
            self._buffers = _EpochBuffers(
                scale=scale,
                neg_ones=neg_ones,
                partial_neg_ones=neg_ones[:, : used % b],
                picked=torch.empty(seeds, used, 1, device=device),
                steps=GraphedIteration(self._steps, capture=capture),
            )
        return self._buffers

    def _steps(self, xp: torch.Tensor, xs: torch.Tensor, yp: torch.Tensor, step_values: torch.Tensor) -> None:
        """An epoch's mini-batch steps: inputs ``xp``, pre-scaled inputs ``xs``, labels ``yp``, 1-based step counts.

        Each batch's probability of its true class goes to ``picked``; reads nothing else that
        changes between epochs, so an epoch can be replayed as a CUDA graph.
        """
        b = self.settings.batch_size
        buffers = self._buffers
        assert buffers is not None
        batches = zip(
            xp.split(b, 1),
            xs.split(b, 1),
            yp.split(b, 1),
            buffers.picked.split(b, 1),
            step_values.unbind(),
            strict=True,
        )
        for x_b, xs_b, y_b, picked_b, step in batches:
            p = torch.softmax(torch.bmm(x_b, self.params), dim=2)
            torch.gather(p, 2, y_b, out=picked_b)
            p.scatter_add_(2, y_b, buffers.neg_ones if y_b.shape[1] == b else buffers.partial_neg_ones)
            torch.bmm(xs_b.transpose(1, 2), p, out=self._grad)
            self.adam_step(self._grad, step)


@dataclass
class _EpochBuffers:
    """What every epoch of one classifier reuses: the batch-mean weights, -1 labels, the picked probabilities."""

    scale: torch.Tensor  # (used, 1): 1 / batch size of each sample's batch
    neg_ones: torch.Tensor  # (K, batch, 1)
    partial_neg_ones: torch.Tensor  # (K, used % batch, 1): those of the last, partial batch
    picked: torch.Tensor  # (K, used, 1): each sample's probability of its class at its step
    steps: GraphedIteration  # :meth:`SoftmaxClassifier._steps`, eager or replayed


def train_final_classifier(
    train_z: torch.Tensor,
    train_y: torch.Tensor,
    test_seen_z: torch.Tensor,
    test_unseen_z: torch.Tensor,
    n_classes: int,
    settings: ClassifierSettings,
    ctxs: Sequence[RunContext],
    generators: Sequence[torch.Generator],
) -> Iterator[list[Scores | TrainingDiverged]]:
    """Train one final classifier per seed and yield each seed's test log-probabilities after every epoch (1-based).

    The latents carry a leading seed axis: ``train_z`` (K, n, latent), ``test_*_z`` (K, m, latent);
    ``train_y`` (n,) is shared. Each epoch is, per seed, a fresh random permutation of the training
    latents cut into batches (the reference's ``DataLoader(shuffle=True, drop_last=True)``); every
    seed draws its initialisation and epoch orders from its own generator. Yields, per epoch, each
    seed's :class:`Scores`, or the :class:`TrainingDiverged` that ended it (its later entries
    repeat it). Logs ``classifier`` rows with the epoch's mean NLL and adds the stage's own wall
    time (not the consumer's) to every context's ``timings["classifier_s"]``.
    """
    device = train_z.device
    start = _now(device)
    clf = SoftmaxClassifier(train_z.shape[2], n_classes, settings, device, generators)
    z1 = with_ones(train_z)
    elapsed = _now(device) - start
    failures: list[TrainingDiverged | None] = [None] * len(ctxs)
    for epoch in ctxs[0].progress_bar(range(1, settings.epochs + 1), "classifier epochs"):
        start = _now(device)
        orders = torch.stack([torch.randperm(z1.shape[1], generator=g, device=device) for g in generators])
        losses = clf.train_epoch(z1, train_y, orders)
        seen, unseen = clf.log_probs(test_seen_z), clf.log_probs(test_unseen_z)
        elapsed += _now(device) - start
        entries: list[Scores | TrainingDiverged] = []
        for k, (ctx, loss) in enumerate(zip(ctxs, losses.tolist(), strict=True)):
            ctx.timings["classifier_s"] = ctx.timings.get("classifier_s", 0.0) + elapsed
            if failures[k] is None:
                try:
                    ctx.log("classifier", epoch, loss=loss)
                except TrainingDiverged as exc:
                    failures[k] = exc
            entries.append(failures[k] or Scores(epoch=epoch, seen=seen[k], unseen=unseen[k]))
        elapsed = 0.0
        yield entries


def _now(device: torch.device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter()
