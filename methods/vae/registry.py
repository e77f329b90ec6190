"""The registered cross-modal VAE methods: one backbone, five configurations.

Each method is a row of flags (``use_iem``, ``use_vsa``, ``use_cross_reconstruction``) plus
reference schedules; adding an ablation is one more subclass here. Each class's docstring names its
paper, its loss terms with their weights and where each is computed. ACMR's numbers come from
its public reference script (per dataset: visual decoder width, KL / distance / classify
warm-ups, unseen attribute samples, classifier epochs), CADA-VAE's from its own reference.
"""

from __future__ import annotations

from typing import Any, ClassVar

from gzslbench.core.config import Constraint, OneOf, Range, Schedule
from gzslbench.core.registry import register_method
from gzslbench.methods.vae.method import CrossModalVAEMethod
from gzslbench.methods.vae.model import BATCH_SAMPLINGS, IEM_EVAL_PERMUTATIONS, VISUAL_HIDDEN_CHOICES
from gzslbench.methods.vae.parts import NOISE_KINDS, REPARAM_SCALES

ACMR_CITATION = (
    "Fang et al., Learning Aligned Cross-Modal Representation for Generalized Zero-Shot "
    "Classification (ACMR), AAAI 2022."
)
CADA_CITATION = (
    "Schönfeld et al., Generalized Zero- and Few-Shot Learning via Aligned Variational Autoencoders "
    "(CADA-VAE), CVPR 2019. https://arxiv.org/abs/1812.01784"
)

_COMMON: dict[str, Any] = {
    "epochs": 100,
    "batch_size": 50,
    "latent_size": 64,
    "visual_encoder_hidden": 1560,
    "visual_decoder_hidden": 1665,
    "attribute_encoder_hidden": 1450,
    "attribute_decoder_hidden": 665,
    "iem_hidden": 99,
    "visual_hidden": "reference",
    "use_iem": True,
    "use_vsa": True,
    "use_cross_reconstruction": False,
    "lr": 1.5e-4,
    "iem_lr": 3.3e-5,
    "vsa_lr": 7.4e-3,
    "kl_schedule": [2.555, 0.0, 93.0],
    "distance_schedule": [8.21, 7.0, 22.0],
    "classify_schedule": [310.5, 0.0, 21.0],
    "cross_schedule": [2.37, 21.0, 75.0],
    "reparam_scale": "exp_logvar",
    "noise": "per_sample",
    "iem_shuffle": True,
    "iem_eval_permutation": "fresh",
    "batch_sampling": "randperm",
    "seen_samples": 200,
    "unseen_samples": 390,
    "cls_epochs": 50,
    "cls_lr": 5e-4,
    "cls_beta1": 0.3,
    "cls_batch_size": 32,
    "cls_drop_last": True,
    "oracle_from_epoch": 2,
}

# The valid values of every non-boolean key above, checked before any run (``gzslbench config``
# shows them). ``epochs=0`` is allowed: the classifier then trains on the untrained encoders, the
# baseline that shows what VAE training adds. A factor of 0 switches a loss term off and
# ``unseen_samples=0`` leaves the unseen classes out of the classifier's material.
VAE_RANGES: dict[str, Constraint] = {
    # Upper bounds only catch typos (epochs=1e12 would train until killed): far above any reference
    # setting (at most 300 epochs, batches of 50) and, for batches, above any dataset's size.
    "epochs": Range(ge=0, le=100_000),
    "batch_size": Range(ge=1, le=100_000),
    "latent_size": Range(ge=1),
    "visual_encoder_hidden": Range(ge=1),
    "visual_decoder_hidden": Range(ge=1),
    "attribute_encoder_hidden": Range(ge=1),
    "attribute_decoder_hidden": Range(ge=1),
    "iem_hidden": Range(ge=1),
    "visual_hidden": OneOf(VISUAL_HIDDEN_CHOICES),
    "lr": Range(gt=0),
    "iem_lr": Range(gt=0),
    "vsa_lr": Range(gt=0),
    "kl_schedule": Schedule(),
    "distance_schedule": Schedule(),
    "classify_schedule": Schedule(),
    "cross_schedule": Schedule(),
    "reparam_scale": OneOf(REPARAM_SCALES),
    "noise": OneOf(NOISE_KINDS),
    "iem_eval_permutation": OneOf(IEM_EVAL_PERMUTATIONS),
    "batch_sampling": OneOf(BATCH_SAMPLINGS),
    "seen_samples": Range(ge=1),
    "unseen_samples": Range(ge=0),
    "cls_epochs": Range(ge=1, le=100_000),
    "cls_lr": Range(gt=0),
    "cls_beta1": Range(ge=0, lt=1),
    "cls_batch_size": Range(ge=1, le=100_000),
    "oracle_from_epoch": Range(ge=1, le="cls_epochs"),  # a later epoch would leave nothing to select from
}

