"""The conditional WGAN-GP feature generator and its training loop (f-CLSWGAN; the base of f-VAEGAN and TF-VAEGAN).

:func:`train_gan` runs the reference's loop (``clswgan.py``): per generator step, ``critic_iters``
critic steps, each on a fresh random mini-batch of real seen features with their class
attributes; then one generator step on the adversarial loss plus ``cls_weight`` times the NLL
of the frozen pre-trained classifier on the generated features. :func:`generate_features` draws
the per-class synthetic features the final classifier trains on.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from gzslbench.methods.base import RunContext
from gzslbench.methods.gan.losses import classification_loss, critic_step_gradients
from gzslbench.methods.gan.parts import Critic, Generator, init_normal_

GENERATOR_BATCHES = ("last_critic", "fresh")
LOSS_NAMES = ("critic_loss", "wasserstein", "gradient_penalty", "generator_loss", "adversarial", "classification")


@dataclass(frozen=True)
class GANSpec:
    """Shapes of a :class:`FeatureGAN`."""

    feature_dim: int
    attribute_dim: int
    noise_dim: int
    generator_hidden: int
    critic_hidden: int

    @classmethod
    def from_config(cls, config: Mapping[str, Any], feature_dim: int, attribute_dim: int) -> GANSpec:
        """``noise_size=0`` means the attribute size (every reference script sets ``nz = attSize``)."""
        return cls(
            feature_dim=feature_dim,
            attribute_dim=attribute_dim,
            noise_dim=int(config["noise_size"]) or attribute_dim,
            generator_hidden=int(config["generator_hidden"]),
            critic_hidden=int(config["critic_hidden"]),
        )


@dataclass(frozen=True)
class GANSettings:
    """The GAN-stage part of a method config (its valid values are the method's ``ranges``)."""

    epochs: int
    batch_size: int
    lr: float
    beta1: float
    critic_iters: int
    gp_weight: float
    cls_weight: float
    generator_batch: str

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> GANSettings:
        return cls(
            epochs=int(config["epochs"]),
            batch_size=int(config["batch_size"]),
            lr=float(config["lr"]),
            beta1=float(config["beta1"]),
            critic_iters=int(config["critic_iters"]),
            gp_weight=float(config["gp_weight"]),
            cls_weight=float(config["cls_weight"]),
            generator_batch=str(config["generator_batch"]),
        )

    def steps_per_epoch(self, n_train: int) -> int:
        """Generator steps in an epoch: the reference's ``for i in range(0, ntrain, batch_size)``."""
        return math.ceil(n_train / self.batch_size)


class FeatureGAN(nn.Module):
    """A conditional generator and critic, initialised as the reference (weights N(0, 0.02^2), zero biases)."""

    def __init__(self, spec: GANSpec, device: torch.device, generator: torch.Generator) -> None:
        super().__init__()
        self.spec = spec
        self.generator = Generator(spec.noise_dim, spec.attribute_dim, spec.generator_hidden, spec.feature_dim, device)
        self.critic = Critic(spec.feature_dim, spec.attribute_dim, spec.critic_hidden, device)
        init_normal_(self.generator, generator)
        init_normal_(self.critic, generator)

    def noise(self, n: int, rng: torch.Generator, device: torch.device) -> torch.Tensor:
        """Standard normal generator input, (n, noise_dim)."""
        return torch.randn(n, self.spec.noise_dim, generator=rng, device=device)


def _sample_rows(n: int, batch: int, rng: torch.Generator, device: torch.device) -> torch.Tensor:
    """A random mini-batch of distinct rows, ``randperm(n)[:batch]`` as the reference's ``next_batch``."""
    return torch.randperm(n, generator=rng, device=device)[:batch]


def train_gan(
    gan: FeatureGAN,
    classifier: nn.Module,
    train_x: torch.Tensor,
    train_y: torch.Tensor,
    train_seen_y: torch.Tensor,
    attributes: torch.Tensor,
    settings: GANSettings,
    ctx: RunContext,
    rng: torch.Generator,
) -> None:
    """Train ``gan`` for ``settings.epochs`` epochs of ``ceil(n / batch_size)`` generator steps.

    ``train_y`` holds the split's class ids (rows of ``attributes``), ``train_seen_y`` the same
    labels as indices of the frozen ``classifier``'s seen classes. Each critic step draws a batch
    (``randperm(n)[:batch]``), noise, and the interpolation weights of the penalty, in that
    order, from ``rng``; the generator step draws fresh noise and, with ``generator_batch="fresh"``,
    a batch of its own. Per epoch a ``gan`` history row holds the means over the epoch of the
    critic loss, the Wasserstein estimate and the penalty (over critic steps) and of the
    generator's total, adversarial and classification losses (over generator steps); a
    non-finite mean raises :class:`~gzslbench.methods.base.TrainingDiverged` (``ctx.log``).
    """
    device = train_x.device
    n = len(train_x)
    batch = min(settings.batch_size, n)
    opt_g = adam(gan.generator.parameters(), settings.lr, settings.beta1, device)
    opt_d = adam(gan.critic.parameters(), settings.lr, settings.beta1, device)
    steps = settings.steps_per_epoch(n)
    gan.train()
    # The critic's gradients are written by critic_step_gradients; autograd never needs them, so the
    # generator step back-propagates through the critic to the generated features only.
    gan.critic.requires_grad_(False)
    try:
        for epoch in ctx.progress_bar(range(1, settings.epochs + 1), "GAN epochs"):
            sums = torch.zeros(len(LOSS_NAMES), device=device)
            for _ in range(steps):
                for _ in range(settings.critic_iters):
                    rows = _sample_rows(n, batch, rng, device)
                    real, att = train_x[rows], attributes[train_y[rows]]
                    z = gan.noise(batch, rng, device)
                    with torch.no_grad():
                        fake = gan.generator(z, att)
                    alpha = torch.rand(batch, 1, generator=rng, device=device)
                    step = critic_step_gradients(gan.critic, real, fake, att, alpha, settings.gp_weight)
                    opt_d.step()
                    sums[:3] += torch.stack((step.loss, step.wasserstein, step.penalty))
                if settings.generator_batch == "fresh":
                    rows = _sample_rows(n, batch, rng, device)
                    att = attributes[train_y[rows]]
                fake = gan.generator(gan.noise(batch, rng, device), att)
                adversarial = -gan.critic(fake, att).mean()
                cls_loss = classification_loss(classifier(fake), train_seen_y[rows])
                loss_g = adversarial + settings.cls_weight * cls_loss
                opt_g.zero_grad(set_to_none=True)
                loss_g.backward()
                opt_g.step()
                sums[3:] += torch.stack((loss_g.detach(), adversarial.detach(), cls_loss.detach()))
            means = sums.cpu()
            means[:3] /= steps * settings.critic_iters
            means[3:] /= steps
            ctx.log("gan", epoch, **dict(zip(LOSS_NAMES, means.tolist(), strict=True)))
    finally:
        gan.critic.requires_grad_(True)


def adam(params: Iterable[nn.Parameter], lr: float, beta1: float, device: torch.device) -> torch.optim.Adam:
    """The reference's Adam (betas ``(beta1, 0.999)``), fused on CPU and CUDA (the same update in one pass)."""
    return torch.optim.Adam(params, lr=lr, betas=(beta1, 0.999), fused=device.type in ("cpu", "cuda"))


@torch.no_grad()
def generate_features(
    gan: FeatureGAN,
    attributes: torch.Tensor,
    classes: torch.Tensor,
    per_class: int,
    rng: torch.Generator,
    chunk: int = 8192,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``per_class`` generated features for each class id in ``classes`` (in that order) and their labels.

    Row ``i * per_class + j`` is the ``j``-th feature of ``classes[i]``, generated from
    fresh standard normal noise and the class's attribute vector, as the reference's
    ``generate_syn_feature``. Generated ``chunk`` rows at a time to bound memory.
    """
    device = attributes.device
    labels = classes.to(device).repeat_interleave(per_class)
    features = torch.empty(len(labels), gan.spec.feature_dim, device=device)
    was_training = gan.training
    gan.eval()
    noise = gan.noise(len(labels), rng, device)  # drawn at once: the features do not depend on ``chunk``
    for start in range(0, len(labels), chunk):
        part = slice(start, start + chunk)
        features[part] = gan.generator(noise[part], attributes[labels[part]])
    gan.train(was_training)
    return features, labels
