"""The paper's figures from run records, drawn headless with matplotlib and written as PNG and PDF.

* :func:`plot_curves`: per-epoch loss terms of the VAE stage, of the GAN stage (critic, generator
  and their parts) and of a pre-trained classifier, the final classifier's loss and its U / S / H
  per epoch, mean over seeds with a ±std band, one figure per dataset.
* :func:`plot_sensitivity`: H against one config value across records that differ only in that
  value (ACMR's Figure 5), one curve per dataset with a ±std band over seeds.
* :func:`plot_tsne`: t-SNE of the latent means of both modalities for seen and unseen classes from
  a model saved with ``gzslbench run --save-model`` (ACMR's Figure 6).
* :func:`plot_bars`: H per method per dataset with the seed spread, for a quick look.

Figures are built on :class:`matplotlib.figure.Figure` directly (no pyplot state, no display).
matplotlib (and scikit-learn, for t-SNE) come with the ``plots`` extra and are imported only when
a figure is drawn: without them, importing this module works and drawing raises
:class:`~gzslbench.core.errors.MissingExtraError` naming the extra.
"""

from __future__ import annotations

import math
import warnings
import zipfile
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from gzslbench.core.errors import ConfigError, GZSLBenchError, require_extra
from gzslbench.core.files import atomic_path
from gzslbench.reports.reported import dataset_order, display_dataset, display_method
from gzslbench.results.frame import aggregate, load_frame
from gzslbench.results.store import SCORES_SUFFIX, iter_records, load_or_note, record_path

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from gzslbench.protocol.calibration import SeenUnseenCurve

PLOT_KINDS = ("curves", "sensitivity", "tsne", "bars", "seen-unseen")
FORMATS = ("png", "pdf")
VAE_TERMS = ("reconstruction", "kl", "distance", "classification", "cross_reconstruction", "total")
GAN_TERMS = (
    "critic_loss",
    "wasserstein",
    "gradient_penalty",
    "generator_loss",
    "adversarial",
    "classification",
    "reconstruction",
    "kl",
    "decoder_real",
    "decoder_generated",
    "center",
    "cycle_real",
    "cycle_generated",
    "centroid",
    "semantic_seen",
    "unseen_classification",
    "real_classification",
    "semantic_unseen",
)
# Training stages of the per-epoch history, in plotting order: (stage, loss terms, panel title prefix, x label).
TRAIN_STAGES = (
    ("vae", VAE_TERMS, "VAE", "VAE epoch"),
    ("pretrain", ("loss",), "pre-trained classifier", "pre-training epoch"),
    ("gan", GAN_TERMS, "GAN", "GAN epoch"),
    ("classifier", ("loss",), "final classifier", "classifier epoch"),
)
EXTRA = "plots"


def require_plots(kind: str | None = None) -> None:
    """Raise MissingExtraError unless the ``plots`` extra is installed (for ``tsne``: scikit-learn too)."""
    require_extra("matplotlib", extra=EXTRA, needed_for="plots")
    if kind == "tsne":
        require_extra("sklearn", extra=EXTRA, needed_for="t-SNE plots", package="scikit-learn")


def _mpl() -> SimpleNamespace:
    """The matplotlib parts the figures use, imported on first use (MissingExtraError without the extra)."""
    require_plots()
    import matplotlib
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D
    from matplotlib.ticker import MaxNLocator

    return SimpleNamespace(Figure=Figure, Line2D=Line2D, MaxNLocator=MaxNLocator, palette=matplotlib.colormaps["tab10"])


SAVED_SCORES = ("seen_scores", "seen_y", "unseen_scores", "unseen_y", "seen_classes", "unseen_classes")


