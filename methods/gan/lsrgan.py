"""LsrGAN's training: f-CLSWGAN's WGAN-GP with class centroids, the SR-loss and a classifier trained on unseen features.

The reference is the authors' release for attribute datasets (``Codes/Attribute_based_dataset``:
``clswgan.py``, ``util.py``, ``classifier.py``). Per generator step, after f-CLSWGAN's critic
steps (:func:`~gzslbench.methods.gan.model.adversarial_epochs`):

1. **seen step**: the generator minimises f-CLSWGAN's ``-E[D(G(z, a), a)] + cls_weight * NLL``
   (the classifier here spans all classes) plus ``centroid_weight`` times the distance of each
   generated class mean to the real class centroid (:func:`~gzslbench.methods.gan.losses.centroid_loss`);
2. **unseen step** (from epoch ``unseen_after + 1`` on): features of unseen classes are generated;
   the classifier and the generator minimise ``unseen_cls_weight`` times the classifier's NLL on
   them plus ``cls_weight`` times its NLL on the real batch, so the classifier learns the unseen
   classes from generated features while GAN training goes on.

The SR-loss (:func:`~gzslbench.methods.gan.losses.semantic_margin_loss`) keeps the cosine
similarity between a generated class mean and the real centroids of its semantically nearest
seen classes within ``epsilon`` of their attribute similarity, in both steps. The release
computes it on NumPy copies of the generated means, so it never reaches the generator:
``semantic_loss="logged"`` (default) computes and logs it, ``"trained"`` adds it, times
``semantic_weight``, to the generator's losses as the paper describes.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch import nn

from gzslbench.methods.base import RunContext
from gzslbench.methods.gan.losses import centroid_loss, class_means, classification_loss, semantic_margin_loss
from gzslbench.methods.gan.model import FeatureGAN, GANSettings, adam, adversarial_epochs, prior_fakes
from gzslbench.methods.gan.parts import LinearSoftmax

# The SR-loss: computed and logged only, as the release (its value never reaches the generator), or trained.
SEMANTIC_LOSSES = ("logged", "trained")
# How the unseen step picks its classes: uniformly, or as the release, the labels of random test images.
UNSEEN_DRAWS = ("uniform", "test_labels")
# The unseen step's generator update: on top of the seen step's gradients (the release never clears
# them in between) or on its own.
UNSEEN_STEP_GRADIENTS = ("accumulated", "fresh")
LSRGAN_LOSS_NAMES = (
    "generator_loss",
    "adversarial",
    "classification",
    "centroid",
    "semantic_seen",
    "unseen_classification",
    "real_classification",
    "semantic_unseen",
)


@dataclass(frozen=True)
class LSRGANSettings(GANSettings):
    """LsrGAN's: f-CLSWGAN's settings plus its centroid, SR-loss and unseen-step settings."""

    centroid_weight: float
    semantic_weight: float
    epsilon: float
    neighbours: int
    semantic_loss: str
    unseen_cls_weight: float
    unseen_after: int
    unseen_draw: str
    unseen_step_gradients: str
    cls_weight_halved_after: int

    def cls_weight_at(self, epoch: int) -> float:
        """``cls_weight``, halved after ``cls_weight_halved_after`` epochs (the release does so on AWA1 after 15)."""
        halved = 0 < self.cls_weight_halved_after < epoch
        return self.cls_weight / 2 if halved else self.cls_weight

    def unseen_step_in(self, epoch: int) -> bool:
        """Whether epoch ``epoch`` (1-based) runs the unseen step: the release's ``epoch > unseen_start and
        correlation_penalty > 0``."""
        return epoch > self.unseen_after and self.semantic_weight > 0


@dataclass(frozen=True)
class ClassRelations:
    """The real seen class centroids and each class's semantically nearest seen classes (the release's ``util.py``).

    Positions: ``seen_position[c]`` is class ``c``'s row among the seen classes (increasing ids), -1
    for an unseen class, and ``unseen_position`` likewise. ``seen_neighbours[i]`` are the
    positions of the ``k`` seen classes whose attribute vectors are most cosine-similar to seen
    class ``i`` (itself first), ``seen_similarity[i]`` those similarities; ``unseen_*`` the same
    for each unseen class among the seen ones. ``k`` is ``neighbours``, at most the number of
    seen classes.
    """

    seen_position: torch.Tensor
    unseen_position: torch.Tensor
    centroids: torch.Tensor
    seen_neighbours: torch.Tensor
    seen_similarity: torch.Tensor
    unseen_neighbours: torch.Tensor
    unseen_similarity: torch.Tensor

    @classmethod
    def build(
        cls,
        x: torch.Tensor,
        y: torch.Tensor,
        attributes: torch.Tensor,
        seen: torch.Tensor,
        unseen: torch.Tensor,
        neighbours: int,
    ) -> ClassRelations:
        """From the real training features ``x`` of classes ``y`` and the class attribute vectors."""
        device = x.device

        def positions(classes: torch.Tensor) -> torch.Tensor:
            index = torch.full((len(attributes),), -1, dtype=torch.long, device=device)
            index[classes] = torch.arange(len(classes), device=device)
            return index

        seen_position = positions(seen)
        centroids = class_means(x, seen_position[y], len(seen))[0]
        unit = torch.nn.functional.normalize(attributes, dim=1)
        k = min(neighbours, len(seen))
        seen_similarity, seen_neighbours = (unit[seen] @ unit[seen].T).topk(k, dim=1)
        unseen_similarity, unseen_neighbours = (unit[unseen] @ unit[seen].T).topk(k, dim=1)
        return cls(
            seen_position,
            positions(unseen),
            centroids,
            seen_neighbours,
            seen_similarity,
            unseen_neighbours,
            unseen_similarity,
        )


def lsrgan_epochs(
    gan: FeatureGAN,
    classifier: LinearSoftmax,
    classifier_optimizer: torch.optim.Adam,
    relations: ClassRelations,
    train_x: torch.Tensor,
    train_y: torch.Tensor,
    attributes: torch.Tensor,
    unseen_pool: torch.Tensor,
    settings: LSRGANSettings,
    ctx: RunContext,
    rng: torch.Generator,
) -> Iterator[int]:
    """Train LsrGAN's ``gan`` and ``classifier``; yield each epoch's number after its ``gan`` history row.

    ``classifier`` spans all classes (labels are class ids) and goes on training with
    ``classifier_optimizer`` in the unseen step. ``unseen_pool`` holds the class ids the unseen
    step draws from: each unseen class once (``unseen_draw="uniform"``), or the labels of the
    test images, from which the release draws distinct rows (``"test_labels"``). History:
    ``LSRGAN_LOSS_NAMES`` (the unseen terms 0 in epochs without the unseen step; SR-loss terms
    unweighted).
    """
    device = train_x.device
    opt_g = adam(gan.generator.parameters(), settings.lr, settings.beta1, device)
    trained_semantic = settings.semantic_loss == "trained"
    epoch = 1  # the epoch the next generator step belongs to

    def semantic(fake: torch.Tensor, positions: torch.Tensor, seen_side: bool) -> torch.Tensor:
        neighbours = relations.seen_neighbours if seen_side else relations.unseen_neighbours
        similarity = relations.seen_similarity if seen_side else relations.unseen_similarity
        return semantic_margin_loss(
            fake if trained_semantic else fake.detach(),  # detached: logged only, as the release
            positions,
            len(neighbours),
            relations.centroids,
            neighbours,
            similarity,
            settings.epsilon,
        )

    def draw_unseen(n: int) -> torch.Tensor:
        if settings.unseen_draw == "test_labels":
            return unseen_pool[torch.randperm(len(unseen_pool), generator=rng, device=device)[:n]]
        return unseen_pool[torch.randint(len(unseen_pool), (n,), generator=rng, device=device)]

    def generator_step(rows: torch.Tensor) -> torch.Tensor:
        labels = train_y[rows]
        att = attributes[labels]
        cls_weight = settings.cls_weight_at(epoch)
        classifier.requires_grad_(False)  # the seen step trains the generator only
        fake = gan.generator(gan.noise(len(rows), rng, device), att)
        adversarial = -gan.critic(fake, att).mean()
        cls_loss = classification_loss(classifier(fake), labels)
        positions = relations.seen_position[labels]
        centroid = centroid_loss(fake, positions, relations.centroids)
        semantic_seen = semantic(fake, positions, seen_side=True)
        loss = adversarial + cls_weight * cls_loss + settings.centroid_weight * centroid
        if trained_semantic:
            loss = loss + settings.semantic_weight * semantic_seen
        opt_g.zero_grad(set_to_none=True)
        loss.backward()
        opt_g.step()
        classifier.requires_grad_(True)
        unseen_terms = torch.zeros(3, device=device)
        if settings.unseen_step_in(epoch):
            unseen_labels = draw_unseen(len(rows))
            fake_unseen = gan.generator(gan.noise(len(rows), rng, device), attributes[unseen_labels])
            unseen_loss = classification_loss(classifier(fake_unseen), unseen_labels)
            real_loss = classification_loss(classifier(train_x[rows]), labels)
            semantic_unseen = semantic(fake_unseen, relations.unseen_position[unseen_labels], seen_side=False)
            loss_u = settings.unseen_cls_weight * unseen_loss + cls_weight * real_loss
            if trained_semantic:
                loss_u = loss_u + settings.semantic_weight * semantic_unseen
            if settings.unseen_step_gradients == "fresh":
                opt_g.zero_grad(set_to_none=True)
            classifier_optimizer.zero_grad(set_to_none=True)
            loss_u.backward()
            opt_g.step()
            classifier_optimizer.step()
            unseen_terms = torch.stack((unseen_loss, real_loss, semantic_unseen)).detach()
        seen_terms = torch.stack((loss, adversarial, cls_loss, centroid, semantic_seen)).detach()
        return torch.cat((seen_terms, unseen_terms))

    for epoch_done in adversarial_epochs(
        gan,
        train_x,
        train_y,
        attributes,
        settings,
        ctx,
        rng,
        critic_fake=prior_fakes(gan, rng),
        generator_step=generator_step,
        generator_names=LSRGAN_LOSS_NAMES,
    ):
        epoch = epoch_done + 1
        yield epoch_done


class LSRGANModel(nn.Module):
    """What an LsrGAN run saves: the generator and critic, and the classifier trained with them."""

    def __init__(self, gan: FeatureGAN, classifier: LinearSoftmax) -> None:
        super().__init__()
        self.gan, self.classifier = gan, classifier
