"""Building blocks of the cross-modal VAE family: encoders, decoders, IEM, VSA, reparameterisation.

Every module is created directly on its device and initialised from an explicit
``torch.Generator`` (xavier_uniform with gain 0.5, biases 0, as the CADA-VAE and ACMR
reference code does), so a run never touches the global RNG state.
"""

from __future__ import annotations

import torch
from torch import nn

INIT_GAIN = 0.5
REPARAM_SCALES = ("exp_logvar", "exp_half_logvar")
NOISE_KINDS = ("per_sample", "per_dim")


class Dense(nn.Module):
    """A fully connected layer that stores its weight as (in, out) instead of ``nn.Linear``'s (out, in).

    Same function as ``nn.Linear``. The layout makes autograd's weight gradient ``x^T @ grad``
    a row-major (in, out) product; for the wide visual decoder output (e.g. 1665 -> 2048, batch
    50) the (out, in) layout's gradient product ran at half the speed on a CPU.
    """

    def __init__(self, in_features: int, out_features: int, device: torch.device) -> None:
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        self.weight_t = nn.Parameter(torch.empty(in_features, out_features, device=device))
        self.bias = nn.Parameter(torch.zeros(out_features, device=device))

    @property
    def weight(self) -> torch.Tensor:
        """The (out, in) weight, as ``nn.Linear`` holds it (a view)."""
        return self.weight_t.T

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.addmm(self.bias, x, self.weight_t)


def init_linear_(module: nn.Module, generator: torch.Generator) -> None:
    """Reference init of every fully connected layer in ``module``: xavier_uniform(gain 0.5), bias 0."""
    for layer in module.modules():
        if isinstance(layer, nn.Linear):
            nn.init.xavier_uniform_(layer.weight, gain=INIT_GAIN, generator=generator)
            nn.init.zeros_(layer.bias)
        elif isinstance(layer, Dense):
            weight = torch.empty(layer.out_features, layer.in_features, device=layer.weight_t.device)
            nn.init.xavier_uniform_(weight, gain=INIT_GAIN, generator=generator)
            with torch.no_grad():
                layer.weight_t.copy_(weight.T)
                layer.bias.zero_()


class Encoder(nn.Module):
    """Linear + ReLU, then two linear heads for the latent mean and log-variance."""

    def __init__(self, in_dim: int, hidden: int, latent: int, device: torch.device) -> None:
        super().__init__()
        self.hidden = Dense(in_dim, hidden, device=device)
        self.mu = Dense(hidden, latent, device=device)
        self.logvar = Dense(hidden, latent, device=device)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = torch.relu(self.hidden(x))
        return self.mu(h), self.logvar(h)


class Decoder(nn.Module):
    """Linear + ReLU + Linear from the latent space back to a modality."""

    def __init__(self, latent: int, hidden: int, out_dim: int, device: torch.device) -> None:
        super().__init__()
        self.hidden = Dense(latent, hidden, device=device)
        self.out = Dense(hidden, out_dim, device=device)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.out(torch.relu(self.hidden(z)))


class InformationEnhancement(nn.Module):
    """ACMR's IEM: a sigmoid gate computed from the channel-shuffled (mu, logvar), applied to both.

    The gate is ``MLP(shuffle(cat(mu, logvar)))`` with one hidden ReLU layer; the output is
    ``(g * mu, g * logvar)``. The permutation is passed in by the caller, so whether it is fresh
    per call, fixed, or absent (no shuffle) is a policy of the training loop, not of the module.
    """

    def __init__(self, latent: int, hidden: int, device: torch.device) -> None:
        super().__init__()
        self.hidden = Dense(2 * latent, hidden, device=device)
        self.out = Dense(hidden, latent, device=device)

    def gate(self, mu: torch.Tensor, logvar: torch.Tensor, perm: torch.Tensor | None) -> torch.Tensor:
        """The gate in (0, 1) of shape (n, latent); ``perm`` permutes the 2*latent channels."""
        mixed = torch.cat((mu, logvar), dim=1)
        if perm is not None:
            mixed = mixed.index_select(1, perm)
        return torch.sigmoid(self.out(torch.relu(self.hidden(mixed))))

    def forward(
        self, mu: torch.Tensor, logvar: torch.Tensor, perm: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        g = self.gate(mu, logvar, perm)
        return g * mu, g * logvar


class LatentClassifier(nn.Module):
    """Linear + LogSoftmax over all classes (VSA's latent classifiers and the final classifier)."""

    def __init__(self, latent: int, n_classes: int, device: torch.device) -> None:
        super().__init__()
        self.fc = Dense(latent, n_classes, device=device)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return torch.log_softmax(self.fc(z), dim=1)


def vsa_reweight(z_x: torch.Tensor, z_a: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """ACMR's Vision-Semantic Alignment re-weighting of a pair of latent batches.

    Per sample, ``R = z_x z_a^T`` (latent x latent), softmax over the first index (each
    column ``j`` is normalised over ``i``), then ``z_x' = R z_x`` and ``z_a' = R z_a``.
    """
    # s[b, j, i] = R[b, i, j]: the softmax over R's first index is a softmax over s's last one,
    # and (R z)_i = sum_j R[i, j] z_j = (z^T s)_i.
    s = torch.softmax(z_a.unsqueeze(2) * z_x.unsqueeze(1), dim=2)
    both = torch.bmm(torch.stack((z_x, z_a), dim=1), s)
    return both[:, 0], both[:, 1]


def noise_scale(logvar: torch.Tensor, scale: str, var: torch.Tensor | None = None) -> torch.Tensor:
    """The factor multiplying the noise: ``exp(logvar)`` (reference) or ``exp(logvar / 2)`` (textbook).

    ``var`` may pass an already computed ``exp(logvar)`` so the KL term and the noise share it.
    """
    if scale == "exp_logvar":
        return logvar.exp() if var is None else var
    if scale == "exp_half_logvar":
        return torch.exp(0.5 * logvar)
    raise ValueError(f"reparam_scale must be one of {REPARAM_SCALES}, got {scale!r}")


def draw_noise(
    n: int, latent: int, kind: str, generator: torch.Generator, device: torch.device, leading: tuple = ()
) -> torch.Tensor:
    """Standard normal noise of shape ``leading + (n, 1)`` (one scalar per sample) or ``(n, latent)``."""
    if kind not in NOISE_KINDS:
        raise ValueError(f"noise must be one of {NOISE_KINDS}, got {kind!r}")
    width = 1 if kind == "per_sample" else latent
    return torch.randn((*leading, n, width), generator=generator, device=device)


def reparameterize(
    mu: torch.Tensor, logvar: torch.Tensor, eps: torch.Tensor, scale: str, var: torch.Tensor | None = None
) -> torch.Tensor:
    """``z = mu + scale(logvar) * eps``; ``eps`` of shape (n, 1) is broadcast over the latent dims."""
    return mu + noise_scale(logvar, scale, var) * eps


def random_permutations(
    count: int, size: int, generator: torch.Generator, device: torch.device, leading: tuple = ()
) -> torch.Tensor:
    """``leading + (count, size)`` independent uniform random permutations of ``range(size)``."""
    keys = torch.rand((*leading, count, size), generator=generator, device=device)
    return keys.argsort(dim=-1)