def read_saved_scores(path: Path) -> dict[str, np.ndarray]:
    """The arrays of a ``--save-scores`` file, or one line naming the file if it is damaged (unreadable, or arrays
    that do not fit together: :func:`saved_scores_problem`)."""
    try:
        with np.load(path) as saved:
            arrays = {key: saved[key] for key in SAVED_SCORES}
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile) as exc:
        arrays, problem = {}, f"{type(exc).__name__}: {exc}"
    else:
        problem = saved_scores_problem(arrays)
    if problem:
        raise GZSLBenchError(f"{path}: damaged saved scores ({problem}); rerun its run with --save-scores --force")
    return arrays


def saved_scores_problem(saved: Mapping[str, np.ndarray]) -> str | None:
    """Why saved test scores cannot make a seen-unseen curve, or None: (n, K) finite scores per test part, a class
    index per row, and disjoint, non-empty seen and unseen classes among the K that hold every label of their part."""
    n_classes = None
    for part in ("seen", "unseen"):
        scores, labels, classes = saved[f"{part}_scores"], saved[f"{part}_y"], saved[f"{part}_classes"]
        if scores.ndim != 2 or scores.dtype.kind not in "fiu":
            return f"{part}_scores is a {scores.dtype} array of shape {scores.shape}, not a (rows, classes) table"
        if n_classes is not None and scores.shape[1] != n_classes:
            return f"seen_scores has {n_classes} columns but unseen_scores {scores.shape[1]}"
        n_classes = scores.shape[1]
        if not np.isfinite(scores).all():
            return f"{part}_scores holds NaN or infinite values"
        for name, values in ((f"{part}_y", labels), (f"{part}_classes", classes)):
            if values.ndim != 1 or values.dtype.kind not in "iu":
                return f"{name} is a {values.dtype} array of shape {values.shape}, not a list of class indices"
        if len(labels) != len(scores):
            return f"{part}_y has {len(labels)} labels for {len(scores)} rows of {part}_scores"
        if not len(classes) or classes.min() < 0 or classes.max() >= n_classes:
            return f"{part}_classes is empty or names classes outside 0..{n_classes - 1}"
        strays = np.setdiff1d(labels, classes)
        if len(strays):
            return f"{part}_y has labels of no {part} class, e.g. {int(strays[0])}"
    if np.intersect1d(saved["seen_classes"], saved["unseen_classes"]).size:
        return "a class is both seen and unseen"
    return None


def saved_scores_curve(path: Path) -> SeenUnseenCurve:
    """The seen-unseen curve of calibrated stacking (Chao et al. 2016) of a ``--save-scores`` file."""
    from gzslbench.protocol.calibration import seen_unseen_curve

    saved = read_saved_scores(path)
    return seen_unseen_curve(
        saved["seen_scores"].astype(np.float64),
        saved["seen_y"],
        saved["unseen_scores"].astype(np.float64),
        saved["unseen_y"],
        saved["seen_classes"],
        saved["unseen_classes"],
    )


def save(fig: Figure, out: Path, name: str) -> list[Path]:
    """Write ``fig`` as ``out/name.png`` and ``out/name.pdf`` (reproducible: no creation date in the PDF)."""
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for fmt in FORMATS:
        path = out / f"{name}.{fmt}"
        metadata = {"CreationDate": None} if fmt == "pdf" else {"Software": None}
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format=fmt, dpi=150, bbox_inches="tight", metadata=metadata)
        paths.append(path)
    return paths


def select_records(
    out: str | Path,
    methods: Sequence[str] = (),
    datasets: Sequence[str] = (),
    status: str = "ok",
    problems: list[str] | None = None,
) -> list[dict[str, Any]]:
    """The records under ``out`` with ``status``, optionally only some methods and datasets; unusable record files
    are skipped and named in ``problems`` when given."""
    records = [
        r
        for r in iter_records(out, problems)
        if r.get("status") == status
        and (not methods or r["method"] in methods)
        and (not datasets or r["dataset"] in datasets)
    ]
    if not records:
        raise GZSLBenchError(f"no finished run records under '{out}' match the selected methods and datasets")
    return records