ACMR_DATASETS: dict[str, dict[str, Any]] = {
    "cub": {
        "visual_decoder_hidden": 1665,
        "kl_schedule": [2.555, 0.0, 93.0],
        "distance_schedule": [8.21, 7.0, 22.0],
        "classify_schedule": [310.5, 0.0, 21.0],
        "unseen_samples": 390,
        "cls_epochs": 50,
    },
    "sun": {
        "visual_decoder_hidden": 1660,
        "kl_schedule": [2.455, 0.0, 93.0],
        "distance_schedule": [10.1, 7.0, 22.0],
        "classify_schedule": [305.555, 0.0, 22.0],
        "unseen_samples": 410,
        "cls_epochs": 50,
    },
    "awa1": {
        "visual_decoder_hidden": 1680,
        "kl_schedule": [7.0 / 3.0, 0.0, 93.0],
        "distance_schedule": [8.11, 6.0, 23.0],
        "classify_schedule": [290.13, 0.0, 16.0],
        "unseen_samples": 460,
        "cls_epochs": 50,
    },
    "awa2": {
        "visual_decoder_hidden": 1680,
        "kl_schedule": [3.554, 0.0, 93.0],
        "distance_schedule": [12.0, 6.0, 22.0],
        "classify_schedule": [100.5, 0.0, 19.0],
        "unseen_samples": 480,
        "cls_epochs": 300,
    },
}

_CADA: dict[str, Any] = {
    **_COMMON,
    "visual_decoder_hidden": 1660,
    "use_iem": False,
    "use_vsa": False,
    "use_cross_reconstruction": True,
    "kl_schedule": [0.25, 0.0, 93.0],
    "distance_schedule": [8.13, 6.0, 22.0],
    "classify_schedule": [0.0, 0.0, 1.0],
    "cross_schedule": [2.37, 21.0, 75.0],
    "unseen_samples": 400,
    "cls_epochs": 23,
    "cls_lr": 1e-3,
    "cls_beta1": 0.5,
    "oracle_from_epoch": 1,
}

CADA_DATASETS: dict[str, dict[str, Any]] = {
    "cub": {"cls_epochs": 23},
    "sun": {"cls_epochs": 21},
    "awa1": {"cls_epochs": 33},
    "awa2": {"cls_epochs": 29},
}


# APY and FLO have no setting in the ACMR or CADA-VAE reference code: they borrow the nearest one.
NEAREST_DEFAULTS: dict[str, tuple[str, str]] = {
    "apy": (
        "awa1",
        "no reference setting; coarse-grained objects with few classes (20 seen) and 64-d attributes "
        "are nearest to AWA1 (40 seen, 85-d)",
    ),
    "flo": ("cub", "no reference setting; fine-grained flowers (82 seen) are nearest to fine-grained CUB birds"),
}


# Validation grids over the loss weights that ACMR's Figure 5 sweeps: alpha (KL) from 1 to 5, beta
# (alignment) from 1 to 12, lambda (VSA classification) from 285 to 305, on AWA2 from 70 to 90;
# three values per axis (ends and middle). ``key[0]`` is the factor of a [factor, start, end] schedule.
ALIGNMENT_SPACE: dict[str, list[Any]] = {"kl_schedule[0]": [1.0, 3.0, 5.0], "distance_schedule[0]": [1.0, 6.0, 12.0]}
VSA_SPACE: dict[str, list[Any]] = {**ALIGNMENT_SPACE, "classify_schedule[0]": [285.0, 295.0, 305.0]}
VSA_DATASET_SPACE: dict[str, dict[str, list[Any]]] = {"awa2": {"classify_schedule[0]": [70.0, 80.0, 90.0]}}


def _acmr_family(**flags: bool) -> dict[str, Any]:
    return {**_COMMON, **flags}


