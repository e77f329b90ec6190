"""Synthetic GZSL datasets shaped like CUB, SUN, AWA1 and AWA2, generated on the fly.

Usage::

    from gzslbench.core.registry import DATASETS

    data = DATASETS.get("synth-cub")().load(scale=0.25, seed=0)

They make every command work on a fresh machine without downloads; they are never used in place
of a real dataset that is missing. The data's ``seed`` is its own and independent of a run's seed,
so all runs on ``synth-cub`` see the same data.

Generative model (all draws from one ``numpy.random.default_rng(seed)``):

1. **Class attributes.** Classes fall into families (about sqrt(C) of them), as birds or scenes
   do. Each family has a sparse, non-negative prototype (most entries small, some near zero);
   a class is its family prototype plus its own sparse non-negative perturbation, clipped to
   ``[0, 1]`` and L2-normalised per class like the real ``att``. Siblings share attributes, so
   knowledge can transfer from seen to unseen classes.
2. **Class means in feature space.** A random two-layer network maps attributes to features,
   ``m_c = W2 (tanh(W1 a_c + b1) + h_c)``: a nonlinear map, so a linear attribute-to-feature model
   cannot fit it exactly. ``h_c`` is a class-specific hidden perturbation the attributes cannot
   explain (fine-grained appearance the annotation misses); it lies along the same directions as
   the attribute signal, which is what makes transfer to unseen classes imperfect. A small
   isotropic class residual ``r_c`` keeps the seen classes apart from each other.
3. **Instances.** ``x = relu(m_c + r_c + W2 g_i + U z_i + e_i)``: a per-instance perturbation
   ``g_i`` of the hidden layer (within-class variation along the same directions that separate
   classes, so similar classes overlap, as poses and lighting make birds overlap), a low-rank
   nuisance ``U z_i`` shared by all classes (background, camera) and a smaller isotropic noise
   ``e_i``. Most of the variance thus lies in a few hundred directions, as in pooled ResNet
   features; the result is non-negative, about half exact zeros, with a mean of about 0.3.

The noise levels and the share of ``h_c`` are set per dataset (:data:`SPECS`): SUN has many seen
classes to learn the map from, so it gets a larger unexplained part.

A model trained on the seen classes therefore reaches a high seen accuracy; unseen accuracy is
clearly above chance but lower, and scores are biased towards the seen classes, as on real data.

Options:
    scale: share of the real instance counts, in (0, 1]; every class keeps at least
        ``MIN_PER_SPLIT`` instances in each of its splits.
    seed: seed of the generated data (not of the run).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from threadpoolctl import threadpool_limits

from gzslbench.core.errors import DataError
from gzslbench.core.registry import register_dataset
from gzslbench.data.dataset import GZSLData, validate
from gzslbench.datasets.base import DatasetAdapter

MIN_PER_SPLIT = 3  # instances per class in each of trainval / test_seen / test_unseen, at any scale
HIDDEN = 256  # hidden width of the random attribute -> feature network
NUISANCE_RANK = 64  # rank of the class-independent instance variation
CHUNK = 4096  # rows generated at a time (bounds memory; fixed so the output never depends on it)

# Knobs of the generative model, tuned so that a closed-form linear model (ESZSL) lands in the
# ranges real ResNet features give: high S, U well above chance but lower, ZSL well above chance.
ATT_GAIN = 2.5  # scale of W1: how nonlinear the tanh layer is
SIGNAL = 3.0  # scale of the attribute-driven class means
RESIDUAL = 0.5  # scale of the class-specific residual the attributes cannot explain
NUISANCE = 2.0  # scale of the shared low-rank instance variation
OFFSET = 0.3  # shift before the ReLU: sets the share of exact zeros
FEATURE_SCALE = 0.125  # overall scale (the ReLU commutes with it): mean feature about 0.3


@dataclass(frozen=True)
class SynthSpec:
    """Shape of one synthetic dataset (class, instance and split counts) and its difficulty.

    ``noise`` is the isotropic per-instance noise scale; ``hidden_residual`` the size of the
    class-specific hidden perturbation and ``instance_hidden`` that of the per-instance one, both
    relative to the attribute-driven hidden activations.
    """

    feature_dim: int
    attribute_dim: int
    n_seen: int
    n_unseen: int
    n_trainval: int
    n_test_seen: int
    n_test_unseen: int
    n_val_classes: int
    defaults_from: str
    noise: float = 8.0
    hidden_residual: float = 0.5
    instance_hidden: float = 0.5

    @property
    def n_classes(self) -> int:
        return self.n_seen + self.n_unseen


SPECS: dict[str, SynthSpec] = {
    "synth-cub": SynthSpec(2048, 312, 150, 50, 7057, 1764, 2967, 50, "cub", 2.0, 0.5, 1.5),
    "synth-sun": SynthSpec(2048, 102, 645, 72, 10320, 2580, 1440, 65, "sun", 2.0, 1.2, 1.5),
    "synth-awa1": SynthSpec(2048, 85, 40, 10, 19832, 4958, 5685, 13, "awa1", 2.0, 0.7, 1.5),
    "synth-awa2": SynthSpec(2048, 85, 40, 10, 23527, 5882, 7913, 13, "awa2", 2.0, 0.7, 1.5),
    "synth-tiny": SynthSpec(64, 16, 10, 5, 240, 60, 100, 3, "cub", 3.0, 0.5, 0.5),
}


def parse_options(name: str, options: dict[str, Any]) -> tuple[float, int]:
    """``(scale, seed)`` from CLI strings or Python values; DataError on bad or unknown options."""
    unknown = sorted(set(options) - {"scale", "seed"})
    if unknown:
        raise DataError(f"{name}: unknown option(s) {', '.join(unknown)}; known: scale, seed")
    try:
        scale = float(options.get("scale", 1.0))
    except (TypeError, ValueError):
        raise DataError(f"{name}: option scale must be a number in (0, 1], got {options['scale']!r}") from None
    if not 0.0 < scale <= 1.0:
        raise DataError(f"{name}: option scale must lie in (0, 1], got {scale}")
    raw_seed = options.get("seed", 0)
    try:
        seed = int(raw_seed)
        if isinstance(raw_seed, float) and raw_seed != seed:
            raise ValueError
    except (TypeError, ValueError):
        raise DataError(f"{name}: option seed must be a non-negative integer, got {raw_seed!r}") from None
    if seed < 0:
        raise DataError(f"{name}: option seed must be a non-negative integer, got {seed}")
    return scale, seed


def allocate(total: int, weights: np.ndarray, minimum: int) -> np.ndarray:
    """Integer counts proportional to ``weights`` that sum to ``max(total, minimum * len(weights))``."""
    n = len(weights)
    total = max(total, minimum * n)
    spare = total - minimum * n
    share = weights / weights.sum() * spare
    counts = np.floor(share).astype(np.int64)
    left = spare - int(counts.sum())
    if left:
        counts[np.argsort(-(share - counts), kind="stable")[:left]] += 1
    return counts + minimum


def class_attributes(rng: np.random.Generator, n_classes: int, dim: int) -> np.ndarray:
    """(C, A) sparse-ish non-negative attributes with family structure, L2-normalised per class."""
    n_families = max(2, round(np.sqrt(n_classes)))
    prototypes = rng.random((n_families, dim)) ** 2 * (rng.random((n_families, dim)) < 0.6)
    family = rng.integers(n_families, size=n_classes)
    own = rng.random((n_classes, dim)) ** 3 * (rng.random((n_classes, dim)) < 0.4)
    att = np.clip(prototypes[family] + 0.6 * own - 0.05, 0.0, 1.0)
    dead = att.sum(axis=1) == 0
    att[dead, rng.integers(dim, size=int(dead.sum()))] = 1.0
    return (att / np.linalg.norm(att, axis=1, keepdims=True)).astype(np.float32)


def class_means(
    rng: np.random.Generator, att: np.ndarray, feature_dim: int, hidden_residual: float
) -> tuple[np.ndarray, np.ndarray]:
    """(C, D) class means (a random tanh network of the attributes plus unexplained residuals) and
    the (HIDDEN, D) map of a unit hidden-layer perturbation into feature space."""
    n_classes, dim = att.shape
    centred = att - att.mean(axis=0)
    spread = float(np.sqrt((centred**2).sum(axis=1).mean())) or 1.0
    w1 = rng.standard_normal((dim, HIDDEN)) * (ATT_GAIN / spread)
    b1 = rng.standard_normal(HIDDEN) * 0.5
    w2 = rng.standard_normal((HIDDEN, feature_dim)) / np.sqrt(HIDDEN)
    hidden = np.tanh(centred @ w1 + b1)
    hidden -= hidden.mean(axis=0)
    hidden_std = float(hidden.std()) or 1.0
    hidden += rng.standard_normal(hidden.shape) * (hidden_residual * hidden_std)
    signal = hidden @ w2
    gain = SIGNAL / (float(signal.std()) or 1.0)
    residual = rng.standard_normal((n_classes, feature_dim)) * RESIDUAL
    return (signal * gain + residual).astype(np.float32), (w2 * (gain * hidden_std)).astype(np.float32)


def generate(name: str, spec: SynthSpec, scale: float = 1.0, seed: int = 0) -> GZSLData:
    """Draw one synthetic dataset (deterministic in ``seed``); see the module docstring.

    NumPy's products run on one BLAS thread here: with more, the BLAS may split a product's sums
    otherwise, and the data's last bits then depend on the process that drew them (seen on an
    AMD EPYC: a command's worker processes and the caller's own drew different data).
    """
    with threadpool_limits(limits=1, user_api="blas"):
        return _generate(name, spec, scale, seed)


def _generate(name: str, spec: SynthSpec, scale: float, seed: int) -> GZSLData:
    rng = np.random.default_rng(seed)
    n_classes = spec.n_classes
    att = class_attributes(rng, n_classes, spec.attribute_dim)
    order = rng.permutation(n_classes)
    seen, unseen = np.sort(order[: spec.n_seen]), np.sort(order[spec.n_seen :])
    val_classes = rng.choice(seen, size=spec.n_val_classes, replace=False)

    size = rng.uniform(0.6, 1.4, size=n_classes)
    n_tv = allocate(round(spec.n_trainval * scale), size[seen], MIN_PER_SPLIT)
    n_ts = allocate(round(spec.n_test_seen * scale), size[seen], MIN_PER_SPLIT)
    n_tu = allocate(round(spec.n_test_unseen * scale), size[unseen], MIN_PER_SPLIT)
    labels = np.concatenate([np.repeat(seen, n_tv), np.repeat(seen, n_ts), np.repeat(unseen, n_tu)])
    part = np.repeat(np.arange(3), [n_tv.sum(), n_ts.sum(), n_tu.sum()])
    by_class = np.lexsort((rng.random(len(labels)), labels))  # grouped by class, splits interleaved
    labels, part = labels[by_class].astype(np.int64), part[by_class]

    means, hidden_map = class_means(rng, att, spec.feature_dim, spec.hidden_residual)
    means -= OFFSET
    means *= FEATURE_SCALE
    hidden_map *= spec.instance_hidden * FEATURE_SCALE
    nuisance = (
        rng.standard_normal((NUISANCE_RANK, spec.feature_dim)) * (NUISANCE * FEATURE_SCALE / np.sqrt(NUISANCE_RANK))
    ).astype(np.float32)
    features = np.empty((len(labels), spec.feature_dim), dtype=np.float32)
    for start in range(0, len(labels), CHUNK):
        stop = min(start + CHUNK, len(labels))
        block = rng.standard_normal((stop - start, spec.feature_dim), dtype=np.float32)
        block *= spec.noise * FEATURE_SCALE
        block += means[labels[start:stop]]
        block += rng.standard_normal((stop - start, NUISANCE_RANK), dtype=np.float32) @ nuisance
        block += rng.standard_normal((stop - start, HIDDEN), dtype=np.float32) @ hidden_map
        np.maximum(block, 0.0, out=block)
        features[start:stop] = block

    trainval = np.flatnonzero(part == 0)
    in_val = np.isin(labels[trainval], val_classes)
    data = GZSLData(
        name=name,
        features=features,
        labels=labels,
        attributes=att,
        trainval=trainval,
        test_seen=np.flatnonzero(part == 1),
        test_unseen=np.flatnonzero(part == 2),
        train=trainval[~in_val],
        val=trainval[in_val],
        class_names=[f"{name}-class-{c:03d}" for c in range(n_classes)],
        defaults_from=spec.defaults_from,
        source=f"synthetic({name}, scale={scale}, seed={seed})",
        extra={"generator": "gzslbench.datasets.synthetic", "scale": scale, "seed": seed},
    )
    return validate(data, data.source)


class SyntheticAdapter(DatasetAdapter):
    """Base of the synthetic adapters: the subclass's ``name`` picks its :data:`SPECS` entry."""

    options: ClassVar[dict[str, Any]] = {"scale": 1.0, "seed": 0}
    reads_data_dir: ClassVar[bool] = False

    def load(self, data_dir: Path | None = None, **options: Any) -> GZSLData:
        """Generate the dataset; ``data_dir`` is ignored (nothing is read from disk)."""
        scale, seed = parse_options(self.name, options)
        return generate(self.name, SPECS[self.name], scale=scale, seed=seed)