def _label(method: str, config_hash: str, several: bool) -> str:
    return display_method(method) + (f" [{config_hash}]" if several else "")


def _band(ax: Any, x: np.ndarray, values: np.ndarray, label: str, color: Any = None) -> None:
    """Mean line with a ±std band over the rows of ``values`` (seeds x points); NaN-aware."""
    with np.errstate(invalid="ignore"):
        mean = np.nanmean(values, axis=0)
        std = np.nanstd(values, axis=0, ddof=1) if values.shape[0] > 1 else np.zeros_like(mean)
    (line,) = ax.plot(x, mean, label=label, color=color, linewidth=1.5)
    if values.shape[0] > 1:
        ax.fill_between(x, mean - std, mean + std, color=line.get_color(), alpha=0.2, linewidth=0)


def _stack(series: Iterable[Mapping[int, float]]) -> tuple[np.ndarray, np.ndarray]:
    """(epochs, seeds x epochs array) from per-seed {epoch: value} maps, NaN where a seed lacks an epoch."""
    series = list(series)
    epochs = np.array(sorted({e for s in series for e in s}))
    return epochs, np.array([[s.get(e, np.nan) for e in epochs] for s in series], dtype=float)


def plot_curves(records: Sequence[dict[str, Any]], out: Path) -> list[Path]:
    """One figure per dataset: each training stage's loss terms and the final U / S / H per epoch, a line per method."""
    mpl = _mpl()
    by_dataset: dict[str, dict[tuple[str, str], list[dict]]] = defaultdict(lambda: defaultdict(list))
    for r in records:
        by_dataset[r["dataset"]][(r["method"], r["config_hash"])].append(r)
    written = []
    for dataset in dataset_order(list(by_dataset)):
        runs = by_dataset[dataset]
        counts = defaultdict(int)
        for method, _ in runs:
            counts[method] += 1
        present = curve_panels([r for rs in runs.values() for r in rs])
        if not present:
            continue
        test_x_label = _test_x_label([r for rs in runs.values() for r in rs])
        cols = 3 if len(present) <= 12 else 4
        rows = math.ceil(len(present) / cols)
        fig = mpl.Figure(figsize=(4.2 * cols, 3.2 * rows), layout="constrained")
        axes = fig.subplots(rows, cols, squeeze=False).ravel()
        colors = {run: mpl.palette(i % mpl.palette.N) for i, run in enumerate(sorted(runs))}
        for ax, (stage, key) in zip(axes, present, strict=False):
            for (method, config_hash), rs in sorted(runs.items()):
                series = [_series(r, stage, key) for r in rs]
                if not any(series):
                    continue
                x, values = _stack(series)
                label = f"{_label(method, config_hash, counts[method] > 1)} (n={len(rs)})"
                _band(ax, x, values, label, colors[(method, config_hash)])
            ax.xaxis.set_major_locator(mpl.MaxNLocator(integer=True))
            ax.set_title(_panel_title(stage, key))
            ax.set_xlabel(test_x_label if stage == "test" else _STAGE_X_LABEL[stage])
            ax.set_ylabel("%" if stage == "test" else "loss (epoch mean)")
            ax.grid(alpha=0.3)
        for ax in axes[len(present) :]:
            ax.set_visible(False)
        handles, labels = axes[0].get_legend_handles_labels()
        for ax in axes[: len(present)]:
            h, lab = ax.get_legend_handles_labels()
            if len(lab) > len(labels):
                handles, labels = h, lab
        fig.legend(handles, labels, loc="outside lower center", ncols=min(len(labels), 5))
        fig.suptitle(f"Training curves on {display_dataset(dataset)} (mean ± std over seeds)")
        written += save(fig, out, f"curves-{dataset}")
    if not written:
        raise GZSLBenchError("the selected records hold no per-epoch history to plot")
    return written


