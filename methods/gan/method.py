"""The method shared by the feature-generating GANs: pre-train a classifier, train the GAN, generate, classify.

Registered methods (:mod:`gzslbench.methods.gan.registry`) are subclasses that set ``defaults``,
``dataset_defaults`` and their documentation; the pipeline lives here, the networks in
:mod:`~gzslbench.methods.gan.parts`, the GAN loop in :mod:`~gzslbench.methods.gan.model` and the
two softmax classifiers in :mod:`~gzslbench.methods.gan.classifier`.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from gzslbench.methods.base import Method, RunContext, Scores
from gzslbench.methods.gan.classifier import SoftmaxSettings, pretrain_classifier, train_final_classifier
from gzslbench.methods.gan.model import FeatureGAN, GANSettings, GANSpec, generate_features, train_gan

if TYPE_CHECKING:
    from gzslbench.protocol.splits import Split

# Offsets of the independent random streams of a run (see RunContext.generator).
STREAM_INIT, STREAM_PRETRAIN, STREAM_GAN, STREAM_GENERATE, STREAM_CLASSIFIER = 0, 1, 2, 3, 4


class FeatureGeneratingMethod(Method):
    """Generate features of the unseen classes with a conditional GAN, then train a GZSL softmax on them.

    Pipeline of :meth:`predict`, one seed per call:

    1. pre-train a linear softmax over the seen classes on the real (min-max scaled) training
       features, then freeze it (``pretrain_*`` keys; :func:`~gzslbench.methods.gan.classifier.pretrain_classifier`);
    2. train the generator and critic (:func:`~gzslbench.methods.gan.model.train_gan`);
    3. generate ``syn_num`` features per unseen class (:func:`~gzslbench.methods.gan.model.generate_features`);
    4. train a linear softmax over all classes on every real training feature plus the generated
       ones and yield test scores after every epoch (``cls_*`` keys;
       :func:`~gzslbench.methods.gan.classifier.train_final_classifier`).

    Random streams (``ctx.generator(offset)``): 0 network init, 1 pre-trained classifier, 2 GAN
    training, 3 generation, 4 final classifier; everything runs on ``ctx.device``.
    History: ``pretrain`` and ``classifier`` rows (mean NLL per epoch), ``gan`` rows (per GAN
    epoch: ``critic_loss``, ``wasserstein``, ``gradient_penalty``, ``generator_loss``,
    ``adversarial``, ``classification``). Timings: ``pretrain_s``, ``gan_s``, ``gan_epoch_s``,
    ``generate_s``, ``classifier_s``.
    """

    @classmethod
    def check_config(cls, config: Mapping[str, Any]) -> None:
        if int(config["cls_batch_size"]) == 0 and int(config["syn_num"]) == 0:
            raise ValueError(
                "cls_batch_size=0 ties the final classifier's batch size to syn_num, which is 0: set cls_batch_size"
            )

    def predict(self, split: Split, config: Mapping[str, Any], ctx: RunContext) -> Iterator[Scores]:
        device = ctx.device

        def tensor(a: np.ndarray, dtype: torch.dtype = torch.float32) -> torch.Tensor:
            return torch.as_tensor(np.ascontiguousarray(a), dtype=dtype, device=device)

        train_x, train_y, attributes = (
            tensor(split.train_x),
            tensor(split.train_y, torch.long),
            tensor(split.attributes),
        )
        seen, unseen = tensor(split.seen, torch.long), tensor(split.unseen, torch.long)
        # The pre-trained classifier's classes are the seen classes in increasing id order (the reference's map_label).
        seen_index = torch.full((split.n_classes,), -1, dtype=torch.long, device=device)
        seen_index[seen] = torch.arange(len(seen), device=device)
        train_seen_y = seen_index[train_y]

        with ctx.timer("pretrain_s"):
            classifier = pretrain_classifier(
                train_x,
                train_seen_y,
                len(seen),
                SoftmaxSettings.pretrained(config),
                ctx,
                ctx.generator(STREAM_PRETRAIN),
            )
        spec = GANSpec.from_config(config, split.feature_dim, attributes.shape[1])
        gan = FeatureGAN(spec, device, ctx.generator(STREAM_INIT))
        settings = GANSettings.from_config(config)
        with ctx.timer("gan_s"):
            train_gan(
                gan, classifier, train_x, train_y, train_seen_y, attributes, settings, ctx, ctx.generator(STREAM_GAN)
            )
        ctx.timings["gan_epoch_s"] = ctx.timings["gan_s"] / max(settings.epochs, 1)
        ctx.save_model(gan)
        with ctx.timer("generate_s"):
            syn_x, syn_y = generate_features(
                gan, attributes, unseen, int(config["syn_num"]), ctx.generator(STREAM_GENERATE)
            )
        yield from train_final_classifier(
            torch.cat((train_x, syn_x)),
            torch.cat((train_y, syn_y)),
            tensor(split.test_seen_x),
            tensor(split.test_unseen_x),
            split.n_classes,
            SoftmaxSettings.final(config),
            ctx,
            ctx.generator(STREAM_CLASSIFIER),
        )