@register_method("acmr")
class ACMR(CrossModalVAEMethod):
    """Fang et al., "Learning Aligned Cross-Modal Representation for Generalized Zero-Shot
    Classification" (ACMR), AAAI 2022.

    Two VAEs (visual, attribute) with IEM gates and VSA latent classifiers, then a softmax
    classifier on the latents. The VAE loss of a batch is :func:`~gzslbench.methods.vae.model.weighted_total`
    of the terms ``CrossModalVAE.loss_terms`` (``model.py``) computes, each summed over the batch:

    * reconstruction, weight 1: L1 of both modalities, ``losses.l1_sum``;
    * KL, weight ``kl_schedule``: both posteriors against N(0, I), ``losses.kl_divergence``;
    * alignment, weight ``distance_schedule`` (left out while 0): 2-Wasserstein distance between
      the two posteriors (paper Eq. 4), ``losses.wasserstein_distance``;
    * classification (L_Rep), weight ``classify_schedule``: batch-mean NLL of the two
      ``parts.LatentClassifier`` on the latents re-weighted by ``parts.vsa_reweight`` (VSA).

    The IEM (``parts.InformationEnhancement``, in ``CrossModalVAE.encode``) gates mu and logvar
    before every term; z = mu + exp(logvar) * eps (``reparam_scale="exp_logvar"``). Weights ramp
    linearly per epoch (``losses.warmup_weight``), [factor, start, end]:

    ====  ============  ===========  ==============
    data  kl            distance     classify
    ====  ============  ===========  ==============
    CUB   2.555, 0, 93  8.21, 7, 22  310.5, 0, 21
    SUN   2.455, 0, 93  10.1, 7, 22  305.555, 0, 22
    AWA1  7/3, 0, 93    8.11, 6, 23  290.13, 0, 16
    AWA2  3.554, 0, 93  12.0, 6, 22  100.5, 0, 19
    ====  ============  ===========  ==============

    One Adam (amsgrad): VAEs lr 1.5e-4, IEMs 3.3e-5, VSA classifiers 7.4e-3; 100 epochs of batch 50.
    Final classifier (``classifier.train_final_classifier``): mean NLL, Adam lr 5e-4, beta1 0.3,
    batch 32, 50 epochs (AWA2 300), on 200 latents per seen class and 390 / 410 / 460 / 480 per
    unseen class (CUB / SUN / AWA1 / AWA2). Pipeline and reference quirks: :class:`CrossModalVAEMethod`.
    """

    description: ClassVar[str] = "ACMR: two VAEs with IEM gates and VSA latent classifiers (AAAI 2022)."
    reference: ClassVar[str] = ACMR_CITATION
    defaults: ClassVar[dict[str, Any]] = _acmr_family(use_iem=True, use_vsa=True)
    ranges: ClassVar[dict[str, Constraint]] = VAE_RANGES
    dataset_defaults: ClassVar[dict[str, dict[str, Any]]] = ACMR_DATASETS
    nearest_defaults: ClassVar[dict[str, tuple[str, str]]] = NEAREST_DEFAULTS
    search_space: ClassVar[dict[str, list[Any]]] = VSA_SPACE
    dataset_search_space: ClassVar[dict[str, dict[str, list[Any]]]] = VSA_DATASET_SPACE


@register_method("dual-vae")
class DualVAE(CrossModalVAEMethod):
    """Fang et al., ACMR, AAAI 2022, Table 3 ablation "Dual-VAE": ACMR without IEM and VSA.

    VAE loss (``model.weighted_total`` of ``CrossModalVAE.loss_terms``, sums over the batch):
    L1 reconstruction (weight 1, ``losses.l1_sum``) + ``kl_schedule`` x KL (``losses.kl_divergence``)
    + ``distance_schedule`` x Wasserstein alignment (``losses.wasserstein_distance``), with
    z = mu + exp(logvar) * eps (``reparam_scale="exp_logvar"``). Schedules per dataset, optimiser
    and final classifier: ACMR's (:class:`ACMR`); ``classify_schedule`` weighs a zero term.
    """

    description: ClassVar[str] = "ACMR ablation: two VAEs with reconstruction, KL and alignment only."
    reference: ClassVar[str] = ACMR_CITATION + " Table 3."
    defaults: ClassVar[dict[str, Any]] = _acmr_family(use_iem=False, use_vsa=False)
    ranges: ClassVar[dict[str, Constraint]] = VAE_RANGES
    dataset_defaults: ClassVar[dict[str, dict[str, Any]]] = ACMR_DATASETS
    nearest_defaults: ClassVar[dict[str, tuple[str, str]]] = NEAREST_DEFAULTS
    search_space: ClassVar[dict[str, list[Any]]] = ALIGNMENT_SPACE