def curve_panels(records: Sequence[dict[str, Any]]) -> list[tuple[str, str]]:
    """The (stage, term) panels some record has a non-zero series for, in :data:`TRAIN_STAGES` order, then U / S / H."""
    panels = [
        *((stage, term) for stage, terms, _, _ in TRAIN_STAGES for term in terms),
        ("test", "U"),
        ("test", "S"),
        ("test", "H"),
    ]
    return [p for p in panels if any(_series(r, *p) for r in records)]


def _series(record: dict[str, Any], stage: str, key: str) -> dict[int, float]:
    history = record.get("history") or {}
    if stage == "test":
        rows = history.get("test") or []
    else:
        rows = [r for r in history.get("train") or [] if r.get("stage") == stage]
    series = {int(r["epoch"]): float(r[key]) for r in rows if r.get(key) is not None}
    unused_term = stage != "test" and not any(v != 0 for v in series.values())
    return {} if unused_term else series


_STAGE_TITLE = {stage: title for stage, _, title, _ in TRAIN_STAGES}
_STAGE_X_LABEL = {stage: label for stage, _, _, label in TRAIN_STAGES}


def _test_x_label(records: Sequence[dict[str, Any]]) -> str:
    """What the test curves' epochs count: the final classifier's, or the GAN's where a method scores after every
    GAN epoch (LsrGAN) and no record has a final classifier."""
    if any(_series(r, "classifier", "loss") for r in records) or not any(
        _series(r, "gan", "critic_loss") for r in records
    ):
        return "classifier epoch"
    return "GAN epoch"


def _panel_title(stage: str, key: str) -> str:
    if stage == "test":
        return f"{key} (test)"
    return f"{_STAGE_TITLE[stage]} {key.replace('_', ' ')}"


def _flatten(config: Mapping[str, Any]) -> dict[str, Any]:
    """Lists become ``key[i]`` entries, so one factor of a schedule can be the swept value."""
    flat: dict[str, Any] = {}
    for key, value in config.items():
        if isinstance(value, list | tuple):
            flat.update({f"{key}[{i}]": v for i, v in enumerate(value)})
        else:
            flat[key] = value
    return flat


# One curve of a sensitivity figure: its dataset and the values of the other keys, held fixed along it.
Line = tuple[str, tuple[tuple[str, str], ...]]


def sweeps(records: Sequence[dict[str, Any]]) -> dict[tuple[str, str], dict[Line, list[dict[str, Any]]]]:
    """(method, config key) -> lines of records whose configs differ from another only in that key.

    Configs are compared per method and dataset (dataset options included); a key qualifies when
    at least two distinct configs differ only in it. The records of one line share every other
    value, so a grid over two keys gives one line per value of the other key, not a pool of them.
    """
    configs: dict[tuple[str, str, str], dict[str, Any]] = {}
    members: dict[tuple[str, str, str], list[dict]] = defaultdict(list)
    for r in records:
        dataset = f"{r['dataset']}|{sorted((r.get('dataset_options') or {}).items())}"
        key = (r["method"], dataset, r["config_hash"])
        configs[key] = _flatten(r.get("config") or {})
        members[key].append(r)
    found: dict[tuple[str, str], dict[Line, dict[tuple, list[dict]]]] = defaultdict(lambda: defaultdict(dict))
    keys = list(configs)
    for i, a in enumerate(keys):
        for b in keys[i + 1 :]:
            if a[:2] != b[:2]:
                continue
            ca, cb = configs[a], configs[b]
            diff = [k for k in set(ca) | set(cb) if ca.get(k) != cb.get(k)]
            if len(diff) == 1 and _numeric(ca.get(diff[0])) and _numeric(cb.get(diff[0])):
                others = tuple(sorted((k, repr(v)) for k, v in ca.items() if k != diff[0]))
                for k in (a, b):
                    found[(a[0], diff[0])][(a[1], others)][k] = members[k]
    return {
        key: {line: [r for rs in groups.values() for r in rs] for line, groups in lines.items()}
        for key, lines in found.items()
    }


