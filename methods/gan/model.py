"""The conditional WGAN-GP feature generators and their training loops: f-CLSWGAN, f-VAEGAN and TF-VAEGAN.

All share one adversarial loop (:func:`train_adversarial`, the reference's ``clswgan.py``
loop): per generator step, ``critic_iters`` critic steps, each on a fresh random mini-batch of
real seen features with their class attributes, then one generator step. They differ in where
the critic's generated features come from and in the generator step:

* :func:`train_gan` (f-CLSWGAN): generated from prior noise; the generator minimises the
  adversarial loss plus ``cls_weight`` times the NLL of the frozen pre-trained classifier on
  the generated features;
* :func:`train_vaegan` (f-VAEGAN, TF-VAEGAN's ``train_images.py`` without feedback and
  semantic decoder): a VAE encoder's posterior samples or prior noise (``adversarial_noise``);
  encoder and generator minimise the VAE loss plus ``adversarial_weight`` times the adversarial
  loss, and the penalty weight may adapt (``gp_schedule``);
* :func:`train_tfvaegan` (TF-VAEGAN, ``train_images.py``): f-VAEGAN's step plus a semantic
  decoder trained on real and generated features and a feedback module that feeds the
  decoder's hidden layer back into the generator's in every second pass of an epoch, added to
  f-VAEGAN's training as a :class:`VAEGANExtension` (FREE's is another: ``free.py``).

:func:`generate_features` draws the per-class synthetic features the final classifier trains on.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Iterable, Iterator, Mapping
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
    weighted_l1,
)
from gzslbench.methods.gan.parts import Critic, Encoder, Feedback, Generator, SemanticDecoder, init_normal_

GENERATOR_BATCHES = ("last_critic", "fresh")
# Where the generated features the critic judges come from (f-VAEGAN): the encoder's posterior
# samples of the real batch (TF-VAEGAN's --encoded_noise) or the prior N(0, I).
ADVERSARIAL_NOISES = ("encoded", "prior")
# The gradient penalty's weight: fixed (WGAN-GP, the papers) or TF-VAEGAN's adaptive rule.
GP_SCHEDULES = ("fixed", "adaptive")
CRITIC_NAMES = ("critic_loss", "wasserstein", "gradient_penalty")
LOSS_NAMES = (*CRITIC_NAMES, "generator_loss", "adversarial", "classification")
VAEGAN_LOSS_NAMES = (*CRITIC_NAMES, "generator_loss", "adversarial", "reconstruction", "kl")
# TF-VAEGAN's extra history terms: the decoder's loss on real features (critic phase) and on generated ones.
DECODER_NAMES = ("decoder_real", "decoder_generated")
# What the final classifier sees of a feature x (TF-VAEGAN): [x; a_hat; h] as the reference's
# classifier, [x; h] as the paper describes it, or x alone (f-VAEGAN).
DECODER_FEATURES = ("embedding_hidden", "hidden", "none")
# Where the feedback of prior-noise features comes from in the generator step (TF-VAEGAN without
# encoded noise): the decoder's hidden layer of the reconstruction, as the reference computes it,
# or of the prior-noise feature itself.
PRIOR_FEEDBACKS = ("reconstruction", "own")


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


_CONVERT: dict[str, Callable[[Any], Any]] = {"int": int, "float": float, "str": str, "bool": bool}
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


@dataclass(frozen=True)
class TFVAEGANSettings(VAEGANSettings):
    """TF-VAEGAN's: f-VAEGAN's settings plus the semantic decoder's and the feedback module's training."""

    decoder_weight: float
    decoder_lr: float
    freeze_decoder: bool
    feedback_loop: int
    feedback_weight: float
    feedback_lr: float
    prior_feedback: str


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

    def generate(self, z: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        """Features at generation time (:func:`generate_features`): the generator itself."""
        return self.generator(z, a)

    def classifier_features(self, x: torch.Tensor) -> torch.Tensor:
        """What the final classifier sees of features ``x``: ``x`` itself."""
        return x


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


@dataclass(frozen=True)
class TFVAEGANSpec(VAEGANSpec):
    """Shapes of a :class:`FeatureTFVAEGAN`: a :class:`VAEGANSpec` plus the semantic decoder's hidden width."""

    decoder_hidden: int = 4096

    @classmethod
    def from_config(cls, config: Mapping[str, Any], feature_dim: int, attribute_dim: int) -> TFVAEGANSpec:
        base = VAEGANSpec.from_config(config, feature_dim, attribute_dim)
        return cls(**dataclasses.asdict(base), decoder_hidden=int(config["decoder_hidden"]))


