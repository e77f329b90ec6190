"""ESZSL: Romera-Paredes and Torr, "An embarrassingly simple approach to zero-shot learning", ICML 2015."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import torch

from gzslbench.core.config import Constraint, Range
from gzslbench.core.registry import register_method
from gzslbench.methods.base import Method, RunContext, Scores
from gzslbench.protocol.splits import Split


@register_method("eszsl")
class ESZSL(Method):
    """Romera-Paredes and Torr, "An embarrassingly simple approach to zero-shot learning", ICML 2015.

    Closed-form bilinear compatibility between features and class attributes. Objective:
    min_V ||X^T V S - Y||^2 + gamma ||V S||^2 + lam ||X^T V||^2 + gamma lam ||V||^2 (Frobenius),
    with X the (d x n) training features, Y the (n x z) labels in {-1, 1} over the z seen classes
    and S the (a x z) seen attributes. Its solution V = (X X^T + gamma I)^-1 X Y S^T (S S^T + lam I)^-1
    is computed in :meth:`predict` (two ``torch.linalg.solve``, float64); a test feature x scores
    every class c by x^T V s_c. Hyper-parameters: ``gamma`` (1000) and ``lam`` (1), the
    regularisers (Xian et al. 2018 select them on the validation split). Deterministic: the seed
    is unused. One candidate model, so the ``last``, ``val`` and ``oracle`` modes coincide.
    """

    seed_dependent = False  # closed form: one model whatever the seed
    description = "ESZSL: closed-form bilinear attribute compatibility (Romera-Paredes & Torr, ICML 2015)"
    reference = "Romera-Paredes and Torr, ICML 2015. https://proceedings.mlr.press/v37/romera-paredes15.html"
    defaults: dict[str, Any] = {"gamma": 1000.0, "lam": 1.0}
    ranges: dict[str, Constraint] = {"gamma": Range(gt=0), "lam": Range(gt=0)}
    # Xian et al. 2018 (TPAMI) search both regularisers over 10^-3 .. 10^3 on the validation split.
    search_space: dict[str, list[Any]] = {
        "gamma": [10.0**k for k in range(-3, 4)],
        "lam": [10.0**k for k in range(-3, 4)],
    }
    dataset_defaults: dict[str, dict[str, Any]] = {}

    def predict(self, split: Split, config: Mapping[str, Any], ctx: RunContext) -> Iterator[Scores]:
        dev, dtype = ctx.device, torch.float64
        with ctx.timer("fit_s"):
            x = torch.as_tensor(split.train_x, device=dev, dtype=dtype).T
            seen = torch.as_tensor(split.seen, device=dev)
            column = torch.full((int(split.n_classes),), -1, dtype=torch.long, device=dev)
            column[seen] = torch.arange(len(seen), device=dev)
            y = -torch.ones(x.shape[1], len(seen), device=dev, dtype=dtype)
            y[torch.arange(x.shape[1], device=dev), column[torch.as_tensor(split.train_y, device=dev)]] = 1.0
            att = torch.as_tensor(split.attributes, device=dev, dtype=dtype).T
            s = att[:, seen]
            eye_d = torch.eye(x.shape[0], device=dev, dtype=dtype)
            eye_a = torch.eye(s.shape[0], device=dev, dtype=dtype)
            left = torch.linalg.solve(x @ x.T + config["gamma"] * eye_d, x @ y @ s.T)
            v = torch.linalg.solve(s @ s.T + config["lam"] * eye_a, left.T).T
            compat = v @ att
        with ctx.timer("predict_s"):
            seen_scores = torch.as_tensor(split.test_seen_x, device=dev, dtype=dtype) @ compat
            unseen_scores = torch.as_tensor(split.test_unseen_x, device=dev, dtype=dtype) @ compat
        yield Scores(epoch=1, seen=seen_scores, unseen=unseen_scores)