def _numeric(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def line_labels(lines: Sequence[Line]) -> list[str]:
    """A legend label per line: the dataset, and the other keys' values where the lines differ in them."""
    varying = sorted({k for line in lines for k, v in line[1] if any(dict(o[1]).get(k) != v for o in lines)})
    labels = []
    for dataset, others in lines:
        values = dict(others)
        name = display_dataset(dataset.split("|", 1)[0])
        labels.append(", ".join([name, *(f"{k}={values.get(k, '–')}" for k in varying)]))
    return labels


def plot_sensitivity(records: Sequence[dict[str, Any]], out: Path, mode: str = "last") -> list[Path]:
    """One figure per (method, swept key): H against the key's value, one curve per dataset and setting of the
    other keys, ±std band over seeds."""
    mpl = _mpl()
    found = sweeps(records)
    if not found:
        raise GZSLBenchError(
            "no records differ in exactly one config value (run a method with several --set values of one key)"
        )
    written = []
    for (method, key), lines in sorted(found.items()):
        fig = mpl.Figure(figsize=(5.5, 3.8), layout="constrained")
        ax = fig.add_subplot()
        names = dataset_order(sorted({dataset.split("|", 1)[0] for dataset, _ in lines}))
        order = sorted(lines, key=lambda line: (names.index(line[0].split("|", 1)[0]), line))
        xs_all = []
        for line, label in zip(order, line_labels(order), strict=True):
            points: dict[float, list[float]] = defaultdict(list)
            for r in lines[line]:
                if mode in r["metrics"]:
                    points[float(_flatten(r["config"])[key])].append(r["metrics"][mode]["H"])
            if not points:
                continue
            x = np.array(sorted(points))
            xs_all += list(x)
            mean = np.array([np.mean(points[v]) for v in x])
            std = np.array([np.std(points[v], ddof=1) if len(points[v]) > 1 else 0.0 for v in x])
            (drawn,) = ax.plot(x, mean, marker="o", label=label)
            ax.fill_between(x, mean - std, mean + std, color=drawn.get_color(), alpha=0.2, linewidth=0)
        if xs_all and min(xs_all) > 0 and max(xs_all) / min(xs_all) >= 100:
            ax.set_xscale("log")
        ax.set_xlabel(key)
        ax.set_ylabel(h_label(mode))
        ax.set_title(f"{display_method(method)}: sensitivity to {key}")
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small")
        written += save(fig, out, f"sensitivity-{method}-{_safe(key)}")
    return written


def h_label(mode: str) -> str:
    """The H axis's label; ``oracle`` says that its epochs were chosen on the test set, as tables do."""
    return (
        "H (%), selection: oracle (epoch chosen on the TEST set)" if mode == "oracle" else f"H (%), selection: {mode}"
    )


def _safe(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in text).strip("_")


def plot_bars(
    out_results: str | Path,
    out: Path,
    mode: str = "last",
    methods: Sequence[str] = (),
    datasets: Sequence[str] = (),
    problems: list[str] | None = None,
) -> list[Path]:
    """H per method (bars, mean over seeds) per dataset (groups), error bars = std, dots = seeds; unusable record
    files are named in ``problems`` when given."""
    mpl = _mpl()
    frame = load_frame(out_results, methods, datasets, problems)
    stats = aggregate(frame, mode)
    stats = stats[stats["n"] > 0]
    several = stats.groupby(["method", "dataset"])["config_hash"].transform("nunique") > 1
    stats = stats.assign(
        label=[_label(m, h, s) for m, h, s in zip(stats["method"], stats["config_hash"], several, strict=True)]
    )
    order = dataset_order(list(stats["dataset"]))
    labels = sorted(stats["label"].unique())
    width = 0.8 / max(len(labels), 1)
    fig = mpl.Figure(figsize=(max(5.0, 1.6 * len(order) * max(1, len(labels) / 3)), 4.0), layout="constrained")
    ax = fig.add_subplot()
    for j, label in enumerate(labels):
        rows = stats[stats["label"] == label].set_index("dataset")
        xs, ys, errs = [], [], []
        for i, d in enumerate(order):
            if d in rows.index:
                row = rows.loc[d]
                row = row.iloc[0] if isinstance(row, pd.DataFrame) else row
                x = i - 0.4 + width * (j + 0.5)
                xs.append(x)
                ys.append(row["H_mean"])
                errs.append(row["H_std"] if row["n"] > 1 else 0.0)
                ax.scatter([x] * len(row["H_values"]), row["H_values"], s=8, color="black", zorder=3)
        ax.bar(xs, ys, width=width * 0.95, yerr=errs, capsize=3, label=label)
    ax.set_xticks(range(len(order)), [display_dataset(d) for d in order])
    ax.set_ylabel(h_label(mode))
    ax.set_title("H per method and dataset (mean ± std over seeds; dots: seeds)")
    ax.grid(axis="y", alpha=0.3)
    fig.legend(loc="outside lower center", fontsize="small", ncols=min(len(labels), 5))
    return save(fig, out, "bars")


def plot_tsne(
    records: Sequence[dict[str, Any]],
    results: str | Path,
    out: Path,
    *,
    data_dir: str | None = None,
    n_classes: int = 10,
    seed: int | None = None,
    problems: list[str] | None = None,
) -> list[Path]:
    """t-SNE of visual test latents and class-attribute latents, seen and unseen classes side by side.

    One figure per selected (method, dataset, config) with a saved model, from its lowest seed or from
    seed ``seed``.
    ``n_classes`` seen and ``n_classes`` unseen classes are drawn (the first ones by class id).
    A record whose config cannot rebuild its model is skipped and named in ``problems`` when given.
    """
    require_plots()
    saved = [r for r in records if r.get("model_file") and (seed is None or r["seed"] == seed)]
    if saved and not (saved := [r for r in saved if has_latent_space(r["method"])]):
        raise GZSLBenchError("t-SNE draws the latent space of the VAE methods; no selected saved model has one")
    damaged: list[str] = []
    rebuildable = [r for r in saved if _rebuildable(r, results, damaged)]
    if problems is not None:
        problems += damaged
    if saved and not rebuildable:
        raise GZSLBenchError(f"no selected saved model can be rebuilt from its record: {damaged[0]}")
    saved = rebuildable
    if seed is None:
        first: dict[tuple, dict] = {}
        for r in sorted(saved, key=lambda r: r["seed"]):
            first.setdefault((r["method"], r["dataset"], r["config_hash"]), r)
        saved = list(first.values())
    if not saved:
        raise GZSLBenchError("no selected record has a saved model (run with `gzslbench run --save-model`)")
    require_plots("tsne")
    written = []
    for record in saved:
        path = record_path(results, record["dataset"], record["method"], record["config_hash"], record["seed"])
        model_file = path.with_name(record["model_file"])
        if not model_file.exists():
            raise GZSLBenchError(f"saved model '{model_file}' is missing")
        points = latent_points(record, model_file, data_dir=data_dir, n_classes=n_classes)
        fig = _tsne_figure(points, record)
        name = f"tsne-{record['dataset']}-{record['method']}-{record['config_hash']}-seed{record['seed']}"
        written += save(fig, out, name)
    return written


def _rebuildable(record: dict[str, Any], results: str | Path, problems: list[str]) -> bool:
    """Whether ``record``'s config can rebuild its model; if not, why is appended to ``problems``, naming the file."""
    from gzslbench.execution.resolve import recorded_config

    try:
        recorded_config(record["method"], record["config"])
    except ConfigError as exc:
        path = record_path(results, record["dataset"], record["method"], record["config_hash"], record["seed"])
        problems.append(f"{path}: {exc}")
        return False
    return True


def has_latent_space(method: str) -> bool:
    """Whether ``method`` is a registered method of the cross-modal VAE family, whose latents t-SNE draws."""
    from gzslbench.core.registry import METHODS
    from gzslbench.methods.vae.method import CrossModalVAEMethod

    return method in METHODS and issubclass(METHODS.get(method), CrossModalVAEMethod)


def latent_points(
    record: dict[str, Any], model_file: Path, *, data_dir: str | None = None, n_classes: int = 10
) -> dict[str, np.ndarray]:
    """Latent means of test images and class attributes of ``n_classes`` seen and unseen classes.

    Rebuilds the backbone from the record's config (checked: a damaged value is a ConfigError naming it)
    and the dataset from its name and options, loads the state dict with ``weights_only=True`` and
    encodes without noise (``z = mu``).
    """
    import torch

    from gzslbench.execution.resolve import load_dataset, recorded_config
    from gzslbench.methods.vae.method import EvalPermutations
    from gzslbench.methods.vae.model import CrossModalVAE, VAESettings, backbone_spec
    from gzslbench.protocol.splits import make_split

    data = load_dataset(record["dataset"], data_dir, record.get("dataset_options") or {})
    split = make_split(data, "test")
    config = recorded_config(record["method"], record["config"])
    device = torch.device("cpu")
    spec = backbone_spec(config, split.feature_dim, split.attributes.shape[1], split.n_classes)
    model = CrossModalVAE(spec, device, torch.Generator().manual_seed(0))
    try:
        with warnings.catch_warnings():  # the unpickler's notes on a foreign pickle: the error below says it all
            warnings.simplefilter("ignore")
            state = torch.load(model_file, map_location=device, weights_only=True)
        model.load_state_dict(state)
    except Exception as exc:
        # Garbage makes the unpickler fail in any way (IndexError, KeyError, UnpicklingError, ...); a pickle of
        # something else is refused by weights_only; another model's weights fail load_state_dict.
        first_line = (str(exc).strip().splitlines() or [""])[0]
        raise GZSLBenchError(
            f"cannot load saved model '{model_file}': not a state dict of this model ({type(exc).__name__}: "
            f"{first_line[:200]}); rerun with --save-model --force to save it again"
        ) from exc
    model.eval()
    settings = VAESettings.from_config(config)
    generator = torch.Generator().manual_seed(int(record["seed"]))
    perm = EvalPermutations(spec.use_iem and settings.iem_shuffle, settings, spec.latent, generator, device)
    seen = np.sort(split.seen)[:n_classes]
    unseen = np.sort(split.unseen)[:n_classes]
    rows_seen = np.isin(split.test_seen_y, seen)
    rows_unseen = np.isin(split.test_unseen_y, unseen)
    classes = np.concatenate([seen, unseen])
    with torch.no_grad():
        x = torch.as_tensor(np.concatenate([split.test_seen_x[rows_seen], split.test_unseen_x[rows_unseen]]))
        visual = model.encode("visual", x, perm("visual"))[0].numpy()
        attribute = model.encode("attribute", torch.as_tensor(split.attributes[classes]), perm("attribute"))[0].numpy()
    return {
        "visual": visual,
        "visual_y": np.concatenate([split.test_seen_y[rows_seen], split.test_unseen_y[rows_unseen]]),
        "attribute": attribute,
        "attribute_y": classes,
        "seen": seen,
        "unseen": unseen,
    }


def _tsne_figure(points: dict[str, np.ndarray], record: dict[str, Any]) -> Figure:
    from sklearn.manifold import TSNE

    mpl = _mpl()
    stacked = np.concatenate([points["visual"], points["attribute"]])
    perplexity = float(min(30.0, max(2.0, (len(stacked) - 1) / 3)))
    embedded = TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=int(record["seed"])).fit_transform(
        stacked
    )
    n_visual = len(points["visual"])
    vis, att = embedded[:n_visual], embedded[n_visual:]
    fig = mpl.Figure(figsize=(10, 4.6), layout="constrained")
    axes = fig.subplots(1, 2, sharex=True, sharey=True)
    for ax, name, classes in ((axes[0], "seen", points["seen"]), (axes[1], "unseen", points["unseen"])):
        for k, c in enumerate(classes):
            color = mpl.palette(k % mpl.palette.N)
            mask = points["visual_y"] == c
            ax.scatter(vis[mask, 0], vis[mask, 1], s=10, color=color, alpha=0.7)
            at = att[points["attribute_y"] == c]
            ax.scatter(at[:, 0], at[:, 1], s=160, marker="*", color=color, edgecolors="black", linewidths=0.8)
        ax.set_title(f"{name} classes ({len(classes)})")
        ax.set_xticks([])
        ax.set_yticks([])
    handles = [
        mpl.Line2D([], [], marker="o", linestyle="", color="gray", label="visual features (test images, z = mu)"),
        mpl.Line2D(
            [],
            [],
            marker="*",
            linestyle="",
            color="gray",
            markeredgecolor="black",
            markersize=12,
            label="semantic features (class attributes)",
        ),
    ]
    fig.legend(handles=handles, loc="outside lower center", ncols=2)
    fig.suptitle(
        f"t-SNE of aligned latent features: {display_method(record['method'])} on "
        f"{display_dataset(record['dataset'])}, seed {record['seed']} (colour = class)"
    )
    return fig


