"""The conditional WGAN-GP feature generators and their training loops: f-CLSWGAN and f-VAEGAN.

Both share one adversarial loop (:func:`train_adversarial`, the reference's ``clswgan.py``
loop): per generator step, ``critic_iters`` critic steps, each on a fresh random mini-batch of
real seen features with their class attributes, then one generator step. They differ in where
the critic's generated features come from and in the generator step:

* :func:`train_gan` (f-CLSWGAN): generated from prior noise; the generator minimises the
  adversarial loss plus ``cls_weight`` times the NLL of the frozen pre-trained classifier on
  the generated features;
* :func:`train_vaegan` (f-VAEGAN, TF-VAEGAN's ``train_images.py`` without feedback and
  semantic decoder): a VAE encoder's posterior samples or prior noise (``adversarial_noise``);
  encoder and generator minimise the VAE loss plus ``adversarial_weight`` times the adversarial
  loss, and the penalty weight may adapt (``gp_schedule``).

:func:`generate_features` draws the per-class synthetic features the final classifier trains on.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import torch
from torch import nn

from gzslbench.methods.base import RunContext
from gzslbench.methods.gan.losses import (
    classification_loss,
    critic_step_gradients,
    kl_divergence,
    reconstruction_loss,
)
from gzslbench.methods.gan.parts import Critic, Encoder, Generator, init_normal_

GENERATOR_BATCHES = ("last_critic", "fresh")
# Where the generated features the critic judges come from (f-VAEGAN): the encoder's posterior
# samples of the real batch (TF-VAEGAN's --encoded_noise) or the prior N(0, I).
ADVERSARIAL_NOISES = ("encoded", "prior")
# The gradient penalty's weight: fixed (WGAN-GP, the papers) or TF-VAEGAN's adaptive rule.
GP_SCHEDULES = ("fixed", "adaptive")
CRITIC_NAMES = ("critic_loss", "wasserstein", "gradient_penalty")
LOSS_NAMES = (*CRITIC_NAMES, "generator_loss", "adversarial", "classification")
VAEGAN_LOSS_NAMES = (*CRITIC_NAMES, "generator_loss", "adversarial", "reconstruction", "kl")


@dataclass(frozen=True)
class GANSpec:
    """Shapes of a :class:`FeatureGAN`."""

    feature_dim: int
    attribute_dim: int
    noise_dim: int
    generator_hidden: int
    critic_hidden: int
    generator_output: str = "relu"

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


_CONVERT: dict[str, Callable[[Any], Any]] = {"int": int, "float": float, "str": str}
SettingsT = TypeVar("SettingsT", bound="AdversarialSettings")


@dataclass(frozen=True)
class AdversarialSettings:
    """The adversarial-stage part of a method config shared by the family (valid values: the method's ``ranges``)."""

    epochs: int
    batch_size: int
    lr: float
    beta1: float
    critic_iters: int
    gp_weight: float
    generator_batch: str

    @classmethod
    def from_config(cls: type[SettingsT], config: Mapping[str, Any]) -> SettingsT:
        """Every field from the config key of its name, converted to the field's type."""
        return cls(**{f.name: _CONVERT[str(f.type)](config[f.name]) for f in dataclasses.fields(cls)})

    def steps_per_epoch(self, n_train: int) -> int:
        """Generator steps in an epoch: the reference's ``for i in range(0, ntrain, batch_size)``."""
        return math.ceil(n_train / self.batch_size)


@dataclass(frozen=True)
class GANSettings(AdversarialSettings):
    """f-CLSWGAN's: the adversarial settings plus the classification-loss weight."""

    cls_weight: float


@dataclass(frozen=True)
class VAEGANSettings(AdversarialSettings):
    """f-VAEGAN's: the adversarial settings plus the encoder's Adam beta1 and the VAE-GAN loss weights and switches."""

    encoder_beta1: float
    critic_weight: float
    adversarial_weight: float
    reconstruction_weight: float
    kl_weight: float
    reconstruction_loss: str
    adversarial_noise: str
    gp_schedule: str


class FeatureGAN(nn.Module):
    """A conditional generator and critic, initialised as the reference (weights N(0, 0.02^2), zero biases)."""

    def __init__(self, spec: GANSpec, device: torch.device, generator: torch.Generator) -> None:
        super().__init__()
        self.spec = spec
        self.generator = Generator(
            spec.noise_dim, spec.attribute_dim, spec.generator_hidden, spec.feature_dim, device, spec.generator_output
        )
        self.critic = Critic(spec.feature_dim, spec.attribute_dim, spec.critic_hidden, device)
        init_normal_(self.generator, generator)
        init_normal_(self.critic, generator)

    def noise(self, n: int, rng: torch.Generator, device: torch.device) -> torch.Tensor:
        """Standard normal generator input, (n, noise_dim)."""
        return torch.randn(n, self.spec.noise_dim, generator=rng, device=device)


@dataclass(frozen=True)
class VAEGANSpec(GANSpec):
    """Shapes of a :class:`FeatureVAEGAN`: a :class:`GANSpec` plus the encoder's first hidden layer.

    The latent code is the generator's noise (``noise_dim``), as TF-VAEGAN's ``latent_size = nz``.
    """

    encoder_hidden: int = 4096

    @classmethod
    def from_config(cls, config: Mapping[str, Any], feature_dim: int, attribute_dim: int) -> VAEGANSpec:
        """A sigmoid generator output: the reconstruction loss is a cross-entropy on [0, 1] features."""
        base = GANSpec.from_config(config, feature_dim, attribute_dim)
        return cls(
            **{**dataclasses.asdict(base), "generator_output": "sigmoid"},
            encoder_hidden=int(config["encoder_hidden"]),
        )


class FeatureVAEGAN(FeatureGAN):
    """A :class:`FeatureGAN` whose generator is also the decoder of a conditional VAE with encoder E(x, a).

    Initialised as TF-VAEGAN's ``weights_init`` (N(0, 0.02^2), zero biases), the encoder last.
    """

    def __init__(self, spec: VAEGANSpec, device: torch.device, generator: torch.Generator) -> None:
        super().__init__(spec, device, generator)
        self.encoder = Encoder(spec.feature_dim, spec.attribute_dim, spec.encoder_hidden, spec.noise_dim, device)
        init_normal_(self.encoder, generator)


class PenaltyWeight:
    """The gradient penalty's weight: fixed, or TF-VAEGAN's adaptive rule (``gp_schedule``).

    The adaptive rule (``train_images.py``) runs after each generator step's critic steps on the
    mean unweighted deviation ``mean (||g|| - 1)^2`` over them: above 1.05 the weight grows by
    a factor 1.1, below 1.001 it shrinks by 1.1, so it steers that deviation into [1.001, 1.05]
    rather than towards 0. It lives on the device as a float64 0-d tensor (the reference's
    Python float), so the rule needs no synchronisation.
    """

    GROWTH = 1.1
    HIGH, LOW = 1.05, 1.001

    def __init__(self, initial: float, schedule: str, device: torch.device) -> None:
        if schedule not in GP_SCHEDULES:
            raise ValueError(f"gp_schedule {schedule!r} is not one of {GP_SCHEDULES}")
        self.adaptive = schedule == "adaptive"
        self._value: float | torch.Tensor = (
            torch.tensor(initial, dtype=torch.float64, device=device) if self.adaptive else initial
        )

    def weight(self, dtype: torch.dtype) -> float | torch.Tensor:
        """The weight for the next critic step (a Python float when fixed)."""
        return self._value.to(dtype) if isinstance(self._value, torch.Tensor) else self._value

    def value(self) -> float:
        """The current weight as a number (a sync on a device: for logging once per epoch)."""
        return float(self._value)

    def update(self, mean_deviation: torch.Tensor) -> None:
        if isinstance(self._value, torch.Tensor):
            d = mean_deviation.to(torch.float64)
            self._value = torch.where(
                d > self.HIGH,
                self._value * self.GROWTH,
                torch.where(d < self.LOW, self._value / self.GROWTH, self._value),
            )


def _sample_rows(n: int, batch: int, rng: torch.Generator, device: torch.device) -> torch.Tensor:
    """A random mini-batch of distinct rows, ``randperm(n)[:batch]`` as the reference's ``next_batch``."""
    return torch.randperm(n, generator=rng, device=device)[:batch]


def train_adversarial(
    gan: FeatureGAN,
    train_x: torch.Tensor,
    train_y: torch.Tensor,
    attributes: torch.Tensor,
    settings: AdversarialSettings,
    ctx: RunContext,
    rng: torch.Generator,
    *,
    critic_fake: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    generator_step: Callable[[torch.Tensor], torch.Tensor],
    generator_names: tuple[str, ...],
    penalty: PenaltyWeight | None = None,
    critic_weight: float = 1.0,
) -> None:
    """The family's loop: ``settings.epochs`` epochs of ``ceil(n / batch_size)`` generator steps.

    Each generator step follows ``critic_iters`` critic steps. A critic step draws a batch
    (``randperm(n)[:batch]``), lets ``critic_fake(real, attributes)`` generate its counterpart
    (without graph; it draws its noise from ``rng``), draws the interpolation weights of the
    penalty, writes the WGAN-GP gradients in closed form
    (:func:`~gzslbench.methods.gan.losses.critic_step_gradients`, scaled by ``critic_weight``)
    and steps the critic's Adam. ``generator_step(rows)`` then trains on the last critic batch's
    rows (or, with ``generator_batch="fresh"``, on a batch of its own) and returns its detached
    loss terms, named ``generator_names``. Per epoch a ``gan`` history row holds the means over
    the epoch of the critic loss, the Wasserstein estimate and the weighted penalty (over critic
    steps, before ``critic_weight``) and of the generator's terms (over generator steps), plus
    ``gp_weight`` at the epoch's end when it adapts; a non-finite mean raises
    :class:`~gzslbench.methods.base.TrainingDiverged` (``ctx.log``).
    """
    device = train_x.device
    n = len(train_x)
    batch = min(settings.batch_size, n)
    penalty = penalty or PenaltyWeight(settings.gp_weight, "fixed", device)
    opt_d = adam(gan.critic.parameters(), settings.lr, settings.beta1, device)
    steps = settings.steps_per_epoch(n)
    gan.train()
    # The critic's gradients are written by critic_step_gradients; autograd never needs them, so the
    # generator step back-propagates through the critic to the generated features only.
    gan.critic.requires_grad_(False)
    try:
        for epoch in ctx.progress_bar(range(1, settings.epochs + 1), "GAN epochs"):
            critic_sums = torch.zeros(len(CRITIC_NAMES), device=device)
            generator_sums = torch.zeros(len(generator_names), device=device)
            for _ in range(steps):
                deviation = torch.zeros((), device=device)
                for _ in range(settings.critic_iters):
                    rows = _sample_rows(n, batch, rng, device)
                    real, att = train_x[rows], attributes[train_y[rows]]
                    with torch.no_grad():
                        fake = critic_fake(real, att)
                    alpha = torch.rand(batch, 1, generator=rng, device=device)
                    step = critic_step_gradients(gan.critic, real, fake, att, alpha, penalty.weight(real.dtype))
                    if critic_weight != 1.0:
                        for param in gan.critic.parameters():
                            param.grad.mul_(critic_weight)
                    opt_d.step()
                    critic_sums += torch.stack((step.loss, step.wasserstein, step.penalty))
                    if penalty.adaptive:
                        deviation += step.deviation
                if penalty.adaptive:
                    penalty.update(deviation / settings.critic_iters)
                if settings.generator_batch == "fresh":
                    rows = _sample_rows(n, batch, rng, device)
                generator_sums += generator_step(rows)
            values = (critic_sums.cpu() / (steps * settings.critic_iters)).tolist()
            values += (generator_sums.cpu() / steps).tolist()
            logged = dict(zip((*CRITIC_NAMES, *generator_names), values, strict=True))
            if penalty.adaptive:
                logged["gp_weight"] = penalty.value()
            ctx.log("gan", epoch, **logged)
    finally:
        gan.critic.requires_grad_(True)


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
    """Train f-CLSWGAN's ``gan`` with :func:`train_adversarial` (its history names: ``LOSS_NAMES``).

    ``train_y`` holds the split's class ids (rows of ``attributes``), ``train_seen_y`` the same
    labels as indices of the frozen ``classifier``'s seen classes. The critic's generated rows
    come from prior noise (drawn after the batch, before the penalty's weights); the generator
    step draws fresh noise and minimises ``-E[D(G(z, a), a)] + cls_weight * NLL``.
    """
    device = train_x.device
    opt_g = adam(gan.generator.parameters(), settings.lr, settings.beta1, device)

    def critic_fake(real: torch.Tensor, att: torch.Tensor) -> torch.Tensor:
        return gan.generator(gan.noise(len(real), rng, device), att)

    def generator_step(rows: torch.Tensor) -> torch.Tensor:
        att = attributes[train_y[rows]]
        fake = gan.generator(gan.noise(len(rows), rng, device), att)
        adversarial = -gan.critic(fake, att).mean()
        cls_loss = classification_loss(classifier(fake), train_seen_y[rows])
        loss_g = adversarial + settings.cls_weight * cls_loss
        opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        opt_g.step()
        return torch.stack((loss_g.detach(), adversarial.detach(), cls_loss.detach()))

    train_adversarial(
        gan,
        train_x,
        train_y,
        attributes,
        settings,
        ctx,
        rng,
        critic_fake=critic_fake,
        generator_step=generator_step,
        generator_names=LOSS_NAMES[len(CRITIC_NAMES) :],
    )


def train_vaegan(
    gan: FeatureVAEGAN,
    train_x: torch.Tensor,
    train_y: torch.Tensor,
    attributes: torch.Tensor,
    settings: VAEGANSettings,
    ctx: RunContext,
    rng: torch.Generator,
) -> None:
    """Train f-VAEGAN's encoder, generator and critic with :func:`train_adversarial` (``VAEGAN_LOSS_NAMES``).

    Generator step on the rows' real features ``x`` and attributes ``a``: ``z ~ q(z | x, a)``
    reparametrised (noise from ``rng``), ``x_rec = G(z, a)``, and encoder and generator
    minimise ``reconstruction_weight * rec(x_rec, x) + kl_weight * KL(q || N(0, I)) +
    adversarial_weight * -E[D(x_gen, a)]``, where ``x_gen`` is ``x_rec`` with
    ``adversarial_noise="encoded"`` and ``G(z', a)`` with fresh ``z' ~ N(0, I)`` with
    ``"prior"``; the critic's generated rows come from the same source. The critic's loss is
    scaled by ``critic_weight`` (TF-VAEGAN's gammaD). Encoder Adam betas
    ``(encoder_beta1, 0.999)``, generator and critic ``(beta1, 0.999)``, all at ``lr``.
    """
    device = train_x.device
    opt_g = adam(gan.generator.parameters(), settings.lr, settings.beta1, device)
    opt_e = adam(gan.encoder.parameters(), settings.lr, settings.encoder_beta1, device)
    encoded = settings.adversarial_noise == "encoded"

    def critic_fake(real: torch.Tensor, att: torch.Tensor) -> torch.Tensor:
        z = gan.encoder.sample(real, att, rng)[0] if encoded else gan.noise(len(real), rng, device)
        return gan.generator(z, att)

    def generator_step(rows: torch.Tensor) -> torch.Tensor:
        real, att = train_x[rows], attributes[train_y[rows]]
        z, mu, logvar = gan.encoder.sample(real, att, rng)
        recon = gan.generator(z, att)
        rec = reconstruction_loss(recon, real, settings.reconstruction_loss)
        kl = kl_divergence(mu, logvar)
        fake = recon if encoded else gan.generator(gan.noise(len(rows), rng, device), att)
        adversarial = -gan.critic(fake, att).mean()
        loss = (
            settings.reconstruction_weight * rec + settings.kl_weight * kl + settings.adversarial_weight * adversarial
        )
        opt_e.zero_grad(set_to_none=True)
        opt_g.zero_grad(set_to_none=True)
        loss.backward()
        opt_e.step()
        opt_g.step()
        return torch.stack((loss.detach(), adversarial.detach(), rec.detach(), kl.detach()))

    train_adversarial(
        gan,
        train_x,
        train_y,
        attributes,
        settings,
        ctx,
        rng,
        critic_fake=critic_fake,
        generator_step=generator_step,
        generator_names=VAEGAN_LOSS_NAMES[len(CRITIC_NAMES) :],
        penalty=PenaltyWeight(settings.gp_weight, settings.gp_schedule, device),
        critic_weight=settings.critic_weight,
    )


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