class FeatureTFVAEGAN(FeatureVAEGAN):
    """A :class:`FeatureVAEGAN` with TF-VAEGAN's semantic decoder Dec(x) -> (a_hat, h) and feedback module F(h).

    ``generation_weight`` is the feedback's weight when features are generated (the reference's
    ``a2``; 0: no feedback), ``decoder_features`` what the final classifier sees
    (``DECODER_FEATURES``). Decoder and feedback module are initialised after f-VAEGAN's
    networks, so those start as f-VAEGAN's do on the same seed.
    """

    def __init__(
        self,
        spec: TFVAEGANSpec,
        device: torch.device,
        generator: torch.Generator,
        generation_weight: float = 0.0,
        decoder_features: str = "none",
    ) -> None:
        super().__init__(spec, device, generator)
        if decoder_features not in DECODER_FEATURES:
            raise ValueError(f"decoder_features {decoder_features!r} is not one of {DECODER_FEATURES}")
        self.decoder = SemanticDecoder(spec.feature_dim, spec.decoder_hidden, spec.attribute_dim, device)
        self.feedback = Feedback(spec.decoder_hidden, spec.generator_hidden, device)
        init_normal_(self.decoder, generator)
        init_normal_(self.feedback, generator)
        self.generation_weight = generation_weight
        self.decoder_features = decoder_features

    def feedback_from(self, x: torch.Tensor) -> torch.Tensor:
        """F(h(x)): the feedback of features ``x`` through the decoder's hidden layer (detached, as the reference's)."""
        with torch.no_grad():
            h = self.decoder(x)[1]
        return self.feedback(h)

    def generate_with_feedback(self, z: torch.Tensor, a: torch.Tensor, weight: float) -> torch.Tensor:
        """The reference's two passes: ``x0 = G(z, a)``, then ``G(z, a)`` plus ``weight * F(h(x0))`` inside.

        Gradients reach the generator and F through the second pass only (the first feeds the
        decoder, whose hidden layer is detached).
        """
        with torch.no_grad():
            first = self.generator(z, a)
        return self.generator(z, a, self.feedback_from(first), weight)

    def generate(self, z: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        """With feedback at ``generation_weight`` (the reference's ``generate_syn_feature`` with ``a2``)."""
        if self.generation_weight == 0.0:
            return self.generator(z, a)
        return self.generate_with_feedback(z, a, self.generation_weight)

    @torch.no_grad()
    def classifier_features(self, x: torch.Tensor, chunk: int = 8192) -> torch.Tensor:
        """The discriminative features: ``[x; a_hat; h]``, ``[x; h]`` or ``x`` (``decoder_features``), in chunks."""
        if self.decoder_features == "none":
            return x
        parts = []
        for start in range(0, len(x), chunk):
            rows = x[start : start + chunk]
            a_hat, h = self.decoder(rows)
            parts.append(torch.cat((rows, a_hat, h) if self.decoder_features == "embedding_hidden" else (rows, h), 1))
        return torch.cat(parts) if parts else x.new_empty(0, self.classifier_width())

    def classifier_width(self) -> int:
        """The width of :meth:`classifier_features`' rows."""
        spec = self.spec
        assert isinstance(spec, TFVAEGANSpec)
        extra = {"embedding_hidden": spec.attribute_dim + spec.decoder_hidden, "hidden": spec.decoder_hidden}
        return spec.feature_dim + extra.get(self.decoder_features, 0)


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


def adversarial_epochs(
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
    passes: int = 1,
    start_pass: Callable[[int], None] | None = None,
    auxiliary_step: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
    auxiliary_names: tuple[str, ...] = (),
) -> Iterator[int]:
    """The family's loop: ``settings.epochs`` epochs of ``passes`` x ``ceil(n / batch_size)`` generator steps.

    Yields each epoch's number (1-based) after its ``gan`` row is logged, so that a method can
    score a model after every epoch (LsrGAN); :func:`train_adversarial` runs it to the end.

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

    The hooks of f-VAEGAN's extensions (:class:`VAEGANExtension`): an epoch is ``passes`` passes
    (TF-VAEGAN's ``feedback_loop``, FREE's ``passes``), ``start_pass(p)`` called before pass ``p``
    (0-based) so that the steps can change with it; ``auxiliary_step(rows, real, attributes)``
    runs in every critic step right after the batch is drawn (TF-VAEGAN's decoder step, FREE's
    refiner step) and returns its detached terms, named
    ``auxiliary_names`` and logged after the critic's as means over critic steps.
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
            auxiliary_sums = torch.zeros(len(auxiliary_names), device=device)
            generator_sums = torch.zeros(len(generator_names), device=device)
            for step_index in range(passes * steps):
                if start_pass is not None and step_index % steps == 0:
                    start_pass(step_index // steps)
                deviation = torch.zeros((), device=device)
                for _ in range(settings.critic_iters):
                    rows = _sample_rows(n, batch, rng, device)
                    real, att = train_x[rows], attributes[train_y[rows]]
                    if auxiliary_step is not None:
                        auxiliary_sums += auxiliary_step(rows, real, att)
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
            values = (critic_sums.cpu() / (passes * steps * settings.critic_iters)).tolist()
            values += (auxiliary_sums.cpu() / (passes * steps * settings.critic_iters)).tolist()
            values += (generator_sums.cpu() / (passes * steps)).tolist()
            logged = dict(zip((*CRITIC_NAMES, *auxiliary_names, *generator_names), values, strict=True))
            if penalty.adaptive:
                logged["gp_weight"] = penalty.value()
            ctx.log("gan", epoch, **logged)
            yield epoch
    finally:
        gan.critic.requires_grad_(True)


def train_adversarial(*args: Any, **kwargs: Any) -> None:
    """:func:`adversarial_epochs` run through all its epochs."""
    for _ in adversarial_epochs(*args, **kwargs):
        pass


def prior_fakes(gan: FeatureGAN, rng: torch.Generator) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """f-CLSWGAN's ``critic_fake``: the generator on prior noise (drawn from ``rng``) for a batch's attributes."""

    def critic_fake(real: torch.Tensor, att: torch.Tensor) -> torch.Tensor:
        return gan.generator(gan.noise(len(real), rng, real.device), att)

    return critic_fake


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
        critic_fake=prior_fakes(gan, rng),
        generator_step=generator_step,
        generator_names=LOSS_NAMES[len(CRITIC_NAMES) :],
    )


class VAEGANExtension:
    """What a method adds to f-VAEGAN's training (:func:`train_vaegan`): TF-VAEGAN's decoder and feedback, FREE's R.

    The default hooks add nothing. An epoch is ``passes`` passes of generator steps,
    :meth:`start_pass` is called before each; :meth:`produce` makes every generated feature
    (the critic's, the reconstruction); :meth:`prior_fake` the prior-noise feature of a generator
    step; :meth:`auxiliary_step` runs in every critic step (logged as ``auxiliary_names``);
    :meth:`generator_terms` adds a loss to the encoder-generator step (logged as
    ``generator_names``), whose gradients :meth:`zero_grad` clears before the backward pass and
    :meth:`step` applies after the encoder's and generator's updates.
    """

    passes: int = 1
    auxiliary_names: tuple[str, ...] = ()
    generator_names: tuple[str, ...] = ()

    def __init__(self, gan: FeatureVAEGAN) -> None:
        self.gan = gan

    def start_pass(self, index: int) -> None:
        """Called before pass ``index`` (0-based) of an epoch."""

    def produce(self, z: torch.Tensor, att: torch.Tensor) -> torch.Tensor:
        """A generated feature: the generator itself."""
        return self.gan.generator(z, att)

    def prior_fake(self, noise: torch.Tensor, att: torch.Tensor, recon: torch.Tensor) -> torch.Tensor:
        """The generator step's prior-noise feature (``adversarial_noise="prior"``); ``recon`` is the reconstruction."""
        return self.produce(noise, att)

    def auxiliary_step(self, rows: torch.Tensor, real: torch.Tensor, att: torch.Tensor) -> torch.Tensor:
        """A step of the method's own networks on a critic batch; its detached terms (``auxiliary_names``)."""
        raise NotImplementedError

    def generator_terms(self, fake: torch.Tensor, att: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """``(weighted loss, terms)`` added to the generator step on its generated features ``fake``."""
        return fake.new_zeros(()), []

    def zero_grad(self) -> None:
        """Clear the gradients :meth:`step` applies."""

    def step(self) -> None:
        """Update the method's networks after the generator step's backward pass."""


def train_vaegan(
    gan: FeatureVAEGAN,
    train_x: torch.Tensor,
    train_y: torch.Tensor,
    attributes: torch.Tensor,
    settings: VAEGANSettings,
    ctx: RunContext,
    rng: torch.Generator,
    extension: VAEGANExtension | None = None,
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
    ``extension`` adds a method's parts (:class:`VAEGANExtension`; TF-VAEGAN's: :func:`train_tfvaegan`).
    """
    device = train_x.device
    ext = extension or VAEGANExtension(gan)
    opt_g = adam(gan.generator.parameters(), settings.lr, settings.beta1, device)
    opt_e = adam(gan.encoder.parameters(), settings.lr, settings.encoder_beta1, device)
    encoded = settings.adversarial_noise == "encoded"

    def critic_fake(real: torch.Tensor, att: torch.Tensor) -> torch.Tensor:
        z = gan.encoder.sample(real, att, rng)[0] if encoded else gan.noise(len(real), rng, device)
        return ext.produce(z, att)

    def generator_step(rows: torch.Tensor) -> torch.Tensor:
        real, att = train_x[rows], attributes[train_y[rows]]
        z, mu, logvar = gan.encoder.sample(real, att, rng)
        recon = ext.produce(z, att)
        rec = reconstruction_loss(recon, real, settings.reconstruction_loss)
        kl = kl_divergence(mu, logvar)
        fake = recon if encoded else ext.prior_fake(gan.noise(len(rows), rng, device), att, recon)
        adversarial = -gan.critic(fake, att).mean()
        loss = (
            settings.reconstruction_weight * rec + settings.kl_weight * kl + settings.adversarial_weight * adversarial
        )
        extra, extra_terms = ext.generator_terms(fake, att)
        if extra_terms:
            loss = loss + extra
        opt_e.zero_grad(set_to_none=True)
        opt_g.zero_grad(set_to_none=True)
        ext.zero_grad()
        loss.backward()
        opt_e.step()
        opt_g.step()
        ext.step()
        return torch.stack([t.detach() for t in (loss, adversarial, rec, kl, *extra_terms)])

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
        generator_names=(*VAEGAN_LOSS_NAMES[len(CRITIC_NAMES) :], *ext.generator_names),
        penalty=PenaltyWeight(settings.gp_weight, settings.gp_schedule, device),
        critic_weight=settings.critic_weight,
        passes=ext.passes,
        start_pass=ext.start_pass,
        auxiliary_step=ext.auxiliary_step if ext.auxiliary_names else None,
        auxiliary_names=ext.auxiliary_names,
    )


class TFVAEGANExtension(VAEGANExtension):
    """TF-VAEGAN's semantic decoder and feedback module in f-VAEGAN's training (:func:`train_tfvaegan`)."""

    def __init__(self, gan: FeatureTFVAEGAN, settings: TFVAEGANSettings, device: torch.device) -> None:
        super().__init__(gan)
        self.tf, self.settings = gan, settings
        self.decoding = settings.decoder_weight > 0
        self.passes = settings.feedback_loop
        self.feedback_on = False  # whether the current pass feeds the decoder back into the generator
        self.opt_dec = adam(gan.decoder.parameters(), settings.decoder_lr, settings.beta1, device)
        self.opt_f = adam(gan.feedback.parameters(), settings.feedback_lr, settings.beta1, device)
        if self.decoding:
            self.auxiliary_names = DECODER_NAMES[:1]
            self.generator_names = DECODER_NAMES[1:]

    def start_pass(self, index: int) -> None:
        self.feedback_on = index == 1  # the reference's `if loop == 1`: the second pass feeds back

    def produce(self, z: torch.Tensor, att: torch.Tensor) -> torch.Tensor:
        if self.feedback_on:
            return self.tf.generate_with_feedback(z, att, self.settings.feedback_weight)
        return self.tf.generator(z, att)

    def prior_fake(self, noise: torch.Tensor, att: torch.Tensor, recon: torch.Tensor) -> torch.Tensor:
        if self.feedback_on and self.settings.prior_feedback == "reconstruction":
            return self.tf.generator(noise, att, self.tf.feedback_from(recon.detach()), self.settings.feedback_weight)
        return self.produce(noise, att)

    def auxiliary_step(self, rows: torch.Tensor, real: torch.Tensor, att: torch.Tensor) -> torch.Tensor:
        """The decoder's own Adam step on the real batch."""
        loss = weighted_l1(self.tf.decoder(real)[0], att)
        self.opt_dec.zero_grad(set_to_none=True)
        (self.settings.decoder_weight * loss).backward()
        self.opt_dec.step()
        return loss.detach().unsqueeze(0)

    def generator_terms(self, fake: torch.Tensor, att: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        if not self.decoding:
            return super().generator_terms(fake, att)
        self.tf.decoder.requires_grad_(not self.settings.freeze_decoder)
        decoder_loss = weighted_l1(self.tf.decoder(fake)[0], att)
        return self.settings.decoder_weight * decoder_loss, [decoder_loss]

    def zero_grad(self) -> None:
        self.opt_f.zero_grad(set_to_none=True)
        self.opt_dec.zero_grad(set_to_none=True)

    def step(self) -> None:
        if self.feedback_on:
            self.opt_f.step()
        if self.decoding:
            if not self.settings.freeze_decoder:
                self.opt_dec.step()
            self.tf.decoder.requires_grad_(True)


def train_tfvaegan(
    gan: FeatureTFVAEGAN,
    train_x: torch.Tensor,
    train_y: torch.Tensor,
    attributes: torch.Tensor,
    settings: TFVAEGANSettings,
    ctx: RunContext,
    rng: torch.Generator,
) -> None:
    """Train TF-VAEGAN: :func:`train_vaegan`'s networks and losses plus the semantic decoder and the feedback module.

    * Semantic decoder (``decoder_weight > 0``): in every critic step, one Adam step
      (``decoder_lr``, betas ``(beta1, 0.999)``) on ``decoder_weight * weighted_l1(Dec(x), a)``
      of the real batch (``losses.weighted_l1``); in the generator step
      ``decoder_weight * weighted_l1(Dec(x_gen), a)`` joins the loss, training generator (and
      encoder) towards features that decode to their class embedding, and the decoder too
      unless ``freeze_decoder``. ``decoder_weight=0`` leaves the decoder untrained.
    * Feedback (``feedback_loop=2``): an epoch is two passes of steps; in the second every
      generated feature (the critic's, the reconstruction, the prior-noise one) is
      ``G(z, a)`` with ``feedback_weight * F(h(G(z, a)))`` added to its hidden layer
      (:meth:`FeatureTFVAEGAN.generate_with_feedback`), and F takes an Adam step
      (``feedback_lr``, betas ``(beta1, 0.999)``) after each generator step. With prior noise the
      reference feeds back the hidden layer of the reconstruction (``prior_feedback``).

    History: ``VAEGAN_LOSS_NAMES`` plus, with the decoder on, ``DECODER_NAMES`` (its unweighted losses).
    """
    extension = TFVAEGANExtension(gan, settings, train_x.device)
    train_vaegan(gan, train_x, train_y, attributes, settings, ctx, rng, extension)


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
    fresh standard normal noise and the class's attribute vector (:meth:`FeatureGAN.generate`:
    with TF-VAEGAN's feedback where it has one), as the reference's ``generate_syn_feature``.
    Generated ``chunk`` rows at a time to bound memory.
    """
    device = attributes.device
    labels = classes.to(device).repeat_interleave(per_class)
    features = torch.empty(len(labels), gan.spec.feature_dim, device=device)
    was_training = gan.training
    gan.eval()
    noise = gan.noise(len(labels), rng, device)  # drawn at once: the features do not depend on ``chunk``
    for start in range(0, len(labels), chunk):
        part = slice(start, start + chunk)
        features[part] = gan.generate(noise[part], attributes[labels[part]])
    gan.train(was_training)
    return features, labels
