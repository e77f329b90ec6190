"""FREE (Chen et al., ICCV 2021): f-VAEGAN with a feature refiner trained by a centre loss and a semantic cycle.

As its release (``train_free.py``, ``model.py``, ``center_loss.py``) runs it, FREE is f-VAEGAN's
training (:func:`~gzslbench.methods.gan.model.train_vaegan`, the same encoder, generator, critic,
losses and adaptive penalty) with a :class:`~gzslbench.methods.gan.parts.FeatureRefiner` R added
(:class:`FREEExtension`):

* in every critic step R and the class centres take an Adam step on the real batch:
  ``center_weight`` x the triplet-centre loss of R's means (``losses.triplet_center_loss``) +
  ``cycle_weight`` x ``weighted_l1(sigmoid(mu + eps * std), a)``, the reconstruction of the
  class embedding (its semantic cycle);
* in every generator step ``cycle_weight`` x that reconstruction loss on the generated features
  joins the encoder-generator loss, training the generator and (unless ``freeze_refiner``) R;
* an epoch is ``passes`` passes over the data (the release's ``--loop 2``, without feedback).

The final classifier sees ``[x; h; sigmoid(mu + eps * std)]`` of every feature
(:meth:`FeatureFREE.classifier_features`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from gzslbench.methods.base import RunContext
from gzslbench.methods.gan.losses import CENTER_OTHERS, triplet_center_loss, weighted_l1
from gzslbench.methods.gan.model import (
    FeatureVAEGAN,
    VAEGANExtension,
    VAEGANSettings,
    VAEGANSpec,
    adam,
    train_vaegan,
)
from gzslbench.methods.gan.parts import FeatureRefiner, init_normal_

# Whether the centres' gradients are cleared before each step ("fresh") or, as in the release, which never
# clears them, summed over all steps so far ("accumulated").
CENTER_GRADIENTS = ("accumulated", "fresh")
# R's Adam step after a generator step that gives R no gradient (R frozen, or no cycle loss): the release calls it
# anyway, and its zeroed gradients move R by Adam's momentum alone ("momentum"; torch 1.x, of the release's time,
# zeroes gradients in place) or no step is taken ("none"; torch 2.x clears a frozen R's gradients to None).
IDLE_REFINER_STEPS = ("momentum", "none")
# What the final classifier sees of a feature x: [x; h; sigmoid(mu + eps * std)] (the release), [x; h], or x alone.
REFINED_FEATURES = ("hidden_semantic", "hidden", "none")
# The semantic part of the classifier's features: sampled with fresh noise (the release) or sigmoid(mu).
CLASSIFIER_SEMANTICS = ("sampled", "mean")
# FREE's extra history terms: the centre loss and the cycle loss on real features (critic phase), on generated ones.
REFINER_NAMES = ("center", "cycle_real", "cycle_generated")


@dataclass(frozen=True)
class FREESpec(VAEGANSpec):
    """Shapes of a :class:`FeatureFREE`: a :class:`VAEGANSpec` plus the refiner's hidden width."""

    refiner_hidden: int = 4096

    @classmethod
    def from_config(cls, config: Mapping[str, Any], feature_dim: int, attribute_dim: int) -> FREESpec:
        base = VAEGANSpec.from_config(config, feature_dim, attribute_dim)
        return cls(**dataclasses.asdict(base), refiner_hidden=int(config["refiner_hidden"]))


@dataclass(frozen=True)
class FREESettings(VAEGANSettings):
    """FREE's: f-VAEGAN's settings plus the refiner's and the centres' training."""

    passes: int
    refiner_lr: float
    cycle_weight: float
    freeze_refiner: bool
    idle_refiner_step: str
    center_weight: float
    center_margin: float
    incenter_weight: float
    center_other: str
    center_gradients: str


class FeatureFREE(FeatureVAEGAN):
    """A :class:`FeatureVAEGAN` with FREE's feature refiner R and one learnable centre per seen class.

    R is initialised after f-VAEGAN's networks (N(0, 0.02^2), zero biases), then the centres
    from N(0, 1) (the release's ``torch.randn``), all from the init generator. ``refined_features``
    and ``classifier_semantic`` choose what the final classifier sees; ``feature_rng`` draws the
    noise of sampled semantic features.
    """

    def __init__(
        self,
        spec: FREESpec,
        device: torch.device,
        generator: torch.Generator,
        n_seen: int,
        refined_features: str = "hidden_semantic",
        classifier_semantic: str = "sampled",
        feature_rng: torch.Generator | None = None,
    ) -> None:
        super().__init__(spec, device, generator)
        if refined_features not in REFINED_FEATURES:
            raise ValueError(f"refined_features {refined_features!r} is not one of {REFINED_FEATURES}")
        if classifier_semantic not in CLASSIFIER_SEMANTICS:
            raise ValueError(f"classifier_semantic {classifier_semantic!r} is not one of {CLASSIFIER_SEMANTICS}")
        self.refiner = FeatureRefiner(spec.feature_dim, spec.refiner_hidden, spec.attribute_dim, device)
        init_normal_(self.refiner, generator)
        self.centers = nn.Parameter(torch.randn(n_seen, spec.attribute_dim, generator=generator, device=device))
        self.refined_features = refined_features
        self.classifier_semantic = classifier_semantic
        self.feature_rng = feature_rng or torch.Generator(device=device).manual_seed(0)

    def semantic_noise(self, shape: torch.Size, rng: torch.Generator, device: torch.device) -> torch.Tensor:
        """The ``eps ~ N(0, I)`` of :meth:`FeatureRefiner.semantic`."""
        return torch.randn(shape, generator=rng, device=device)

    @torch.no_grad()
    def classifier_features(self, x: torch.Tensor, chunk: int = 8192) -> torch.Tensor:
        """``[x; h; sigmoid(mu + eps * std)]``, ``[x; h]`` or ``x`` (``refined_features``), in chunks.

        With ``classifier_semantic="sampled"`` the noise of all rows is drawn at once from
        ``feature_rng`` (so the features do not depend on ``chunk``); ``"mean"`` uses ``sigmoid(mu)``.
        """
        if self.refined_features == "none":
            return x
        sampled = self.refined_features == "hidden_semantic" and self.classifier_semantic == "sampled"
        eps = self.semantic_noise((len(x), self.spec.attribute_dim), self.feature_rng, x.device) if sampled else None
        parts = []
        for start in range(0, len(x), chunk):
            rows = x[start : start + chunk]
            mu, std, h = self.refiner(rows)
            if self.refined_features == "hidden":
                parts.append(torch.cat((rows, h), 1))
            else:
                noise = None if eps is None else eps[start : start + chunk]
                parts.append(torch.cat((rows, h, FeatureRefiner.semantic(mu, std, noise)), 1))
        return torch.cat(parts) if parts else x.new_empty(0, self.classifier_width())

    def classifier_width(self) -> int:
        """The width of :meth:`classifier_features`' rows."""
        spec = self.spec
        assert isinstance(spec, FREESpec)
        extra = {"hidden_semantic": spec.refiner_hidden + spec.attribute_dim, "hidden": spec.refiner_hidden}
        return spec.feature_dim + extra.get(self.refined_features, 0)


