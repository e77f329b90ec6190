"""Building blocks of the feature-generating GAN family: conditional generator, critic, VAE encoder, linear softmax.

The shapes follow the f-CLSWGAN reference release (``model.py``: ``MLP_G``, ``MLP_CRITIC``;
``classifier.py``: ``LINEAR_LOGSOFTMAX``): one hidden layer each, LeakyReLU(0.2) after it, a ReLU
on the generator's output (ResNet features are non-negative). f-VAEGAN (TF-VAEGAN's
``networks/TFVAEGAN_model.py``) ends its generator with a sigmoid instead, since its
reconstruction loss is a binary cross-entropy on [0, 1]-scaled features, and adds the
:class:`Encoder` of its VAE; TF-VAEGAN adds the :class:`SemanticDecoder` and the :class:`Feedback`
module, whose output enters the generator's hidden layer; FREE adds the :class:`FeatureRefiner`. Every
fully connected layer is initialised as the reference's ``weights_init`` does, weights from N(0, 0.02^2) and
zero biases, drawn from an explicit ``torch.Generator`` so that a run never touches the global RNG state.
The generator and critic store weights as (in, out) (the VAE family's :class:`Dense`): the same
function as ``nn.Linear``, faster weight gradients on a CPU.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from gzslbench.methods.vae.parts import Dense

LEAKY_SLOPE = 0.2  # nn.LeakyReLU(0.2) in the reference's generator and critic
INIT_STD = 0.02  # weights_init: Linear weights ~ N(0, 0.02^2), biases 0
# The generator's output activation: ReLU (f-CLSWGAN) or sigmoid (f-VAEGAN, for its BCE reconstruction).
GENERATOR_OUTPUTS = ("relu", "sigmoid")


def init_normal_(module: nn.Module, generator: torch.Generator, std: float = INIT_STD) -> None:
    """The reference init of every fully connected layer in ``module``: weights N(0, std^2), biases 0."""
    with torch.no_grad():
        for layer in module.modules():
            if isinstance(layer, nn.Linear):
                layer.weight.normal_(0.0, std, generator=generator)
                layer.bias.zero_()
            elif isinstance(layer, Dense):
                layer.weight_t.normal_(0.0, std, generator=generator)
                layer.bias.zero_()


class Generator(nn.Module):
    """G(z, a): ``[z; a]`` -> Linear -> LeakyReLU(0.2) -> Linear -> ReLU (or sigmoid), a feature vector per row."""

    def __init__(
        self,
        noise_dim: int,
        attribute_dim: int,
        hidden: int,
        feature_dim: int,
        device: torch.device,
        output: str = "relu",
    ) -> None:
        super().__init__()
        if output not in GENERATOR_OUTPUTS:
            raise ValueError(f"generator output {output!r} is not one of {GENERATOR_OUTPUTS}")
        self.noise_dim = noise_dim
        self.output = output
        self.hidden = Dense(noise_dim + attribute_dim, hidden, device)
        self.out = Dense(hidden, feature_dim, device)

    def forward(
        self, z: torch.Tensor, a: torch.Tensor, feedback: torch.Tensor | None = None, weight: float = 0.0
    ) -> torch.Tensor:
        """``feedback`` (TF-VAEGAN), scaled by ``weight``, is added to the hidden layer after its activation."""
        h = F.leaky_relu(self.hidden(torch.cat((z, a), dim=1)), LEAKY_SLOPE)
        if feedback is not None:
            h = h + weight * feedback
        out = self.out(h)
        return torch.sigmoid(out) if self.output == "sigmoid" else torch.relu(out)


class Encoder(nn.Module):
    """E(x, a) -> (mu, logvar) of q(z | x, a): ``[x; a]`` -> hidden -> LeakyReLU -> 2 latent -> LeakyReLU -> heads.

    TF-VAEGAN's ``Encoder``: a wide first layer (``encoder_layer_sizes[-1]``, 4096), a second
    layer of twice the latent size and two linear heads for the mean and the log-variance. The
    heads are held as one layer of ``2 * latent`` outputs (the same function and init as two).
    """

    def __init__(
        self, feature_dim: int, attribute_dim: int, hidden: int, latent_dim: int, device: torch.device
    ) -> None:
        super().__init__()
        self.latent_dim = latent_dim
        self.hidden = Dense(feature_dim + attribute_dim, hidden, device)
        self.middle = Dense(hidden, 2 * latent_dim, device)
        self.heads = Dense(2 * latent_dim, 2 * latent_dim, device)

    def forward(self, x: torch.Tensor, a: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = F.leaky_relu(self.hidden(torch.cat((x, a), dim=1)), LEAKY_SLOPE)
        h = F.leaky_relu(self.middle(h), LEAKY_SLOPE)
        mu, logvar = self.heads(h).chunk(2, dim=1)
        return mu, logvar

    def sample(
        self, x: torch.Tensor, a: torch.Tensor, rng: torch.Generator
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(z, mu, logvar)``, ``z = mu + eps * exp(logvar / 2)`` with ``eps ~ N(0, I)`` from ``rng``."""
        mu, logvar = self(x, a)
        eps = torch.randn(mu.shape, generator=rng, device=mu.device, dtype=mu.dtype)
        return mu + eps * torch.exp(0.5 * logvar), mu, logvar


