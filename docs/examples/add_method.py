"""Adding a method and a dataset to gzslbench without editing it.

Run it from any folder (the records go to ``./results``)::

    python docs/examples/add_method.py

It registers

* ``example-prototype``: a least-squares map from features to class attributes; a test
  instance scores every class by the cosine similarity of its mapped features with the
  class's attribute vector (the nearest class-attribute prototype wins);
* ``example-blobs``: a small dataset drawn from a seed, in which each class's features are a
  fixed linear image of its attributes plus noise,

then runs the method on the dataset through :func:`gzslbench.run` and prints U / S / H.
"""

from __future__ import annotations

import dataclasses
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch

import gzslbench
from gzslbench.datasets.base import DatasetAdapter
from gzslbench.methods.base import Method, RunContext, Scores


@gzslbench.register_method("example-prototype")
class AttributePrototype(Method):
    """Ridge regression from features to attributes, then the nearest class prototype (cosine).

    W = (X^T X + lam I)^-1 X^T A_y maps a training feature to its class's attribute vector.
    Closed form and deterministic: one candidate model, so ``last``, ``val`` and ``oracle``
    coincide. The seed is unused.
    """

    description = "Example: least-squares map to attribute space, nearest class-attribute prototype"
    reference = "gzslbench documentation, 'Adding a method or a dataset'"
    seed_dependent = False  # the seed is unused: one run stands for every seed
    # Every config key with its default: `--set` or `overrides` may change only these.
    defaults: ClassVar[dict[str, Any]] = {"lam": 1.0}
    # A validation grid for `gzslbench tune`.
    search_space: ClassVar[dict[str, list[Any]]] = {"lam": [0.01, 0.1, 1.0, 10.0, 100.0]}

    @classmethod
    def check_config(cls, config: Mapping[str, Any]) -> None:
        # Without declared `ranges` a key is only type-checked; refuse what makes no sense here.
        if config["lam"] <= 0:
            raise ValueError(f"lam must be > 0, got {config['lam']}")

    def predict(self, split, config: Mapping[str, Any], ctx: RunContext) -> Iterator[Scores]:
        dtype = torch.float64
        with ctx.timer("fit_s"):
            x = torch.as_tensor(split.train_x, device=ctx.device, dtype=dtype)
            att = torch.as_tensor(split.attributes, device=ctx.device, dtype=dtype)
            target = att[torch.as_tensor(split.train_y, device=ctx.device)]  # each instance's class attributes
            gram = x.T @ x + config["lam"] * torch.eye(x.shape[1], device=ctx.device, dtype=dtype)
            w = torch.linalg.solve(gram, x.T @ target)
            prototypes = torch.nn.functional.normalize(att, dim=1)  # one row per class of the split
        with ctx.timer("predict_s"):

            def scores(features) -> torch.Tensor:
                mapped = torch.as_tensor(features, device=ctx.device, dtype=dtype) @ w
                return torch.nn.functional.normalize(mapped, dim=1) @ prototypes.T

            seen, unseen = scores(split.test_seen_x), scores(split.test_unseen_x)
        # Scores over all of the split's classes; the protocol computes U / S / H from them.
        yield Scores(epoch=1, seen=seen, unseen=unseen)


@gzslbench.register_dataset("example-blobs")
class Blobs(DatasetAdapter):
    """20 classes (15 seen / 5 unseen), 8-d attributes, 32-d features, drawn from ``seed``.

    An adapter for your own files would read them here. This one draws its arrays, writes them
    in the ``custom`` dataset's ``.npz`` schema and lets gzslbench read them back, which checks
    shapes, index ranges and split rules. ``data_dir`` is unused.
    """

    description = "Example: Gaussian blobs around a linear image of random class attributes."
    defaults_from = "cub"  # whose per-dataset method settings apply (methods that have some)
    options: ClassVar[dict[str, Any]] = {"seed": 0}  # keyword options of load(), recorded per run
    reads_data_dir = False  # generated: a --data-dir given for it is noted as unused, not recorded

    n_seen, n_unseen, attribute_dim, feature_dim = 15, 5, 8, 32
    per_class = {"trainval": 30, "test_seen": 10, "test_unseen": 20}  # instances per class in each split
    noise = 1.0  # standard deviation of the per-instance noise around a class's mean

    def load(self, data_dir: Path | None = None, **options: Any):
        seed = int(options.get("seed", 0))
        rng = np.random.default_rng(seed)
        n_classes = self.n_seen + self.n_unseen
        attributes = rng.random((n_classes, self.attribute_dim)).astype(np.float32)
        image = rng.standard_normal((self.attribute_dim, self.feature_dim))
        means = attributes @ image

        seen, unseen = np.arange(self.n_seen), np.arange(self.n_seen, n_classes)
        parts = [
            ("trainval", seen, self.per_class["trainval"]),
            ("test_seen", seen, self.per_class["test_seen"]),
            ("test_unseen", unseen, self.per_class["test_unseen"]),
        ]
        labels = np.concatenate([np.repeat(classes, n) for _, classes, n in parts])
        features = means[labels] + self.noise * rng.standard_normal((len(labels), self.feature_dim))
        bounds = np.cumsum([0] + [len(classes) * n for _, classes, n in parts])
        splits = {name: np.arange(bounds[i], bounds[i + 1]) for i, (name, _, _) in enumerate(parts)}

        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / "blobs.npz"
            np.savez(path, features=features.astype(np.float32), labels=labels, attributes=attributes, **splits)
            data = gzslbench.load_dataset("custom", options={"path": str(path), "defaults_from": self.defaults_from})
        # The record names the dataset and where it came from.
        return dataclasses.replace(data, name=self.name, source=f"example-blobs(seed={seed})")


def main(seeds: int = 1) -> list[dict[str, Any]]:
    """Run the example method on the example dataset; return the run records."""
    records = gzslbench.run("example-prototype", "example-blobs", seeds=seeds, overrides={"lam": 0.1})
    for record in records:
        last = record["metrics"]["last"]
        print(f"seed {record['seed']}: {record['status']}, U {last['U']:.1f}  S {last['S']:.1f}  H {last['H']:.1f}")
    return records


if __name__ == "__main__":
    main()