class FREEExtension(VAEGANExtension):
    """FREE's refiner and centres in f-VAEGAN's training (:func:`train_free`)."""

    def __init__(
        self,
        gan: FeatureFREE,
        settings: FREESettings,
        seen_labels: torch.Tensor,
        rng: torch.Generator,
        device: torch.device,
    ) -> None:
        super().__init__(gan)
        self.free, self.settings, self.seen_labels, self.rng = gan, settings, seen_labels, rng
        self.passes = settings.passes
        self.cycling = settings.cycle_weight > 0
        self.opt_r = adam(gan.refiner.parameters(), settings.refiner_lr, settings.beta1, device)
        self.opt_c = adam([gan.centers], settings.lr, settings.beta1, device)  # the release's optimizer_center
        self.auxiliary_names = REFINER_NAMES[:2]
        self.generator_names = REFINER_NAMES[2:] if self.cycling else ()

    def _cycle_loss(self, x: torch.Tensor, att: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(mu, weighted_l1(sigmoid(mu + eps * std), att))`` of the refiner on features ``x``."""
        mu, std, _ = self.free.refiner(x)
        eps = self.free.semantic_noise(mu.shape, self.rng, mu.device)
        return mu, weighted_l1(FeatureRefiner.semantic(mu, std, eps), att)

    def auxiliary_step(self, rows: torch.Tensor, real: torch.Tensor, att: torch.Tensor) -> torch.Tensor:
        """The refiner's and the centres' Adam steps on the real batch: centre loss plus cycle loss."""
        s = self.settings
        mu, cycle = self._cycle_loss(real, att)
        center = triplet_center_loss(
            mu,
            self.seen_labels[rows],
            self.free.centers,
            s.center_margin,
            s.incenter_weight,
            s.center_other,
            self.rng,
        )
        self.opt_r.zero_grad(set_to_none=True)
        if s.center_gradients == "fresh":
            self.opt_c.zero_grad(set_to_none=True)
        (s.center_weight * center + s.cycle_weight * cycle).backward()
        self.opt_r.step()
        self.opt_c.step()
        return torch.stack((center.detach(), cycle.detach()))

    def generator_terms(self, fake: torch.Tensor, att: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        if not self.cycling:
            return super().generator_terms(fake, att)
        self.free.refiner.requires_grad_(not self.settings.freeze_refiner)
        cycle = self._cycle_loss(fake, att)[1]
        return self.settings.cycle_weight * cycle, [cycle]

    def zero_grad(self) -> None:
        self.opt_r.zero_grad(set_to_none=True)

    def step(self) -> None:
        if self.cycling and not self.settings.freeze_refiner:
            self.opt_r.step()
        elif self.settings.idle_refiner_step == "momentum":
            for param in self.free.refiner.parameters():
                param.grad = torch.zeros_like(param)
            self.opt_r.step()
        self.free.refiner.requires_grad_(True)


def train_free(
    gan: FeatureFREE,
    train_x: torch.Tensor,
    train_y: torch.Tensor,
    seen_labels: torch.Tensor,
    attributes: torch.Tensor,
    settings: FREESettings,
    ctx: RunContext,
    rng: torch.Generator,
) -> None:
    """Train FREE: :func:`~gzslbench.methods.gan.model.train_vaegan` with :class:`FREEExtension`.

    ``seen_labels`` are the training rows' classes as indices of the centres (the seen classes in
    increasing id order, the release's ``map_label``). History: f-VAEGAN's terms plus ``center``
    and ``cycle_real`` (critic steps) and, with ``cycle_weight > 0``, ``cycle_generated``, all unweighted.
    """
    if settings.center_other not in CENTER_OTHERS:
        raise ValueError(f"center_other {settings.center_other!r} is not one of {CENTER_OTHERS}")
    if settings.center_gradients not in CENTER_GRADIENTS:
        raise ValueError(f"center_gradients {settings.center_gradients!r} is not one of {CENTER_GRADIENTS}")
    extension = FREEExtension(gan, settings, seen_labels, rng, train_x.device)
    train_vaegan(gan, train_x, train_y, attributes, settings, ctx, rng, extension)
