"""Building blocks of the feature-generating GAN family: conditional generator, conditional critic, linear softmax.

The shapes follow the f-CLSWGAN reference release (``model.py``: ``MLP_G``, ``MLP_CRITIC``;
``classifier.py``: ``LINEAR_LOGSOFTMAX``): one hidden layer each, LeakyReLU(0.2) after it, a ReLU
on the generator's output (ResNet features are non-negative). Every fully connected layer is
initialised as the reference's ``weights_init`` does, weights from N(0, 0.02^2) and zero biases,
drawn from an explicit ``torch.Generator`` so that a run never touches the global RNG state.
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
    """G(z, a): ``[z; a]`` -> Linear -> LeakyReLU(0.2) -> Linear -> ReLU, a feature vector per row."""

    def __init__(self, noise_dim: int, attribute_dim: int, hidden: int, feature_dim: int, device: torch.device) -> None:
        super().__init__()
        self.noise_dim = noise_dim
        self.hidden = Dense(noise_dim + attribute_dim, hidden, device)
        self.out = Dense(hidden, feature_dim, device)

    def forward(self, z: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        h = F.leaky_relu(self.hidden(torch.cat((z, a), dim=1)), LEAKY_SLOPE)
        return torch.relu(self.out(h))


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


class LinearSoftmax(nn.Module):
    """Linear + LogSoftmax: the pre-trained classifier of the classification loss and the final GZSL classifier."""

    def __init__(self, in_dim: int, n_classes: int, device: torch.device) -> None:
        super().__init__()
        self.fc = nn.Linear(in_dim, n_classes, device=device)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.log_softmax(self.fc(x), dim=1)
