"""The method shared by every cross-modal VAE configuration: train the backbone, then the classifier.

Registered methods (:mod:`gzslbench.methods.vae.registry`) are subclasses that only set
``defaults`` and ``dataset_defaults``; all behaviour lives here, in the backbone
(:mod:`~gzslbench.methods.vae.model`) and in the classifier stage
(:mod:`~gzslbench.methods.vae.classifier`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import torch

from gzslbench.methods.base import DataShapes, Method, RunContext, Scores, TrainingDiverged
from gzslbench.methods.vae.classifier import ClassifierSettings, per_class_indices, train_final_classifier
from gzslbench.methods.vae.model import (
    BackboneSpec,
    CrossModalVAE,
    VAESettings,
    backbone_spec,
    train_vae,
)
from gzslbench.methods.vae.parts import draw_noise, random_permutations, reparameterize

if TYPE_CHECKING:
    from gzslbench.protocol.splits import Split

# Offsets of the independent random streams of a run (see RunContext.generator).
STREAM_INIT, STREAM_VAE, STREAM_ENCODE, STREAM_CLASSIFIER = 0, 1, 2, 3


class CrossModalVAEMethod(Method):
    """Two modality VAEs, optionally with IEM, VSA and cross-reconstruction, then a softmax classifier.

    Pipeline: train the VAEs (:func:`~gzslbench.methods.vae.model.train_vae`); encode, WITH
    noise, ``seen_samples`` training images per seen class and ``unseen_samples`` copies of
    each unseen class's attribute vector; encode the test images without noise (``z = mu``,
    after the IEM when present); train the final classifier and yield test scores after every
    classifier epoch.

    Reference quirks, each the default and each a config switch:

    * ``reparam_scale="exp_logvar"``: ``z = mu + exp(logvar) * eps``; ``"exp_half_logvar"`` is the
      textbook ``exp(logvar / 2)``.
    * ``noise="per_sample"``: one noise scalar per sample broadcast over the latent dims;
      ``"per_dim"`` draws independent noise per dimension.
    * ``visual_hidden="reference"``: the visual encoder/decoder widths of the reference code
      (``visual_encoder_hidden``/``visual_decoder_hidden``, e.g. 1560/1665 on CUB for ACMR);
      ``"paper"``: the paper text's 1560/1680.
    * ``iem_shuffle=True``: the IEM permutes the 128 (mu, logvar) channels before its MLP.
    * ``iem_eval_permutation="fresh"``: a new permutation at every IEM call, including the
      encodings after training (test latents, classifier material), which makes test latents
      stochastic; ``"fixed"``: one permutation per modality, drawn once after training, for all
      of those encodings.
    * ``batch_sampling="randperm"``: every VAE iteration draws a fresh batch as
      ``randperm(n)[:batch]`` (distinct within a batch, independent across iterations, so an
      epoch of ``ceil(n / batch)`` iterations does not visit every instance once);
      ``"randint"``: with replacement within a batch too.
    * ``cls_drop_last=True``: the final classifier drops each epoch's last partial batch
      (the reference's ``DataLoader(shuffle=True, drop_last=True)``). Like every layer, it is
      initialised with xavier_uniform (gain 0.5) and zero bias.
    * The classifier material takes, per class, the class's instances in data order repeated
      up to ``seen_samples`` (no random draw), and ``unseen_samples`` copies of each unseen
      class vector; all of it is encoded with noise, the test images with ``z = mu``.
    * Losses are sums over the batch (L1, KL, Wasserstein), the VSA NLL is a batch mean, and
      the distance term is left out of the loss while its weight is 0. The ACMR reference
      script's classifier history skips epoch 1 (``oracle_from_epoch=2``).

    History: one ``vae`` row per VAE epoch with the epoch means of the per-batch summed terms
    (``reconstruction``, ``kl``, ``distance``, ``classification``, ``cross_reconstruction``), their
    weights and the weighted ``total``; one ``classifier`` row per classifier epoch with the
    mean NLL ``loss``. Timings: ``vae_s``, ``vae_epoch_s``, ``encode_s``, ``classifier_s``.
    """

    batched_seeds: ClassVar[bool] = True

    @classmethod
    def speed_probe(
        cls, shapes: DataShapes, config: Mapping[str, Any], device: torch.device, seeds: int
    ) -> Callable[[int], None]:
        """``n`` iterations of the real VAE training loop (:func:`train_vae`), ``seeds`` models batched, random data.

        The cost of an iteration depends on the batch and the widths, not on the values, so the
        data are uniform noise of the run's shapes; the final classifier (a small share of a run)
        is left out.
        """
        spec = backbone_spec(config, shapes.feature_dim, shapes.attribute_dim, shapes.n_classes)
        settings = VAESettings.from_config({**config, "epochs": 1})
        data = torch.Generator(device=device).manual_seed(0)
        rows = shapes.n_train
        train_x = torch.rand(rows, shapes.feature_dim, generator=data, device=device)
        train_y = torch.randint(shapes.n_seen, (rows,), generator=data, device=device)
        attributes = torch.rand(shapes.n_classes, shapes.attribute_dim, generator=data, device=device)
        models = [CrossModalVAE(spec, device, torch.Generator(device=device).manual_seed(k)) for k in range(seeds)]

        def run(iterations: int) -> None:
            n = min(rows, iterations * settings.batch_size)
            ctxs = [RunContext(seed=k, device=device) for k in range(seeds)]
            generators = [torch.Generator(device=device).manual_seed(k + 1) for k in range(seeds)]
            train_vae(models, train_x[:n], train_y[:n], attributes, settings, ctxs, generators)

        return run

    def predict_seeds(
        self, split: Split, config: Mapping[str, Any], ctxs: list[RunContext]
    ) -> Iterator[list[Scores | TrainingDiverged]]:
        """Train one backbone and one classifier per context (stacked across seeds) and yield every seed's scores.

        A single run is a list of one. Every seed draws from its own context's streams in the
        same order whatever the number of seeds. The encoding step runs per seed (one pass,
        cheap). Stage timings are the call's wall time, recorded in every seed's context.
        """
        device = ctxs[0].device
        vae_settings, cls_settings, spec, (train_x, train_y, attributes) = _prepare(split, config, device)
        models = [CrossModalVAE(spec, device, ctx.generator(STREAM_INIT)) for ctx in ctxs]
        first = ctxs[0]
        with first.timer("vae_s"):
            failures = train_vae(
                models,
                train_x,
                train_y,
                attributes,
                vae_settings,
                ctxs,
                [ctx.generator(STREAM_VAE) for ctx in ctxs],
            )
        first.timings["vae_epoch_s"] = first.timings["vae_s"] / max(vae_settings.epochs, 1)
        live = [k for k, failure in enumerate(failures) if failure is None]
        if not live:
            for ctx in ctxs[1:]:
                ctx.timings.update(first.timings)
            yield list(failures)  # type: ignore[arg-type]
            return
        for k in live:
            ctxs[k].save_model(models[k])
        latents = []
        with first.timer("encode_s"), torch.no_grad():
            for k in live:
                latents.append(
                    encode_for_classifier(models[k], split, config, vae_settings, ctxs[k].generator(STREAM_ENCODE))
                )
        train_z, test_seen_z, test_unseen_z = (torch.stack([z[i] for z in latents]) for i in (0, 2, 3))
        for ctx in ctxs[1:]:
            ctx.timings.update(first.timings)
        stage = train_final_classifier(
            train_z,
            latents[0][1],
            test_seen_z,
            test_unseen_z,
            split.n_classes,
            cls_settings,
            [ctxs[k] for k in live],
            [ctxs[k].generator(STREAM_CLASSIFIER) for k in live],
        )
        for entries in stage:
            merged: list[Scores | TrainingDiverged] = list(failures)  # type: ignore[arg-type]
            for k, entry in zip(live, entries, strict=True):
                merged[k] = entry
            yield merged


def _prepare(
    split: Split, config: Mapping[str, Any], device: torch.device
) -> tuple[VAESettings, ClassifierSettings, BackboneSpec, tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """Checked settings, backbone shape and the training tensors (features, labels, class attributes) on ``device``."""

    def tensor(a: np.ndarray, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        return torch.as_tensor(np.ascontiguousarray(a), dtype=dtype, device=device)

    spec = backbone_spec(config, split.feature_dim, split.attributes.shape[1], split.n_classes)
    tensors = (tensor(split.train_x), tensor(split.train_y, torch.long), tensor(split.attributes))
    return VAESettings.from_config(config), ClassifierSettings.from_config(config), spec, tensors


class EvalPermutations:
    """The IEM channel permutation of each encoding call after training.

    ``fresh`` draws a new permutation per call (the reference); ``fixed`` draws one per modality
    once and reuses it; without IEM shuffling there is none.
    """

    def __init__(
        self, shuffle: bool, settings: VAESettings, latent: int, generator: torch.Generator, device: torch.device
    ) -> None:
        self.shuffle = shuffle
        self.channels = 2 * latent
        self.generator = generator
        self.device = device
        self.fixed = None
        if shuffle and settings.iem_eval_permutation == "fixed":
            self.fixed = random_permutations(2, self.channels, generator, device)

    def __call__(self, modality: str) -> torch.Tensor | None:
        if not self.shuffle:
            return None
        if self.fixed is not None:
            return self.fixed[0 if modality == "visual" else 1]
        return random_permutations(1, self.channels, self.generator, self.device)[0]


def encode_for_classifier(
    model: CrossModalVAE,
    split: Split,
    config: Mapping[str, Any],
    settings: VAESettings,
    generator: torch.Generator,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(train_z, train_y, test_seen_z, test_unseen_z) for the final classifier.

    Follows the reference's call order (test unseen, test seen, seen material, unseen material),
    one IEM call per set. Encoder outputs are deterministic per input row and one call uses one
    permutation, so each distinct training instance or class vector is encoded once and its
    (mu, logvar) repeated before the per-row noise is added.
    """
    device = next(model.parameters()).device
    latent = model.spec.latent
    perm = EvalPermutations(model.spec.use_iem and settings.iem_shuffle, settings, latent, generator, device)

    def as_tensor(a: np.ndarray, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        return torch.as_tensor(np.ascontiguousarray(a), dtype=dtype, device=device)

    def encode_mean(modality: str, x: np.ndarray) -> torch.Tensor:
        return model.encode(modality, as_tensor(x), perm(modality))[0]

    def encode_noisy(modality: str, x: np.ndarray, rows: np.ndarray) -> torch.Tensor:
        unique, inverse = np.unique(rows, return_inverse=True)
        mu, logvar = model.encode(modality, as_tensor(x[unique]), perm(modality))
        select = as_tensor(inverse, torch.long)
        mu, logvar = mu.index_select(0, select), logvar.index_select(0, select)
        eps = draw_noise(len(rows), latent, settings.noise, generator, device)
        return reparameterize(mu, logvar, eps, settings.reparam_scale)

    test_unseen_z = encode_mean("visual", split.test_unseen_x)
    test_seen_z = encode_mean("visual", split.test_seen_x)
    seen_rows = per_class_indices(split.train_y, np.unique(split.train_y), int(config["seen_samples"]))
    unseen = np.asarray(split.unseen)
    unseen_rows = per_class_indices(unseen, unseen, int(config["unseen_samples"]))
    parts_z, parts_y = [], []
    if len(seen_rows):
        parts_z.append(encode_noisy("visual", split.train_x, seen_rows))
        parts_y.append(split.train_y[seen_rows])
    if len(unseen_rows):
        parts_z.append(encode_noisy("attribute", split.attributes[unseen], unseen_rows))
        parts_y.append(unseen[unseen_rows])
    train_z = torch.cat(parts_z, dim=0)
    train_y = as_tensor(np.concatenate(parts_y), torch.long)
    return train_z, train_y, test_seen_z, test_unseen_z
