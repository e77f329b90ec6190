"""The methods shared by the feature-generating GANs: train a generator, generate unseen features, classify.

Registered methods (:mod:`gzslbench.methods.gan.registry`) are subclasses that set ``defaults``,
``dataset_defaults`` and their documentation. :class:`FeatureGeneratingMethod` holds the pipeline
around the generator; :class:`CLSWGANMethod` (f-CLSWGAN), :class:`VAEGANMethod` (f-VAEGAN) and
:class:`TFVAEGANMethod` (TF-VAEGAN) and :class:`FREEMethod` (FREE) train it;
:class:`LSRGANMethod` (LsrGAN) trains a classifier with its generator and scores with it. The networks live in
:mod:`~gzslbench.methods.gan.parts`, the training loops in :mod:`~gzslbench.methods.gan.model` and
the two softmax classifiers in :mod:`~gzslbench.methods.gan.classifier`.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from gzslbench.methods.base import Method, RunContext, Scores
from gzslbench.methods.gan.classifier import (
    SoftmaxSettings,
    pretrain_classifier,
    pretrain_trainable_classifier,
    train_final_classifier,
)
from gzslbench.methods.gan.free import FeatureFREE, FREESettings, FREESpec, train_free
from gzslbench.methods.gan.lsrgan import ClassRelations, LSRGANModel, LSRGANSettings, lsrgan_epochs
from gzslbench.methods.gan.model import (
    FeatureGAN,
    FeatureTFVAEGAN,
    FeatureVAEGAN,
    GANSettings,
    GANSpec,
    TFVAEGANSettings,
    TFVAEGANSpec,
    VAEGANSettings,
    VAEGANSpec,
    generate_features,
    train_gan,
    train_tfvaegan,
    train_vaegan,
)

if TYPE_CHECKING:
    from gzslbench.protocol.splits import Split

# LsrGAN's GZSL classifier: the one trained with the generator (the release's scripts) or f-CLSWGAN's final softmax.
FINAL_CLASSIFIERS = ("joint", "softmax")
# Offsets of the independent random streams of a run (see RunContext.generator).
STREAM_INIT, STREAM_PRETRAIN, STREAM_GAN, STREAM_GENERATE, STREAM_CLASSIFIER, STREAM_FEATURES = 0, 1, 2, 3, 4, 5


@dataclass(frozen=True)
class TrainingData:
    """A split's training material as tensors on the run's device."""

    x: torch.Tensor  # (n, feature_dim) min-max scaled real seen features
    y: torch.Tensor  # (n,) their class ids (rows of ``attributes``)
    attributes: torch.Tensor  # (n_classes, attribute_dim)
    seen: torch.Tensor  # seen class ids, increasing


class FeatureGeneratingMethod(Method):
    """Generate features of the unseen classes with a conditional generator, then train a GZSL softmax on them.

    Pipeline of :meth:`predict`, one seed per call:

    1. train the generator (:meth:`train_generator`, the subclass's part; its adversarial loop timed as ``gan_s``);
    2. generate ``syn_num`` features per unseen class (:func:`~gzslbench.methods.gan.model.generate_features`);
    3. train a linear softmax over all classes on every real training feature plus the generated
       ones and yield test scores after every epoch (``cls_*`` keys;
       :func:`~gzslbench.methods.gan.classifier.train_final_classifier`); train and test features
       pass through the model's ``classifier_features`` first (themselves, or TF-VAEGAN's
       discriminative features).

    Random streams (``ctx.generator(offset)``): 0 network init, 1 pre-trained classifier, 2
    generator training, 3 generation, 4 final classifier, 5 the classifier's features (FREE's
    sampled ones); everything runs on ``ctx.device``.
    History: ``gan`` rows (per epoch, the loop's terms: :func:`~gzslbench.methods.gan.model.train_adversarial`)
    and ``classifier`` rows (mean NLL per epoch). Timings: ``gan_s``, ``gan_epoch_s``,
    ``generate_s``, ``classifier_s``.
    """

    @classmethod
    def check_config(cls, config: Mapping[str, Any]) -> None:
        if int(config["cls_batch_size"]) == 0 and int(config["syn_num"]) == 0:
            raise ValueError(
                "cls_batch_size=0 ties the final classifier's batch size to syn_num, which is 0: set cls_batch_size"
            )

    def train_generator(self, data: TrainingData, config: Mapping[str, Any], ctx: RunContext) -> tuple[FeatureGAN, int]:
        """Build and train the generator on ``data``; return it and the number of epochs it trained."""
        raise NotImplementedError

    def predict(self, split: Split, config: Mapping[str, Any], ctx: RunContext) -> Iterator[Scores]:
        data = training_data(split, ctx.device)
        gan, epochs = self.train_generator(data, config, ctx)
        ctx.timings["gan_epoch_s"] = ctx.timings["gan_s"] / max(epochs, 1)
        ctx.save_model(gan)
        yield from classify_generated(gan, data, split, config, ctx)


def as_tensor(a: np.ndarray, device: torch.device, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """``a`` as a contiguous tensor on ``device``."""
    return torch.as_tensor(np.ascontiguousarray(a), dtype=dtype, device=device)


def training_data(split: Split, device: torch.device) -> TrainingData:
    """The split's training features, labels, class attributes and seen classes on ``device``."""
    return TrainingData(
        as_tensor(split.train_x, device),
        as_tensor(split.train_y, device, torch.long),
        as_tensor(split.attributes, device),
        as_tensor(split.seen, device, torch.long),
    )


def seen_labels(data: TrainingData) -> torch.Tensor:
    """The training rows' classes as indices of the seen classes in increasing id order (``map_label``)."""
    seen_index = torch.full((len(data.attributes),), -1, dtype=torch.long, device=data.x.device)
    seen_index[data.seen] = torch.arange(len(data.seen), device=data.x.device)
    return seen_index[data.y]


def classify_generated(
    gan: FeatureGAN, data: TrainingData, split: Split, config: Mapping[str, Any], ctx: RunContext
) -> Iterator[Scores]:
    """Steps 2 and 3 of :class:`FeatureGeneratingMethod`: generate unseen features, train the final softmax, score."""
    device = data.x.device
    with ctx.timer("generate_s"):
        syn_x, syn_y = generate_features(
            gan,
            data.attributes,
            as_tensor(split.unseen, device, torch.long),
            int(config["syn_num"]),
            ctx.generator(STREAM_GENERATE),
        )
    features = gan.classifier_features
    yield from train_final_classifier(
        features(torch.cat((data.x, syn_x))),
        torch.cat((data.y, syn_y)),
        features(as_tensor(split.test_seen_x, device)),
        features(as_tensor(split.test_unseen_x, device)),
        split.n_classes,
        SoftmaxSettings.final(config),
        ctx,
        ctx.generator(STREAM_CLASSIFIER),
    )


class CLSWGANMethod(FeatureGeneratingMethod):
    """f-CLSWGAN's generator: pre-train a frozen seen-class softmax, then the WGAN-GP with its classification loss.

    1. pre-train a linear softmax over the seen classes on the real (min-max scaled) training
       features, then freeze it (``pretrain_*`` keys; :func:`~gzslbench.methods.gan.classifier.pretrain_classifier`;
       ``pretrain`` history rows, timing ``pretrain_s``);
    2. train the generator and critic (:func:`~gzslbench.methods.gan.model.train_gan`; ``gan``
       rows: ``critic_loss``, ``wasserstein``, ``gradient_penalty``, ``generator_loss``,
       ``adversarial``, ``classification``).
    """

    def train_generator(self, data: TrainingData, config: Mapping[str, Any], ctx: RunContext) -> tuple[FeatureGAN, int]:
        device = data.x.device
        # The pre-trained classifier's classes are the seen classes in increasing id order.
        train_seen_y = seen_labels(data)
        with ctx.timer("pretrain_s"):
            classifier = pretrain_classifier(
                data.x,
                train_seen_y,
                len(data.seen),
                SoftmaxSettings.pretrained(config),
                ctx,
                ctx.generator(STREAM_PRETRAIN),
            )
        spec = GANSpec.from_config(config, data.x.shape[1], data.attributes.shape[1])
        gan = FeatureGAN(spec, device, ctx.generator(STREAM_INIT))
        settings = GANSettings.from_config(config)
        with ctx.timer("gan_s"):
            train_gan(
                gan, classifier, data.x, data.y, train_seen_y, data.attributes, settings, ctx, ctx.generator(STREAM_GAN)
            )
        return gan, settings.epochs


class VAEGANMethod(FeatureGeneratingMethod):
    """f-VAEGAN's generator: the decoder of a conditional VAE trained jointly with a WGAN-GP critic.

    :func:`~gzslbench.methods.gan.model.train_vaegan`; ``gan`` history rows: ``critic_loss``,
    ``wasserstein``, ``gradient_penalty``, ``generator_loss``, ``adversarial``,
    ``reconstruction``, ``kl`` (and ``gp_weight`` with ``gp_schedule="adaptive"``).
    """

    def train_generator(self, data: TrainingData, config: Mapping[str, Any], ctx: RunContext) -> tuple[FeatureGAN, int]:
        spec = VAEGANSpec.from_config(config, data.x.shape[1], data.attributes.shape[1])
        gan = FeatureVAEGAN(spec, data.x.device, ctx.generator(STREAM_INIT))
        settings = VAEGANSettings.from_config(config)
        with ctx.timer("gan_s"):
            train_vaegan(gan, data.x, data.y, data.attributes, settings, ctx, ctx.generator(STREAM_GAN))
        return gan, settings.epochs


class TFVAEGANMethod(VAEGANMethod):
    """TF-VAEGAN's generator: f-VAEGAN's plus a semantic decoder and a feedback module, and discriminative features.

    :func:`~gzslbench.methods.gan.model.train_tfvaegan`; features are generated with feedback at
    ``feedback_generation_weight`` (when ``feedback_loop=2``) and the final classifier sees
    ``decoder_features``. ``gan`` history rows: f-VAEGAN's plus ``decoder_real`` and
    ``decoder_generated`` while the decoder trains.
    """

    def train_generator(self, data: TrainingData, config: Mapping[str, Any], ctx: RunContext) -> tuple[FeatureGAN, int]:
        spec = TFVAEGANSpec.from_config(config, data.x.shape[1], data.attributes.shape[1])
        settings = TFVAEGANSettings.from_config(config)
        generation_weight = float(config["feedback_generation_weight"]) if settings.feedback_loop == 2 else 0.0
        gan = FeatureTFVAEGAN(
            spec, data.x.device, ctx.generator(STREAM_INIT), generation_weight, str(config["decoder_features"])
        )
        with ctx.timer("gan_s"):
            train_tfvaegan(gan, data.x, data.y, data.attributes, settings, ctx, ctx.generator(STREAM_GAN))
        return gan, settings.epochs


class FREEMethod(VAEGANMethod):
    """FREE's generator: f-VAEGAN's trained with a feature refiner and class centres, and refined features.

    :func:`~gzslbench.methods.gan.free.train_free`; the final classifier sees ``refined_features``
    (noise of its sampled part from stream 5). ``gan`` history rows: f-VAEGAN's plus ``center``,
    ``cycle_real`` and ``cycle_generated``.
    """

    def train_generator(self, data: TrainingData, config: Mapping[str, Any], ctx: RunContext) -> tuple[FeatureGAN, int]:
        spec = FREESpec.from_config(config, data.x.shape[1], data.attributes.shape[1])
        settings = FREESettings.from_config(config)
        gan = FeatureFREE(
            spec,
            data.x.device,
            ctx.generator(STREAM_INIT),
            len(data.seen),
            str(config["refined_features"]),
            str(config["classifier_semantic"]),
            ctx.generator(STREAM_FEATURES),
        )
        with ctx.timer("gan_s"):
            train_free(
                gan, data.x, data.y, seen_labels(data), data.attributes, settings, ctx, ctx.generator(STREAM_GAN)
            )
        return gan, settings.epochs


class LSRGANMethod(FeatureGeneratingMethod):
    """LsrGAN: f-CLSWGAN's generator trained with class centroids and the SR-loss, and a classifier trained with it.

    1. pre-train a linear softmax over **all** classes on the real seen features (``pretrain_*``;
       ``pretrain`` rows, ``pretrain_s``); it keeps training afterwards, with the same Adam;
    2. train generator, critic and classifier (:func:`~gzslbench.methods.gan.lsrgan.lsrgan_epochs`;
       ``gan`` rows: ``LSRGAN_LOSS_NAMES``);
    3. ``final_classifier="joint"`` (the release's scripts, ``--no_classifier True``): score the
       test set with that classifier after every GAN epoch, so ``last``, ``val`` and ``oracle``
       choose among GAN epochs (timings ``gan_s``, ``classifier_s``: the scoring);
       ``"softmax"``: after the last epoch, :func:`classify_generated` as for f-CLSWGAN (``syn_num``
       generated features per unseen class, the final softmax, ``cls_*`` keys).
    """

    def predict(self, split: Split, config: Mapping[str, Any], ctx: RunContext) -> Iterator[Scores]:
        device = ctx.device
        data = training_data(split, device)
        settings = LSRGANSettings.from_config(config)
        unseen = as_tensor(split.unseen, device, torch.long)
        pool = as_tensor(split.test_unseen_y, device, torch.long) if settings.unseen_draw == "test_labels" else unseen
        with ctx.timer("pretrain_s"):
            classifier, optimizer = pretrain_trainable_classifier(
                data.x, data.y, split.n_classes, SoftmaxSettings.pretrained(config), ctx, ctx.generator(STREAM_PRETRAIN)
            )
        relations = ClassRelations.build(data.x, data.y, data.attributes, data.seen, unseen, settings.neighbours)
        spec = GANSpec.from_config(config, data.x.shape[1], data.attributes.shape[1])
        gan = FeatureGAN(spec, device, ctx.generator(STREAM_INIT))
        epochs = lsrgan_epochs(
            gan,
            classifier,
            optimizer,
            relations,
            data.x,
            data.y,
            data.attributes,
            pool,
            settings,
            ctx,
            ctx.generator(STREAM_GAN),
        )
        joint = config["final_classifier"] == "joint"
        test_seen_x, test_unseen_x = as_tensor(split.test_seen_x, device), as_tensor(split.test_unseen_x, device)
        while True:
            with ctx.timer("gan_s"):
                epoch = next(epochs, None)
            if epoch is None:
                break
            if joint:
                with ctx.timer("classifier_s"), torch.no_grad():
                    scores = Scores(epoch=epoch, seen=classifier(test_seen_x), unseen=classifier(test_unseen_x))
                yield scores
        ctx.timings["gan_epoch_s"] = ctx.timings["gan_s"] / max(settings.epochs, 1)
        ctx.save_model(LSRGANModel(gan, classifier))
        if not joint:
            yield from classify_generated(gan, data, split, config, ctx)