class Critic(nn.Module):
    """D(x, a): ``[x; a]`` -> Linear -> LeakyReLU(0.2) -> Linear, one unbounded score per row (shape ``(n,)``).

    A WGAN critic: no sigmoid. Its layers store their weights as (in, out) (:class:`Dense`), so
    the feature rows and the attribute rows of the first layer's weight are contiguous blocks,
    which :func:`~gzslbench.methods.gan.losses.critic_step_gradients` uses.
    """

    def __init__(self, feature_dim: int, attribute_dim: int, hidden: int, device: torch.device) -> None:
        super().__init__()
        self.feature_dim = feature_dim
        self.hidden = Dense(feature_dim + attribute_dim, hidden, device)
        self.out = Dense(hidden, 1, device)

    def forward(self, x: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        return self.out(F.leaky_relu(self.hidden(torch.cat((x, a), dim=1)), LEAKY_SLOPE)).squeeze(1)


class SemanticDecoder(nn.Module):
    """Dec(x) -> (a_hat, h): ``x`` -> hidden -> LeakyReLU(0.2) = ``h`` -> attribute size -> unit L2 norm = ``a_hat``.

    TF-VAEGAN's ``AttDec``: it maps a (real or generated) feature back to its class embedding;
    its hidden layer ``h`` is what the feedback module and the discriminative features use.
    The output is L2-normalised because xlsa17's class embeddings are.
    """

    def __init__(self, feature_dim: int, hidden: int, attribute_dim: int, device: torch.device) -> None:
        super().__init__()
        self.hidden = Dense(feature_dim, hidden, device)
        self.out = Dense(hidden, attribute_dim, device)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = F.leaky_relu(self.hidden(x), LEAKY_SLOPE)
        a = self.out(h)
        return a / a.norm(dim=1, keepdim=True), h


class Feedback(nn.Module):
    """F(h): the decoder's hidden layer -> Linear -> LeakyReLU(0.2) -> Linear -> LeakyReLU(0.2), the generator's width.

    TF-VAEGAN's ``Feedback`` (two ``ngh x ngh`` layers, as decoder and generator share the width
    4096 there); here the first layer maps the decoder's width to the generator's.
    """

    def __init__(self, decoder_hidden: int, generator_hidden: int, device: torch.device) -> None:
        super().__init__()
        self.first = Dense(decoder_hidden, generator_hidden, device)
        self.second = Dense(generator_hidden, generator_hidden, device)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return F.leaky_relu(self.second(F.leaky_relu(self.first(h), LEAKY_SLOPE)), LEAKY_SLOPE)


class FeatureRefiner(nn.Module):
    """FREE's feature refinement module R(x) -> (mu, std, h): ``x`` -> hidden -> LeakyReLU = ``h`` -> 2 x attributes.

    The release's ``FR``: the second layer's output is split into a mean ``mu`` and, through a
    sigmoid, a standard deviation ``std`` of the attribute size. ``mu`` is what its centre loss
    clusters; ``sigmoid(mu + eps * std)`` (:meth:`semantic`) is its reconstruction of the class
    embedding; ``h`` and that reconstruction widen the final classifier's features. The release's
    FR also holds a one-unit discriminator head and a seen-class head whose outputs no loss uses;
    they are left out.
    """

    def __init__(self, feature_dim: int, hidden: int, attribute_dim: int, device: torch.device) -> None:
        super().__init__()
        self.hidden = Dense(feature_dim, hidden, device)
        self.out = Dense(hidden, 2 * attribute_dim, device)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        h = F.leaky_relu(self.hidden(x), LEAKY_SLOPE)
        mu, raw_std = self.out(h).chunk(2, dim=1)
        return mu, torch.sigmoid(raw_std), h

    @staticmethod
    def semantic(mu: torch.Tensor, std: torch.Tensor, eps: torch.Tensor | None) -> torch.Tensor:
        """``sigmoid(mu + eps * std)``, the reconstructed embedding; ``eps=None`` gives ``sigmoid(mu)``."""
        return torch.sigmoid(mu if eps is None else torch.addcmul(mu, eps, std))


class LinearSoftmax(nn.Module):
    """Linear + LogSoftmax: the pre-trained classifier of the classification loss and the final GZSL classifier."""

    def __init__(self, in_dim: int, n_classes: int, device: torch.device) -> None:
        super().__init__()
        # Left uninitialised (no draw from the global RNG); init_normal_ initialises it from a run's generator.
        self.fc = nn.utils.skip_init(nn.Linear, in_dim, n_classes, device=device)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.log_softmax(self.fc(x), dim=1)