@register_dataset("synth-cub")
class SynthCUB(SyntheticAdapter):
    name = "synth-cub"
    description = "Synthetic CUB look-alike: 200 classes (150 seen / 50 unseen), 312-d attributes, 2048-d."
    defaults_from = "cub"


@register_dataset("synth-sun")
class SynthSUN(SyntheticAdapter):
    name = "synth-sun"
    description = "Synthetic SUN look-alike: 717 classes (645 seen / 72 unseen), 102-d attributes, 2048-d."
    defaults_from = "sun"


@register_dataset("synth-awa1")
class SynthAWA1(SyntheticAdapter):
    name = "synth-awa1"
    description = "Synthetic AWA1 look-alike: 50 classes (40 seen / 10 unseen), 85-d attributes, 2048-d."
    defaults_from = "awa1"


@register_dataset("synth-awa2")
class SynthAWA2(SyntheticAdapter):
    name = "synth-awa2"
    description = "Synthetic AWA2 look-alike: 50 classes (40 seen / 10 unseen), 85-d attributes, 2048-d."
    defaults_from = "awa2"


@register_dataset("synth-tiny")
class SynthTiny(SyntheticAdapter):
    name = "synth-tiny"
    description = "Tiny synthetic set for quick tests: 15 classes (10 seen / 5 unseen), 16-d attributes, 64-d."
    defaults_from = "cub"
