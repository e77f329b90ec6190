"""The two softmax classifiers of the GAN family: the pre-trained one of the classification loss and the final GZSL one.

Both are ``Linear + LogSoftmax`` (:class:`~gzslbench.methods.gan.parts.LinearSoftmax`) trained
with mean NLL and Adam, as the reference's ``classifier.py`` (pre-trained, seen classes) and
``classifier2.py`` (final, all classes) do. Their mini-batches come from :class:`BatchStream`,
the reference's ``next_batch``: one endless stream of random permutations of the training rows
cut into consecutive batches, an epoch being ``ceil(n / batch)`` batches.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import torch

from gzslbench.methods.base import RunContext, Scores, one_cpu_thread
from gzslbench.methods.gan.parts import LinearSoftmax, init_normal_


@dataclass(frozen=True)
class SoftmaxSettings:
    """Epochs, Adam settings and batch size of one softmax classifier."""

    epochs: int
    lr: float
    beta1: float
    batch_size: int

    @classmethod
    def pretrained(cls, config: Mapping[str, Any]) -> SoftmaxSettings:
        """The classification-loss classifier's settings (``pretrain_*`` keys)."""
        return cls(
            epochs=int(config["pretrain_epochs"]),
            lr=float(config["pretrain_lr"]),
            beta1=float(config["pretrain_beta1"]),
            batch_size=int(config["pretrain_batch_size"]),
        )

    @classmethod
    def final(cls, config: Mapping[str, Any]) -> SoftmaxSettings:
        """The final GZSL classifier's settings (``cls_*`` keys); ``cls_batch_size=0`` means ``syn_num``."""
        batch = int(config["cls_batch_size"]) or int(config["syn_num"])
        return cls(
            epochs=int(config["cls_epochs"]),
            lr=float(config["cls_lr"]),
            beta1=float(config["cls_beta1"]),
            batch_size=batch,
        )


class BatchStream:
    """Row indices of mini-batches drawn as the reference's ``next_batch`` draws them.

    The rows of ``n`` training instances are visited in a random permutation; a batch that runs
    past its end takes the rest of it and the beginning of a fresh permutation. So every batch
    has ``batch`` rows (at most ``n``), each row is visited once per pass, and a pass boundary
    may fall inside a batch.
    """

    def __init__(self, n: int, batch: int, generator: torch.Generator, device: torch.device) -> None:
        if n <= 0 or batch <= 0:
            raise ValueError(f"a batch stream needs rows and a batch size, got n={n}, batch={batch}")
        self.n, self.batch = n, min(batch, n)
        self.generator, self.device = generator, device
        self._pending = torch.empty(0, dtype=torch.long, device=device)

    def take(self, batches: int) -> torch.Tensor:
        """The next ``batches`` batches, as a (batches, batch) index tensor."""
        need = batches * self.batch
        parts, have = [self._pending], len(self._pending)
        while have < need:
            parts.append(torch.randperm(self.n, generator=self.generator, device=self.device))
            have += self.n
        rows = torch.cat(parts)
        self._pending = rows[need:]
        return rows[:need].view(batches, self.batch)


def new_classifier(in_dim: int, n_classes: int, device: torch.device, generator: torch.Generator) -> LinearSoftmax:
    """A :class:`LinearSoftmax` with the reference init (weights N(0, 0.02^2), zero bias)."""
    model = LinearSoftmax(in_dim, n_classes, device)
    init_normal_(model, generator)
    return model


def softmax_adam(model: LinearSoftmax, settings: SoftmaxSettings) -> torch.optim.Adam:
    """The classifiers' Adam (betas ``(beta1, 0.999)``), fused on CPU and CUDA."""
    fused = model.fc.weight.device.type in ("cpu", "cuda")
    return torch.optim.Adam(model.parameters(), lr=settings.lr, betas=(settings.beta1, 0.999), fused=fused)


def train_epochs(
    model: LinearSoftmax,
    x: torch.Tensor,
    y: torch.Tensor,
    settings: SoftmaxSettings,
    generator: torch.Generator,
    optimizer: torch.optim.Adam | None = None,
) -> Iterator[torch.Tensor]:
    """Train ``model`` on ``(x, y)``; yield after every epoch the mean NLL of its steps (a 0-d tensor, no sync).

    ``optimizer`` defaults to a fresh :func:`softmax_adam`; pass one to keep its state afterwards.
    """
    optimizer = optimizer or softmax_adam(model, settings)
    stream = BatchStream(len(x), settings.batch_size, generator, x.device)
    steps = math.ceil(len(x) / settings.batch_size)
    for _ in range(settings.epochs):
        total = x.new_zeros(())
        with one_cpu_thread(x.device):
            for rows in stream.take(steps):
                loss = torch.nn.functional.nll_loss(model(x[rows]), y[rows])
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                total += loss.detach()
        yield total / steps


def pretrain_classifier(
    x: torch.Tensor,
    y: torch.Tensor,
    n_classes: int,
    settings: SoftmaxSettings,
    ctx: RunContext,
    generator: torch.Generator,
) -> LinearSoftmax:
    """The classifier of the classification loss: trained on real seen features (``y`` in ``0..n_classes-1``), frozen.

    Logs a ``pretrain`` row with the mean NLL per epoch. The returned module has
    ``requires_grad=False`` on every parameter and is in eval mode: the generator's loss
    back-propagates through it to the generated features, never into it.
    """
    model, _ = pretrain_trainable_classifier(x, y, n_classes, settings, ctx, generator)
    model.zero_grad(set_to_none=True)
    model.requires_grad_(False)
    return model.eval()


def pretrain_trainable_classifier(
    x: torch.Tensor,
    y: torch.Tensor,
    n_classes: int,
    settings: SoftmaxSettings,
    ctx: RunContext,
    generator: torch.Generator,
) -> tuple[LinearSoftmax, torch.optim.Adam]:
    """:func:`pretrain_classifier` without the freezing: the model and its Adam, whose state training goes on from.

    LsrGAN keeps training its pre-trained classifier during GAN training, with the same optimizer.
    """
    model = new_classifier(x.shape[1], n_classes, x.device, generator)
    optimizer = softmax_adam(model, settings)
    for epoch, loss in enumerate(train_epochs(model, x, y, settings, generator, optimizer), start=1):
        ctx.log("pretrain", epoch, loss=float(loss))
    return model, optimizer


def train_final_classifier(
    train_x: torch.Tensor,
    train_y: torch.Tensor,
    test_seen_x: torch.Tensor,
    test_unseen_x: torch.Tensor,
    n_classes: int,
    settings: SoftmaxSettings,
    ctx: RunContext,
    generator: torch.Generator,
) -> Iterator[Scores]:
    """Train the GZSL softmax over all ``n_classes`` and yield its test log-probabilities after every epoch.

    Logs a ``classifier`` row (mean NLL) per epoch; a non-finite loss raises
    :class:`~gzslbench.methods.base.TrainingDiverged` through ``ctx.log``. Adds the stage's own
    wall time to ``ctx.timings["classifier_s"]``.
    """
    model = new_classifier(train_x.shape[1], n_classes, train_x.device, generator)
    epochs = train_epochs(model, train_x, train_y, settings, generator)
    for epoch in ctx.progress_bar(range(1, settings.epochs + 1), "classifier epochs"):
        with ctx.timer("classifier_s"):
            loss = float(next(epochs))
            with torch.no_grad():
                seen, unseen = model(test_seen_x), model(test_unseen_x)
        ctx.log("classifier", epoch, loss=loss)
        yield Scores(epoch=epoch, seen=seen, unseen=unseen)
