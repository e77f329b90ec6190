"""Published GZSL numbers shipped with the package, and the names that link them to our methods.

The figures live in ``gzslbench/reference/paper_tables.csv`` (sources in ``SOURCES.md`` beside it):
ACMR's Table 2 and Table 3 (AAAI 2022), ESZSL from Xian et al. (TPAMI 2018), and ``original`` rows
from a method's own paper where ACMR's quote of it is wrong or missing (they take precedence).
Tables show them only on real datasets: a synthetic twin has no published counterpart.
"""

from __future__ import annotations

from functools import lru_cache
from importlib import resources
from io import StringIO

import pandas as pd

# Our registry name -> (name printed in the papers, family used to group Table 2 rows).
METHOD_INFO: dict[str, tuple[str, str]] = {
    "acmr": ("ACMR", "ours"),
    "dual-vae": ("Dual-VAE", "ablation"),
    "ie-vae": ("IE-VAE", "ablation"),
    "vsa-vae": ("VSA-VAE", "ablation"),
    "cada-vae": ("CADA-VAE", "vae"),
    "eszsl": ("ESZSL", "embedding"),
    "sae": ("SAE", "embedding"),
    "ale": ("ALE", "embedding"),
    "devise": ("DeViSE", "embedding"),
    "f-clswgan": ("f-CLSWGAN", "gan"),
    # ACMR's Table 2 prints the inductive results of the f-VAEGAN-D2 paper (inductive: no D2) under that name.
    "f-vaegan": ("f-VAEGAN-D2", "gan"),
    # Not in ACMR's Table 2: its reported row is the H of its own paper (``original`` rows).
    "tf-vaegan": ("TF-VAEGAN", "gan"),
    # Not in ACMR's Table 2, and its paper's table could not be checked here: no reported row is shipped.
    "free": ("FREE", "gan"),
    "lsrgan": ("LsrGAN", "gan"),
}
# Table 2's groups, in print order; "other" holds methods with no known family.
FAMILIES: dict[str, str] = {
    "embedding": "Embedding-based",
    "gan": "Generative (GAN)",
    "vae": "Generative (VAE)",
    "ablation": "ACMR ablations",
    "ours": "ACMR",
    "other": "Other",
}
# The CSV's family labels that are not Table 2 groups.
_FAMILY_ALIASES = {"classic": "embedding"}
# Table 3: the ablation rows in print order, with their components (IEM, VSA).
ABLATIONS: dict[str, tuple[bool, bool]] = {
    "dual-vae": (False, False),
    "ie-vae": (True, False),
    "vsa-vae": (False, True),
    "acmr": (True, True),
}
REAL_DATASETS: dict[str, str] = {"cub": "CUB", "sun": "SUN", "awa1": "AwA1", "awa2": "AwA2", "apy": "aPY", "flo": "FLO"}
SYNTHETIC_PREFIX = "synth-"


def display_method(name: str) -> str:
    """The printed name of a registered method (``acmr`` -> ``ACMR``); unknown names stay as they are."""
    return METHOD_INFO.get(name, (name, "other"))[0]


def family(name: str) -> str:
    """Table 2 group of a registered method; a method without one goes to ``other``."""
    return METHOD_INFO.get(name, (name, "other"))[1]


def is_synthetic(dataset: str) -> bool:
    return dataset.startswith(SYNTHETIC_PREFIX)


def real_twin(dataset: str) -> str | None:
    """The real dataset a name stands for: ``cub`` -> ``cub``, ``synth-cub`` -> ``cub``; None for others."""
    base = dataset[len(SYNTHETIC_PREFIX) :] if is_synthetic(dataset) else dataset
    return base if base in REAL_DATASETS else None


def display_dataset(dataset: str) -> str:
    """``cub`` -> ``CUB``, ``synth-cub`` -> ``CUB (synthetic)``, others unchanged."""
    if is_synthetic(dataset):
        base = dataset[len(SYNTHETIC_PREFIX) :]
        return f"{REAL_DATASETS.get(base, base.upper())} (synthetic)"
    return REAL_DATASETS.get(dataset, dataset)


def dataset_order(datasets: list[str]) -> list[str]:
    """Real datasets in print order with their synthetic twins beside them, then the rest by name."""
    order = list(REAL_DATASETS)

    def key(d: str) -> tuple:
        twin = real_twin(d)
        return (order.index(twin) if twin else len(order), is_synthetic(d), d)

    return sorted(set(datasets), key=key)


@lru_cache(maxsize=1)
def reported_table() -> pd.DataFrame:
    """Every published number: columns table, family, method, dataset (our name, e.g. ``cub``), U, S, H, source."""
    text = resources.files("gzslbench").joinpath("reference/paper_tables.csv").read_text(encoding="utf-8")
    frame = pd.read_csv(StringIO(text))
    by_print = {v: k for k, v in REAL_DATASETS.items()}
    frame["dataset"] = frame["dataset"].map(lambda d: by_print.get(d, d.lower()))
    frame["family"] = frame["family"].map(lambda f: _FAMILY_ALIASES.get(f, f))
    return frame


def reported(tables: tuple[str, ...], datasets: list[str] | None = None) -> pd.DataFrame:
    """Published rows of the given printed tables, on ``datasets`` when given, one per method and dataset.

    Where several tables give the same method on the same dataset, the first of ``tables`` wins (so
    ``original`` before ``table2`` shows a method's own paper instead of ACMR's quote of it); rows keep
    the place of the method's first row in the file otherwise.
    """
    frame = reported_table()
    frame = frame[frame["table"].isin(tables)]
    if datasets is not None:
        frame = frame[frame["dataset"].isin(datasets)]
    priority = frame["table"].map({t: i for i, t in enumerate(tables)})
    first = frame.assign(_priority=priority).sort_values("_priority", kind="stable")
    kept = frame.loc[sorted(first.drop_duplicates(["method", "dataset"]).index)]
    place = {method: i for i, method in reversed(list(enumerate(frame["method"])))}  # a method's first row
    order = sorted(range(len(kept)), key=lambda i: place[kept["method"].iloc[i]])
    return kept.iloc[order].reset_index(drop=True)


def counterpart(method: str, dataset: str, tables: tuple[str, ...]) -> pd.Series | None:
    """The published row of our ``method`` on real ``dataset``, from the first of ``tables`` that has one."""
    if is_synthetic(dataset):
        return None
    frame = reported_table()
    name = display_method(method)
    for table in tables:
        hit = frame[(frame["table"] == table) & (frame["method"] == name) & (frame["dataset"] == dataset)]
        if not hit.empty:
            return hit.iloc[0]
    return None
