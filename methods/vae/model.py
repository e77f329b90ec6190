"""The composable two-VAE backbone and its training loop.

One visual and one attribute VAE share a latent space. Optional parts, each a flag of
:class:`BackboneSpec`: IEM gates on the encoder outputs (ACMR), VSA re-weighting with two latent
classifiers (ACMR), and cross-reconstruction (CADA-VAE). The distribution alignment
(Wasserstein) term is always present and weighted by its schedule.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from gzslbench.core.cuda_graphs import GraphedIteration, cuda_graphs_enabled
from gzslbench.methods.base import RunContext, TrainingDiverged
from gzslbench.methods.vae.hand_step import HandStep
from gzslbench.methods.vae.losses import kl_divergence, l1_sum, warmup_weight, wasserstein_distance
from gzslbench.methods.vae.parts import (
    Decoder,
    Encoder,
    InformationEnhancement,
    LatentClassifier,
    draw_noise,
    init_linear_,
    noise_scale,
    random_permutations,
    vsa_reweight,
)

LOSS_NAMES = ("reconstruction", "kl", "distance", "classification", "cross_reconstruction")
PAPER_VISUAL_HIDDEN = (1560, 1680)
VISUAL_HIDDEN_CHOICES = ("reference", "paper")
BATCH_SAMPLINGS = ("randperm", "randint")
IEM_EVAL_PERMUTATIONS = ("fresh", "fixed")


@dataclass(frozen=True)
class BackboneSpec:
    """Shapes and switchable parts of a :class:`CrossModalVAE`."""

    visual_dim: int
    attribute_dim: int
    n_classes: int
    latent: int
    visual_hidden: tuple[int, int]
    attribute_hidden: tuple[int, int]
    iem_hidden: int
    use_iem: bool
    use_vsa: bool
    use_cross_reconstruction: bool


@dataclass(frozen=True)
class VAESettings:
    """The VAE-stage part of a method config (its valid values are the method's ``ranges``)."""

    epochs: int
    batch_size: int
    lr: float
    iem_lr: float
    vsa_lr: float
    kl_schedule: tuple[float, float, float]
    distance_schedule: tuple[float, float, float]
    classify_schedule: tuple[float, float, float]
    cross_schedule: tuple[float, float, float]
    reparam_scale: str
    noise: str
    iem_shuffle: bool
    iem_eval_permutation: str
    batch_sampling: str

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> VAESettings:
        def schedule(key: str) -> tuple[float, float, float]:
            factor, start, end = (float(v) for v in config[key])
            return factor, start, end

        return cls(
            epochs=int(config["epochs"]),
            batch_size=int(config["batch_size"]),
            lr=float(config["lr"]),
            iem_lr=float(config["iem_lr"]),
            vsa_lr=float(config["vsa_lr"]),
            kl_schedule=schedule("kl_schedule"),
            distance_schedule=schedule("distance_schedule"),
            classify_schedule=schedule("classify_schedule"),
            cross_schedule=schedule("cross_schedule"),
            reparam_scale=str(config["reparam_scale"]),
            noise=str(config["noise"]),
            iem_shuffle=bool(config["iem_shuffle"]),
            iem_eval_permutation=str(config["iem_eval_permutation"]),
            batch_sampling=str(config["batch_sampling"]),
        )


def backbone_spec(config: Mapping[str, Any], visual_dim: int, attribute_dim: int, n_classes: int) -> BackboneSpec:
    """The backbone shape of a method config; ``visual_hidden="paper"`` forces the paper's 1560/1680."""
    visual_hidden = (int(config["visual_encoder_hidden"]), int(config["visual_decoder_hidden"]))
    if config["visual_hidden"] == "paper":
        visual_hidden = PAPER_VISUAL_HIDDEN
    return BackboneSpec(
        visual_dim=visual_dim,
        attribute_dim=attribute_dim,
        n_classes=n_classes,
        latent=int(config["latent_size"]),
        visual_hidden=visual_hidden,
        attribute_hidden=(int(config["attribute_encoder_hidden"]), int(config["attribute_decoder_hidden"])),
        iem_hidden=int(config["iem_hidden"]),
        use_iem=bool(config["use_iem"]),
        use_vsa=bool(config["use_vsa"]),
        use_cross_reconstruction=bool(config["use_cross_reconstruction"]),
    )


class CrossModalVAE(nn.Module):
    """Visual and attribute VAEs with optional IEM gates and VSA latent classifiers."""

    def __init__(self, spec: BackboneSpec, device: torch.device, generator: torch.Generator) -> None:
        super().__init__()
        self.spec = spec
        latent = spec.latent
        self.visual_encoder = Encoder(spec.visual_dim, spec.visual_hidden[0], latent, device)
        self.attribute_encoder = Encoder(spec.attribute_dim, spec.attribute_hidden[0], latent, device)
        self.visual_decoder = Decoder(latent, spec.visual_hidden[1], spec.visual_dim, device)
        self.attribute_decoder = Decoder(latent, spec.attribute_hidden[1], spec.attribute_dim, device)
        self.visual_iem = InformationEnhancement(latent, spec.iem_hidden, device) if spec.use_iem else None
        self.attribute_iem = InformationEnhancement(latent, spec.iem_hidden, device) if spec.use_iem else None
        self.visual_classifier = LatentClassifier(latent, spec.n_classes, device) if spec.use_vsa else None
        self.attribute_classifier = LatentClassifier(latent, spec.n_classes, device) if spec.use_vsa else None
        init_linear_(self, generator)

    def encode(
        self, modality: str, x: torch.Tensor, perm: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(mu, logvar) of ``modality`` ("visual" | "attribute"), gated by the IEM when present."""
        encoder, iem = (
            (self.visual_encoder, self.visual_iem)
            if modality == "visual"
            else (self.attribute_encoder, self.attribute_iem)
        )
        mu, logvar = encoder(x)
        if iem is not None:
            mu, logvar = iem(mu, logvar, perm)
        return mu, logvar

    def forward(
        self,
        x: torch.Tensor,
        a: torch.Tensor,
        y: torch.Tensor,
        eps: torch.Tensor,
        perms: torch.Tensor | None,
        reparam_scale: str,
    ) -> torch.Tensor:
        """The (5,) stacked :meth:`loss_terms`: the call ``torch.func.functional_call`` makes for stacked seeds."""
        return torch.stack(self.loss_terms(x, a, y, eps, perms, reparam_scale))

    def parameter_groups(self, lr: float, iem_lr: float, vsa_lr: float) -> list[dict[str, Any]]:
        """The reference's Adam groups: VAEs at ``lr``, IEMs at ``iem_lr``, VSA classifiers at ``vsa_lr``."""
        vae = [
            *self.visual_encoder.parameters(),
            *self.attribute_encoder.parameters(),
            *self.visual_decoder.parameters(),
            *self.attribute_decoder.parameters(),
        ]
        groups = [{"params": vae, "lr": lr}]
        if self.visual_iem is not None and self.attribute_iem is not None:
            groups.append({"params": [*self.visual_iem.parameters(), *self.attribute_iem.parameters()], "lr": iem_lr})
        if self.visual_classifier is not None and self.attribute_classifier is not None:
            groups.append(
                {
                    "params": [*self.visual_classifier.parameters(), *self.attribute_classifier.parameters()],
                    "lr": vsa_lr,
                }
            )
        return groups

    def loss_terms(
        self,
        x: torch.Tensor,
        a: torch.Tensor,
        y: torch.Tensor,
        eps: torch.Tensor,
        perms: torch.Tensor | None,
        reparam_scale: str,
    ) -> list[torch.Tensor]:
        """Unweighted loss terms of one batch, in :data:`LOSS_NAMES` order.

        ``eps`` is (2, n, 1 or latent) noise (visual, attribute); ``perms`` is (2, 2*latent) IEM
        channel permutations or None. Terms of parts that are switched off are zero tensors.
        """
        mu_x, logvar_x = self.encode("visual", x, None if perms is None else perms[0])
        mu_a, logvar_a = self.encode("attribute", a, None if perms is None else perms[1])
        var_x, var_a = logvar_x.exp(), logvar_a.exp()
        z_x = mu_x + noise_scale(logvar_x, reparam_scale, var_x) * eps[0]
        z_a = mu_a + noise_scale(logvar_a, reparam_scale, var_a) * eps[1]
        n = x.shape[0]
        if self.spec.use_cross_reconstruction:
            # One decoder pass over both latents: a 2n-row product is faster than two n-row ones.
            x_hat = self.visual_decoder(torch.cat((z_x, z_a)))
            a_hat = self.attribute_decoder(torch.cat((z_a, z_x)))
        else:
            x_hat, a_hat = self.visual_decoder(z_x), self.attribute_decoder(z_a)
        reconstruction = l1_sum(x_hat[:n], x) + l1_sum(a_hat[:n], a)
        kl = kl_divergence(mu_x, logvar_x, var_x) + kl_divergence(mu_a, logvar_a, var_a)
        distance = wasserstein_distance(mu_x, logvar_x, mu_a, logvar_a, var_x, var_a)
        zero = reconstruction.new_zeros(())
        classification = zero
        if self.visual_classifier is not None and self.attribute_classifier is not None:
            zx_aligned, za_aligned = vsa_reweight(z_x, z_a)
            classification = F.nll_loss(self.visual_classifier(zx_aligned), y) + F.nll_loss(
                self.attribute_classifier(za_aligned), y
            )
        cross = zero
        if self.spec.use_cross_reconstruction:
            cross = l1_sum(x_hat[n:], x) + l1_sum(a_hat[n:], a)
        return [reconstruction, kl, distance, classification, cross]


def epoch_weights(settings: VAESettings, epoch: int) -> dict[str, float]:
    """Warm-up weights of the KL, distance, classification and cross terms at 0-based ``epoch``."""
    return {
        "kl": warmup_weight(settings.kl_schedule, epoch),
        "distance": warmup_weight(settings.distance_schedule, epoch),
        "classification": warmup_weight(settings.classify_schedule, epoch),
        "cross_reconstruction": warmup_weight(settings.cross_schedule, epoch),
    }


class FusedAMSGrad:
    """Adam with amsgrad for the VAE stage: ``torch.optim.Adam(amsgrad=True, fused=True)``'s kernel, less overhead.

    Calls the same fused kernel once per parameter group with one shared step counter per group
    (all parameters of a group are stepped together), which skips ``torch.optim.Adam``'s
    per-step bookkeeping (per-parameter step tensors, grouping by device). Parameters without a
    gradient are not allowed: every part of the backbone takes part in every loss.
    """

    def __init__(self, groups: Sequence[dict[str, Any]], betas: tuple[float, float], eps: float) -> None:
        self.groups = []
        for group in groups:
            params = list(group["params"])
            self.groups.append(
                {
                    "params": params,
                    "lr": float(group["lr"]),
                    "exp_avg": [torch.zeros_like(p) for p in params],
                    "exp_avg_sq": [torch.zeros_like(p) for p in params],
                    "max_exp_avg_sq": [torch.zeros_like(p) for p in params],
                    "step": torch.zeros((), device=params[0].device),
                }
            )
        self.betas, self.eps = betas, eps

    def zero_grad(self, set_to_none: bool = True) -> None:
        for group in self.groups:
            for p in group["params"]:
                p.grad = None

    @torch.no_grad()
    def step(self) -> None:
        for group in self.groups:
            grads = [p.grad for p in group["params"]]
            if any(g is None for g in grads):
                raise RuntimeError("FusedAMSGrad needs a gradient for every parameter")
            group["step"] += 1
            torch._fused_adam_(
                group["params"],
                grads,
                group["exp_avg"],
                group["exp_avg_sq"],
                group["max_exp_avg_sq"],
                [group["step"]] * len(grads),
                amsgrad=True,
                lr=group["lr"],
                beta1=self.betas[0],
                beta2=self.betas[1],
                weight_decay=0.0,
                eps=self.eps,
                maximize=False,
            )


def make_optimizer(groups: Sequence[dict[str, Any]], device: torch.device) -> FusedAMSGrad | torch.optim.Adam:
    """Adam with amsgrad and betas (0.9, 0.999), eps 1e-8: the fused kernel where the device has it."""
    if hasattr(torch, "_fused_adam_") and device.type in ("cpu", "cuda"):
        return FusedAMSGrad(groups, betas=(0.9, 0.999), eps=1e-8)
    return torch.optim.Adam(list(groups), betas=(0.9, 0.999), eps=1e-8, amsgrad=True)


def batch_indices(
    n: int, batch_size: int, iterations: int, sampling: str, generator: torch.Generator, device: torch.device
) -> torch.Tensor:
    """(iterations, batch) training indices of one epoch, each row a fresh independent batch.

    ``randperm``: the reference's ``torch.randperm(n)[:batch]`` per iteration (distinct within a
    batch); ``randint``: uniform with replacement within a batch too.
    """
    if sampling == "randint":
        return torch.randint(n, (iterations, batch_size), generator=generator, device=device)
    keys = torch.rand((iterations, n), generator=generator, device=device)
    return keys.topk(min(batch_size, n), dim=1).indices


def weighted_total(terms: torch.Tensor, weights: Mapping[str, float], cross: bool) -> torch.Tensor:
    """The minimised loss from terms (..., 5) in :data:`LOSS_NAMES` order.

    ``reconstruction + kl_weight * kl + classification_weight * classification``, plus
    ``distance_weight * distance`` once that weight is above 0 and ``cross_reconstruction_weight *
    cross_reconstruction`` where the backbone has cross-reconstruction.
    """
    reconstruction, kl, distance, classification, cross_rec = terms.unbind(-1)
    total = reconstruction + weights["kl"] * kl + weights["classification"] * classification
    if weights["distance"] > 0:
        total = total + weights["distance"] * distance
    if cross:
        total = total + weights["cross_reconstruction"] * cross_rec
    return total


def train_vae(
    models: Sequence[CrossModalVAE],
    train_x: torch.Tensor,
    train_y: torch.Tensor,
    attributes: torch.Tensor,
    settings: VAESettings,
    ctxs: Sequence[RunContext],
    generators: Sequence[torch.Generator],
) -> list[TrainingDiverged | None]:
    """Train ``models`` (one per seed, K >= 1) for ``settings.epochs`` epochs of ``ceil(n / batch)`` random batches.

    Returns each seed's divergence (None: trained). Logs one ``vae`` history row per epoch
    (1-based) in each seed's context: the epoch means of the per-batch summed loss terms, their
    weights, and the weighted ``total`` (:func:`weighted_total`) that was minimised.

    For K > 1 the models' parameters are stacked (``torch.func.stack_module_state``), the loss of
    every seed is evaluated by ``vmap`` over ``functional_call``, and one AMSGrad step updates all
    stacked parameters (Adam is elementwise, so this is each seed's own update); the trained
    weights are copied back into ``models``. A lone seed skips the stacking and calls its module
    directly. Each seed draws its batches, noise and IEM permutations from its own generator, in
    the same order whatever K, so its history matches a run alone up to float rounding. Seeds do
    not interact: a seed whose loss turns non-finite is reported and its (meaningless) slice
    trains on while the others finish. On CUDA with graphs asked for, an iteration is replayed as
    a CUDA graph (:class:`~gzslbench.core.cuda_graphs.GraphedIteration`, captured again when the
    epoch's loss weights change).
    """
    device = train_x.device
    n = train_x.shape[0]
    iterations = math.ceil(n / settings.batch_size)
    batch = min(settings.batch_size, n)
    spec = models[0].spec
    latent = spec.latent
    for model in models:
        model.train()
    shuffle = spec.use_iem and settings.iem_shuffle
    if len(models) == 1:
        # A lone seed trains its own module's parameters, called directly: vmap over one stacked seed
        # made ACMR's VAE epoch at CUB shapes 9-12% slower (1 thread, 2-core Xeon).
        params = dict(models[0].named_parameters())

        def all_terms(p: Any, x: torch.Tensor, a: torch.Tensor, y: torch.Tensor, e: torch.Tensor, perm: Any) -> Any:
            return models[0](x[0], a[0], y[0], e[0], None if perm is None else perm[0], settings.reparam_scale)[None]

    else:
        params, _ = torch.func.stack_module_state(list(models))
        template = copy.deepcopy(models[0]).to("meta")

        def seed_terms(
            p: dict[str, torch.Tensor], x: torch.Tensor, a: torch.Tensor, y: torch.Tensor, e: torch.Tensor, perm: Any
        ) -> torch.Tensor:
            return torch.func.functional_call(template, p, (x, a, y, e, perm, settings.reparam_scale))

        all_terms = torch.func.vmap(seed_terms, in_dims=(0, 0, 0, 0, 0, 0 if shuffle else None))
    names = {id(p): name for name, p in models[0].named_parameters()}
    groups = [
        {"params": [params[names[id(p)]] for p in group["params"]], "lr": group["lr"]}
        for group in models[0].parameter_groups(settings.lr, settings.iem_lr, settings.vsa_lr)
    ]
    optimizer = make_optimizer(groups, device)
    hand_step = HandStep(models[0], settings.reparam_scale) if len(models) == 1 else None
    failures: list[TrainingDiverged | None] = [None] * len(models)
    sums = torch.zeros(len(models), len(LOSS_NAMES) + 1, device=device)
    weights = epoch_weights(settings, 0)

    def iteration(rows: torch.Tensor, eps: torch.Tensor, perm: torch.Tensor | None) -> None:
        """One training step of every seed on its batch ``rows`` (K, batch); the terms added to ``sums``."""
        y = train_y[rows]
        x, a = train_x[rows], attributes[y]
        if hand_step is not None:  # writes the gradients of the weighted total as it computes the terms
            terms = hand_step(x[0], a[0], y[0], eps[0], None if perm is None else perm[0], weights)[None]
        else:
            terms = all_terms(params, x, a, y, eps, perm)
        total = weighted_total(terms, weights, spec.use_cross_reconstruction)
        if hand_step is None:
            optimizer.zero_grad(set_to_none=True)
            total.sum().backward()
        optimizer.step()
        sums.add_(torch.cat((terms, total.unsqueeze(1)), dim=1).detach())

    step = GraphedIteration(iteration, capture=cuda_graphs_enabled(device))
    for epoch in ctxs[0].progress_bar(range(settings.epochs), "VAE epochs"):
        weights = epoch_weights(settings, epoch)
        draws = []
        for generator in generators:
            idx = batch_indices(n, batch, iterations, settings.batch_sampling, generator, device)
            eps = draw_noise(batch, latent, settings.noise, generator, device, leading=(iterations, 2))
            perms = random_permutations(2, 2 * latent, generator, device, leading=(iterations,)) if shuffle else None
            draws.append((idx, eps, perms))
        idx = torch.stack([d[0] for d in draws], dim=1)
        eps = torch.stack([d[1] for d in draws], dim=1)
        perms = torch.stack([d[2] for d in draws], dim=1) if shuffle else None
        sums.zero_()
        key = tuple(weights.values())  # the graph's constants: a new capture when they change
        for it in range(iterations):
            step(key, idx[it], eps[it], None if perms is None else perms[it])
        means = (sums / iterations).tolist()
        for k, ctx in enumerate(ctxs):
            if failures[k] is not None:
                continue
            values = dict(zip((*LOSS_NAMES, "total"), means[k], strict=True))
            try:
                ctx.log("vae", epoch + 1, **values, **{f"{name}_weight": v for name, v in weights.items()})
            except TrainingDiverged as exc:
                failures[k] = exc
        if all(f is not None for f in failures):
            break
    with torch.no_grad():
        for k, model in enumerate(models):
            for name, p in model.named_parameters():
                if p is not params[name]:  # stacked seeds: seed k's slice back into its module
                    p.copy_(params[name][k])
            model.eval()
    return failures