def plot_seen_unseen(
    out_results: str | Path,
    out: Path,
    methods: Sequence[str] = (),
    datasets: Sequence[str] = (),
    problems: list[str] | None = None,
) -> list[Path]:
    """Seen-unseen accuracy curves of calibrated stacking (Chao et al. 2016), one figure per dataset.

    One curve per method and config, from the first seed's saved test scores (``run --save-scores``);
    the legend gives AUSUC (mean over the seeds with scores) and the plain (U, S) point is marked.
    Scores whose record file is unusable are skipped, the record named in ``problems`` when given.
    """
    from gzslbench.protocol.calibration import ausuc

    mpl = _mpl()
    found: dict[str, dict[str, list[Any]]] = {}
    for path in sorted(Path(out_results).rglob(f"seed-*{SCORES_SUFFIX}")):
        record_file = path.with_name(path.name.replace(SCORES_SUFFIX, ".json"))
        if not record_file.exists():
            continue  # scores of a run whose record was never written
        record = load_or_note(record_file, problems)
        if record is None or record["status"] != "ok":
            continue
        if (methods and record["method"] not in methods) or (datasets and record["dataset"] not in datasets):
            continue
        curve = saved_scores_curve(path)
        key = _label(record["method"], record["config_hash"], False) + f" [{record['config_hash']}]"
        found.setdefault(record["dataset"], {}).setdefault(key, []).append((curve, record["metrics"]["last"]))
    if not found:
        raise GZSLBenchError(
            f"no saved test scores under '{out_results}' for the selected runs (run with --save-scores)"
        )
    paths: list[Path] = []
    for dataset in dataset_order(list(found)):
        fig = mpl.Figure(figsize=(5.0, 4.6), layout="constrained")
        ax = fig.add_subplot()
        for i, (label, runs) in enumerate(sorted(found[dataset].items())):
            curve, last = runs[0]
            area = np.mean([ausuc(c) for c, _ in runs]) * 100
            color = mpl.palette(i % 10)
            ax.plot(curve.acc_unseen * 100, curve.acc_seen * 100, color=color, label=f"{label}: AUSUC {area:.1f}")
            ax.scatter([last["U"]], [last["S"]], color=color, marker="o", zorder=3)
        ax.set_xlabel("unseen accuracy U (%)")
        ax.set_ylabel("seen accuracy S (%)")
        ax.set_title(f"Seen-unseen curve, {display_dataset(dataset)} (dot: uncalibrated)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small")
        paths += save(fig, out, f"seen-unseen-{_safe(dataset)}")
    return paths