@register_method("ie-vae")
class IEVAE(CrossModalVAEMethod):
    """Fang et al., ACMR, AAAI 2022, Table 3 ablation "IE-VAE": Dual-VAE plus the IEM gates.

    Loss terms and weights of :class:`DualVAE` (reconstruction, ``kl_schedule`` x KL,
    ``distance_schedule`` x alignment, in ``CrossModalVAE.loss_terms``), computed on mu and logvar
    gated by ``parts.InformationEnhancement`` (in ``CrossModalVAE.encode``); z = mu + exp(logvar) *
    eps (``reparam_scale="exp_logvar"``). Schedules per dataset, optimiser and classifier: ACMR's.
    """

    description: ClassVar[str] = "ACMR ablation: two VAEs plus IEM gates, no VSA."
    reference: ClassVar[str] = ACMR_CITATION + " Table 3."
    defaults: ClassVar[dict[str, Any]] = _acmr_family(use_iem=True, use_vsa=False)
    ranges: ClassVar[dict[str, Constraint]] = VAE_RANGES
    dataset_defaults: ClassVar[dict[str, dict[str, Any]]] = ACMR_DATASETS
    nearest_defaults: ClassVar[dict[str, tuple[str, str]]] = NEAREST_DEFAULTS
    search_space: ClassVar[dict[str, list[Any]]] = ALIGNMENT_SPACE


@register_method("vsa-vae")
class VSAVAE(CrossModalVAEMethod):
    """Fang et al., ACMR, AAAI 2022, Table 3 ablation "VSA-VAE": Dual-VAE plus the VSA classifiers.

    Loss: the terms of :class:`DualVAE` plus ``classify_schedule`` x the batch-mean NLL of the two
    ``parts.LatentClassifier`` on latents re-weighted by ``parts.vsa_reweight`` (all in
    ``CrossModalVAE.loss_terms``, summed by ``model.weighted_total``); z = mu + exp(logvar) * eps
    (``reparam_scale="exp_logvar"``). Schedules per dataset, optimiser and classifier: ACMR's.
    """

    description: ClassVar[str] = "ACMR ablation: two VAEs plus VSA latent classifiers, no IEM."
    reference: ClassVar[str] = ACMR_CITATION + " Table 3."
    defaults: ClassVar[dict[str, Any]] = _acmr_family(use_iem=False, use_vsa=True)
    ranges: ClassVar[dict[str, Constraint]] = VAE_RANGES
    dataset_defaults: ClassVar[dict[str, dict[str, Any]]] = ACMR_DATASETS
    nearest_defaults: ClassVar[dict[str, tuple[str, str]]] = NEAREST_DEFAULTS
    search_space: ClassVar[dict[str, list[Any]]] = VSA_SPACE
    dataset_search_space: ClassVar[dict[str, dict[str, list[Any]]]] = VSA_DATASET_SPACE


@register_method("cada-vae")
class CADAVAE(CrossModalVAEMethod):
    """Schönfeld et al., "Generalized Zero- and Few-Shot Learning via Aligned Variational
    Autoencoders" (CADA-VAE), CVPR 2019.

    Two VAEs, no IEM or VSA. The VAE loss of a batch (``model.weighted_total`` of the terms of
    ``CrossModalVAE.loss_terms``, each summed over the batch), [factor, start, end] the same on
    every dataset, ramped per epoch by ``losses.warmup_weight``:

    * reconstruction, weight 1: L1 of both modalities, ``losses.l1_sum``;
    * cross-reconstruction, ``cross_schedule`` (2.37, 21, 75): L1 of each modality decoded from
      the other modality's latent, ``losses.l1_sum``;
    * KL, ``kl_schedule`` (0.25, 0, 93): ``losses.kl_divergence``;
    * distribution alignment, ``distance_schedule`` (8.13, 6, 22): ``losses.wasserstein_distance``.

    z = mu + exp(logvar) * eps (``reparam_scale="exp_logvar"``). Adam (amsgrad) lr 1.5e-4, 100
    epochs of batch 50. Final classifier (``classifier.train_final_classifier``): mean NLL, Adam
    lr 1e-3, beta1 0.5, batch 32, epochs CUB 23, SUN 21, AWA1 33, AWA2 29 (the last is reported),
    on 200 latents per seen class and 400 per unseen class. Pipeline and reference quirks:
    :class:`CrossModalVAEMethod`.
    """

    description: ClassVar[str] = "CADA-VAE: two VAEs with cross-reconstruction and distribution alignment."
    reference: ClassVar[str] = CADA_CITATION
    defaults: ClassVar[dict[str, Any]] = _CADA
    ranges: ClassVar[dict[str, Constraint]] = VAE_RANGES
    dataset_defaults: ClassVar[dict[str, dict[str, Any]]] = CADA_DATASETS
    nearest_defaults: ClassVar[dict[str, tuple[str, str]]] = NEAREST_DEFAULTS
