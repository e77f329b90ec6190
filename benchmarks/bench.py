"""The project's yardstick, measured against the machine's own limits in one run.

A script of the checkout, not part of the installed package (it needs gzslbench installed)::

    python benchmarks/bench.py --quick                # minutes; --json for one JSON object
    python benchmarks/bench.py --device cuda --seeds 5
    python benchmarks/bench.py --size awa2            # AWA2's shapes: the peak memory

or from Python, with ``benchmarks/`` on ``sys.path``::

    from bench import run_bench, format_report
    result = run_bench(quick=True)          # a dict; `--json` prints it
    print(format_report(result))

It measures (a) fp32 GFLOP/s of a large square matmul (first and last, the faster kept) and
of the VAE's own GEMM shapes, (b) memory bandwidth (a large copy), (c) ACMR training
throughput in GFLOP/s, from the analytic FLOP count of one iteration (:func:`iteration_flops`)
and the real training loop, single seed and K seeds trained as one batched computation (the
runner's ``--batch-seeds`` path), (d) the final-classifier stage, (e) cold (first, converting)
and cached load of an xlsa17-format dataset it writes, (f) peak RSS. Numbers on a CPU shared
with other processes are noisy: compare the efficiency ratios of one run, not absolute numbers
across runs.
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing
import os
import platform
import resource
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import scipy.io
import torch

from gzslbench.core.environment import DEVICE_CHOICES, cpu_name, resolve_device
from gzslbench.core.errors import GZSLBenchError
from gzslbench.core.registry import DATASETS, METHODS
from gzslbench.execution.layouts import Choice, Workload, candidates, measure, pick
from gzslbench.execution.process import set_up_own_process
from gzslbench.methods.base import DataShapes, RunContext
from gzslbench.methods.vae.classifier import ClassifierSettings, train_final_classifier
from gzslbench.methods.vae.model import (
    BackboneSpec,
    CrossModalVAE,
    VAESettings,
    backbone_spec,
    make_optimizer,
    train_vae,
)
from gzslbench.protocol.splits import Split

METHOD = "acmr"


@dataclass(frozen=True)
class BenchSize:
    """The shapes a benchmark runs at: a dataset's counts and dims, and the work of each measurement.

    ``config`` overrides the method's config for ``defaults`` (``tiny`` shrinks the widths for tests);
    ``*_quick`` fields are the smaller amounts of work of ``--quick``.
    """

    name: str
    feature_dim: int
    attribute_dim: int
    n_seen: int
    n_unseen: int
    n_train: int
    n_test_seen: int
    n_test_unseen: int
    matmul_n: int
    matmul_n_quick: int
    copy_mb: int
    copy_mb_quick: int
    config: dict[str, Any] = field(default_factory=dict)
    defaults: str = "cub"  # the dataset whose method settings and xlsa17 adapter the size uses

    @property
    def n_classes(self) -> int:
        return self.n_seen + self.n_unseen


# The tiny size shrinks every width, for tests; its numbers mean nothing.
TINY_CONFIG: dict[str, Any] = {
    "latent_size": 4,
    "visual_encoder_hidden": 24,
    "visual_decoder_hidden": 24,
    "attribute_encoder_hidden": 12,
    "attribute_decoder_hidden": 12,
    "iem_hidden": 6,
    "batch_size": 20,
    "seen_samples": 10,
    "unseen_samples": 10,
    "cls_epochs": 2,
}
SIZES = {
    "cub": BenchSize("cub", 2048, 312, 150, 50, 7057, 1764, 2967, 4096, 2048, 512, 128),
    "tiny": BenchSize("tiny", 32, 8, 6, 4, 240, 30, 40, 128, 128, 4, 4, TINY_CONFIG),
    # the largest benchmark: 23,527 training instances (3.3x CUB's), ACMR's 300 classifier epochs
    "awa2": BenchSize("awa2", 2048, 85, 40, 10, 23527, 5882, 7913, 4096, 2048, 512, 128, defaults="awa2"),
}


def method_config(method: str = METHOD, size: BenchSize = SIZES["cub"]) -> dict[str, Any]:
    """The method's config with its defaults for the size's dataset (CUB's unless said) and the size's overrides."""
    cls = METHODS.get(method)
    return {**cls.defaults, **cls.dataset_defaults.get(size.defaults, {}), **size.config}


def random_split(size: BenchSize = SIZES["cub"], seed: int = 0) -> Split:
    """Random data with the size's shapes (CUB's by default: 7057 training instances of 150 classes, 2048-d)."""
    rng = np.random.default_rng(seed)
    n_seen, n_unseen = size.n_seen, size.n_unseen
    k, d = size.n_classes, size.feature_dim
    return Split(
        kind="test",
        train_x=rng.random((size.n_train, d), dtype=np.float32),
        train_y=np.sort(np.arange(size.n_train) % n_seen).astype(np.int64),
        test_seen_x=rng.random((size.n_test_seen, d), dtype=np.float32),
        test_seen_y=(np.arange(size.n_test_seen) % n_seen).astype(np.int64),
        test_unseen_x=rng.random((size.n_test_unseen, d), dtype=np.float32),
        test_unseen_y=(n_seen + np.arange(size.n_test_unseen) % n_unseen).astype(np.int64),
        attributes=rng.random((k, size.attribute_dim), dtype=np.float32),
        seen=np.arange(n_seen),
        unseen=np.arange(n_seen, k),
        class_ids=np.arange(k),
        defaults_from=size.defaults,
    )


def size_spec(size: BenchSize = SIZES["cub"], method: str = METHOD) -> BackboneSpec:
    """The method's backbone at the size's shapes."""
    return backbone_spec(method_config(method, size), size.feature_dim, size.attribute_dim, size.n_classes)


def build_model(
    size: BenchSize = SIZES["cub"], method: str = METHOD, device: str | torch.device = "cpu", seed: int = 0
) -> tuple[CrossModalVAE, dict[str, Any]]:
    """The method's VAE backbone at the size's shapes and its config."""
    config = method_config(method, size)
    device = torch.device(device)
    generator = torch.Generator(device=device).manual_seed(seed)
    return CrossModalVAE(size_spec(size, method), device, generator), config


# ---- FLOP count ----


@dataclass(frozen=True)
class Gemm:
    """``count`` independent products of an (m, k) by a (k, n) matrix, as one pass of one layer runs them.

    ``kind`` is the pass: ``forward`` (``x @ w``), ``weight_grad`` (``x^T @ g``, (k, m) by (m, n))
    or ``input_grad`` (``g @ w^T``, (m, n) by (n, k)); m, k and n are always the forward's.
    Each costs ``2 * m * k * n`` FLOP per product.
    """

    layer: str
    kind: str
    m: int
    k: int
    n: int
    count: int = 1

    @property
    def flop(self) -> int:
        return 2 * self.m * self.k * self.n * self.count


def iteration_gemms(spec: BackboneSpec, batch: int) -> list[Gemm]:
    """Every matrix product of one VAE training iteration (forward and backward) of a ``spec`` backbone.

    Each fully connected layer runs its forward product, a weight-gradient product and an
    input-gradient product, except the encoders' first layers, whose input is data (no gradient).
    Decoders see both latents (2 * batch rows) with cross-reconstruction. VSA adds one batched
    (2, latent) by (latent, latent) product per sample and its two gradients. Element-wise work,
    reductions and the optimizer step are not products and are not counted.
    """
    latent = spec.latent
    decoder_rows = 2 * batch if spec.use_cross_reconstruction else batch
    layers: list[tuple[str, int, int, int, bool]] = []  # name, rows, in, out, input needs a gradient
    for modality, dim, (enc_hidden, dec_hidden) in (
        ("visual", spec.visual_dim, spec.visual_hidden),
        ("attribute", spec.attribute_dim, spec.attribute_hidden),
    ):
        layers += [
            (f"{modality}_encoder.hidden", batch, dim, enc_hidden, False),
            (f"{modality}_encoder.mu", batch, enc_hidden, latent, True),
            (f"{modality}_encoder.logvar", batch, enc_hidden, latent, True),
            (f"{modality}_decoder.hidden", decoder_rows, latent, dec_hidden, True),
            (f"{modality}_decoder.out", decoder_rows, dec_hidden, dim, True),
        ]
        if spec.use_iem:
            layers += [
                (f"{modality}_iem.hidden", batch, 2 * latent, spec.iem_hidden, True),
                (f"{modality}_iem.out", batch, spec.iem_hidden, latent, True),
            ]
        if spec.use_vsa:
            layers.append((f"{modality}_classifier.fc", batch, latent, spec.n_classes, True))
    gemms = []
    for name, rows, n_in, n_out, input_grad in layers:
        kinds = ("forward", "weight_grad", "input_grad") if input_grad else ("forward", "weight_grad")
        gemms += [Gemm(name, kind, rows, n_in, n_out) for kind in kinds]
    if spec.use_vsa:
        gemms += [Gemm("vsa", kind, 2, latent, latent, batch) for kind in ("forward", "weight_grad", "input_grad")]
    return gemms


def iteration_flops(spec: BackboneSpec, batch: int) -> int:
    """FLOP of the matrix products of one VAE training iteration (see :func:`iteration_gemms`)."""
    return sum(g.flop for g in iteration_gemms(spec, batch))


# ---- machine limits ----


def synchronize(device: torch.device) -> None:
    """Wait for queued device work, so that a timing covers it."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def best_seconds(fn: Callable[[], Any], device: torch.device, min_time: float = 0.5, min_reps: int = 3) -> float:
    """Fastest of at least ``min_reps`` calls of ``fn`` (and ``min_time`` seconds of them), after a warm-up call.

    The fastest call is the machine's limit: slower ones were interrupted by other processes.
    """
    fn()
    synchronize(device)
    times: list[float] = []
    begin = time.perf_counter()
    while len(times) < min_reps or time.perf_counter() - begin < min_time:
        start = time.perf_counter()
        fn()
        synchronize(device)
        times.append(time.perf_counter() - start)
    return min(times)


def gemm_seconds(gemm: Gemm, device: torch.device, min_time: float = 0.05) -> float:
    """Best seconds of ``gemm`` with its pass's operand layouts (the layers keep (in, out) weights)."""
    generator = torch.Generator(device=device).manual_seed(0)
    lead = (gemm.count,) if gemm.count > 1 else ()

    def rand(*shape: int) -> torch.Tensor:
        return torch.rand((*lead, *shape), generator=generator, device=device)

    x, w, g = rand(gemm.m, gemm.k), rand(gemm.k, gemm.n), rand(gemm.m, gemm.n)
    mm = torch.bmm if lead else torch.mm
    if gemm.kind == "forward":
        bias = torch.zeros(gemm.n, device=device)
        fn = (lambda: torch.bmm(x, w)) if lead else (lambda: torch.addmm(bias, x, w))
    elif gemm.kind == "weight_grad":
        xt = x.transpose(-2, -1)
        fn = lambda: mm(xt, g)  # noqa: E731
    elif gemm.kind == "input_grad":
        wt = w.transpose(-2, -1)
        fn = lambda: mm(g, wt)  # noqa: E731
    else:
        raise ValueError(f"unknown GEMM kind {gemm.kind!r}")
    return best_seconds(fn, device, min_time)


def matmul_gflops(n: int, device: torch.device, min_time: float = 1.0) -> float:
    """fp32 GFLOP/s of an (n, n) by (n, n) product: the machine's peak-like yardstick."""
    generator = torch.Generator(device=device).manual_seed(0)
    a = torch.rand(n, n, generator=generator, device=device)
    b = torch.rand(n, n, generator=generator, device=device)
    return 2 * n**3 / best_seconds(lambda: a @ b, device, min_time, min_reps=2) / 1e9


def gemm_gflops(gemm: Gemm, device: str | torch.device = "cpu") -> float:
    """GFLOP/s of one GEMM shape here."""
    return gemm.flop / gemm_seconds(gemm, torch.device(device), min_time=0.5) / 1e9


def copy_gbps(megabytes: int, device: torch.device, min_time: float = 0.5) -> float:
    """Memory bandwidth in GB/s of a large copy (a read and a write of every byte)."""
    n = megabytes * 2**20 // 4
    src = torch.rand(n, device=device)
    dst = torch.empty_like(src)
    return 2 * src.numel() * 4 / best_seconds(lambda: dst.copy_(src), device, min_time) / 1e9


def optimizer_step_seconds(size: BenchSize, device: torch.device, min_time: float = 0.5) -> float:
    """Best seconds of one AMSGrad step over the method's parameters, as training takes it.

    The step reads and writes every parameter and its three moment buffers: memory-bound work
    that no faster product removes, so it is the second half of a step's floor.
    """
    model, config = build_model(size, METHOD, device)
    settings = VAESettings.from_config(config)
    optimizer = make_optimizer(model.parameter_groups(settings.lr, settings.iem_lr, settings.vsa_lr), device)
    for p in model.parameters():
        p.grad = torch.full_like(p, 1e-3)
    return best_seconds(optimizer.step, device, min_time)


# ---- the method's own stages ----


class TrainingBench:
    """The real VAE training loop (:func:`train_vae`) at a size's shapes, with ``iterations`` per epoch.

    The FLOP of an iteration do not depend on the number of training instances, only on the batch
    and the widths, so a shorter epoch (fewer instances) measures the same per-iteration work.
    """

    def __init__(
        self, size: BenchSize, iterations: int, device: torch.device, method: str = METHOD, seed: int = 0
    ) -> None:
        self.model, self.config = build_model(size, method, device, seed)
        self.batch = VAESettings.from_config(self.config).batch_size
        self.iterations = iterations
        generator = torch.Generator(device=device).manual_seed(seed)
        n = iterations * self.batch
        self.train_x = torch.rand(n, size.feature_dim, generator=generator, device=device)
        self.train_y = torch.randint(size.n_seen, (n,), generator=generator, device=device)
        self.attributes = torch.rand(size.n_classes, size.attribute_dim, generator=generator, device=device)
        self.device = device
        self.generator = torch.Generator(device=device).manual_seed(seed + 1)
        self.flop_per_iteration = iteration_flops(self.model.spec, self.batch)

    def train(self, epochs: int, iterations: int | None = None) -> float:
        """Seconds of ``epochs`` epochs (of ``iterations`` iterations, default all) of the training loop."""
        rows = (iterations or self.iterations) * self.batch
        settings = VAESettings.from_config({**self.config, "epochs": epochs})
        ctx = RunContext(seed=0, device=self.device)
        with ctx.timer("vae_s"):
            x, y = self.train_x[:rows], self.train_y[:rows]
            train_vae([self.model], x, y, self.attributes, settings, [ctx], [self.generator])
        return ctx.timings["vae_s"]

    def measure(self, epochs: int, warmup_iterations: int = 3) -> dict[str, float]:
        """Steady-state throughput of ``epochs`` epochs, after a short warm-up epoch.

        Timed as a call of ``1 + epochs`` epochs less a call of one: what a call costs once (a new
        optimizer and the first touch of its buffers), which a real run pays once in thousands
        of iterations, cancels out.
        """
        self.train(1, min(warmup_iterations, self.iterations))
        one = self.train(1)
        seconds = self.train(1 + epochs) - one
        iterations = epochs * self.iterations
        return {
            "seconds": seconds,
            "iterations": iterations,
            "iteration_ms": seconds / iterations * 1e3,
            "gflop_per_iteration": self.flop_per_iteration / 1e9,
            "gflops": self.flop_per_iteration * iterations / seconds / 1e9,
        }


def classifier_stage_seconds(
    size: BenchSize, epochs: int, device: torch.device, method: str = METHOD
) -> tuple[float, int]:
    """(seconds of ``epochs`` final-classifier epochs, the method's epoch count) on random latents.

    The latents have the stage's real shapes: ``seen_samples`` per seen class and
    ``unseen_samples`` per unseen class to train on, and every test instance to score per epoch.
    """
    config = method_config(method, size)
    settings = ClassifierSettings.from_config({**config, "cls_epochs": epochs})
    latent = int(config["latent_size"])
    n_train = size.n_seen * int(config["seen_samples"]) + size.n_unseen * int(config["unseen_samples"])
    generator = torch.Generator(device=device).manual_seed(0)
    train_z = torch.randn(n_train, latent, generator=generator, device=device)
    train_y = torch.randint(size.n_classes, (n_train,), generator=generator, device=device)
    test_seen = torch.randn(size.n_test_seen, latent, generator=generator, device=device)
    test_unseen = torch.randn(size.n_test_unseen, latent, generator=generator, device=device)
    ctx = RunContext(seed=0, device=device)
    stage = train_final_classifier(
        train_z[None], train_y, test_seen[None], test_unseen[None], size.n_classes, settings, [ctx], [generator]
    )
    for _ in stage:
        pass
    return ctx.timings["classifier_s"], int(config["cls_epochs"])


def write_xlsa17_folder(root: Path, size: BenchSize, name: str = "CUB", seed: int = 0) -> Path:
    """An xlsa17-format dataset folder ``root/name`` (res101.mat, att_splits.mat) of random data at ``size``."""
    rng = np.random.default_rng(seed)
    n_trainval = size.n_train
    seen_labels = np.concatenate([np.arange(n_trainval) % size.n_seen, np.arange(size.n_test_seen) % size.n_seen])
    unseen_labels = size.n_seen + np.arange(size.n_test_unseen) % size.n_unseen
    labels = np.concatenate([seen_labels, unseen_labels]) + 1
    index = np.arange(1, len(labels) + 1)
    folder = root / name
    folder.mkdir(parents=True, exist_ok=True)
    features = rng.random((size.feature_dim, len(labels)), dtype=np.float32)
    scipy.io.savemat(folder / "res101.mat", {"features": features, "labels": labels.reshape(-1, 1).astype(float)})
    scipy.io.savemat(
        folder / "att_splits.mat",
        {
            "att": rng.random((size.attribute_dim, size.n_classes)),
            "trainval_loc": index[:n_trainval].reshape(-1, 1),
            "test_seen_loc": index[n_trainval : len(seen_labels)].reshape(-1, 1),
            "test_unseen_loc": index[len(seen_labels) :].reshape(-1, 1),
            "allclasses_names": np.array([[f"class{c:03d}"] for c in range(size.n_classes)], dtype=object),
        },
    )
    return folder


def load_seconds(size: BenchSize) -> dict[str, float]:
    """Seconds of the first (converting) and the second (cached) load of an xlsa17-format folder at ``size``.

    Both use a fresh cache folder; the source files were just written, so "cold" means not yet
    converted, not read from a cold disk.
    """
    with tempfile.TemporaryDirectory(prefix="gzslbench-bench-") as tmp:
        root = Path(tmp)
        adapter = DATASETS.get(size.defaults)()
        folder = write_xlsa17_folder(root / "data", size, name=adapter.folder)
        mb = sum(p.stat().st_size for p in folder.iterdir()) / 2**20
        previous = os.environ.get("GZSLBENCH_CACHE")
        os.environ["GZSLBENCH_CACHE"] = str(root / "cache")
        try:
            times = []
            for expected in ("written", "hit"):
                start = time.perf_counter()
                data = adapter.load(root / "data")
                times.append(time.perf_counter() - start)
                if data.extra.get("cache") != expected:
                    raise GZSLBenchError(f"bench: expected a cache {expected} load, got {data.extra.get('cache')}")
                del data
        finally:
            if previous is None:
                os.environ.pop("GZSLBENCH_CACHE", None)
            else:
                os.environ["GZSLBENCH_CACHE"] = previous
    return {"load_cold_s": times[0], "load_cached_s": times[1], "load_size_mb": mb}


def peak_rss_mb() -> float:
    """This process's peak resident set size so far, in MiB.

    Linux's ``VmHWM`` where there is one: ``getrusage``'s ``ru_maxrss`` survives ``exec``, so a
    spawned process would report its parent's size at the fork.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 2**10
    except OSError:
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if platform.system() == "Darwin" else peak / 2**10  # bytes on macOS, KiB elsewhere


# ---- K seeds at once ----


def batched_seeds(
    size: BenchSize,
    k: int,
    iterations: int,
    epochs: int,
    device: torch.device,
    wait: Callable[[], Any] | None = None,
) -> dict[str, Any]:
    """Aggregate training GFLOP/s of ``k`` seeds trained as one batched computation (``--batch-seeds``).

    The runner's own path (:func:`~gzslbench.methods.vae.model.train_vae`, a lone seed as a batch
    of one, as the runner does) in this process, after a
    short warm-up and then ``wait()`` where given; ``peak_rss_mb`` is this process's peak after the batch.
    """
    bench = TrainingBench(size, iterations, device)
    models = [bench.model, *(build_model(size, METHOD, device, seed)[0] for seed in range(1, k))]

    def train(epochs: int, iterations: int) -> float:
        rows = iterations * bench.batch
        x, y = bench.train_x[:rows], bench.train_y[:rows]
        settings = VAESettings.from_config({**bench.config, "epochs": epochs})
        ctxs = [RunContext(seed=seed, device=device) for seed in range(k)]
        generators = [torch.Generator(device=device).manual_seed(seed + 1) for seed in range(k)]
        synchronize(device)
        start = time.perf_counter()
        train_vae(models, x, y, bench.attributes, settings, ctxs, generators)
        synchronize(device)
        return time.perf_counter() - start

    train(1, min(3, iterations))
    if wait is not None:
        wait()
    seconds = train(epochs, iterations)
    flop = bench.flop_per_iteration * iterations * epochs * k
    return {"gflops": flop / seconds / 1e9, "seconds": seconds, "peak_rss_mb": peak_rss_mb()}


def _unit_seconds(
    size_name: str, k: int, iterations: int, epochs: int, device: str, threads: int, barrier: Any = None
) -> tuple[float, float]:
    """One planned unit (k seeds, batched when k > 1) in a worker: (timed seconds, GFLOP done).

    Every worker warms up first, then waits at ``barrier`` (shared by the processes), so that the
    processes' timed epochs overlap as they do in a real command.
    """
    torch.set_num_threads(threads)
    set_up_own_process()
    torch.set_flush_denormal(True)  # as a run computes (core.environment.flush_denormals)
    wait = barrier.wait if barrier is not None else None
    result = batched_seeds(SIZES[size_name], k, iterations, epochs, torch.device(device), wait)
    return result["seconds"], result["gflops"] * result["seconds"]


def _round_seconds(args: Sequence[tuple], n_jobs: int) -> tuple[float, float]:
    """One round of planned units on ``n_jobs`` processes: (seconds of its busiest process, GFLOP done).

    The first unit of every process runs at once with the others (a barrier lines up their timed
    epochs); further units are timed afterwards and added to the first free process.
    """
    from joblib import Parallel, delayed

    if n_jobs == 1:
        done = [_unit_seconds(*a) for a in args]
        return sum(seconds for seconds, _ in done), sum(gflop for _, gflop in done)
    with multiprocessing.Manager() as manager:
        barrier = manager.Barrier(min(n_jobs, len(args)))
        done = Parallel(n_jobs=n_jobs)(delayed(_unit_seconds)(*a, barrier) for a in args[:n_jobs])
    per_process = [seconds for seconds, _ in done]
    for a in args[n_jobs:]:
        seconds, gflop = _unit_seconds(*a)
        done.append((seconds, gflop))
        per_process[per_process.index(min(per_process))] += seconds
    return max(per_process), sum(gflop for _, gflop in done)


def planned_seeds(
    size: BenchSize,
    seeds: int,
    iterations: int,
    epochs: int,
    device: torch.device,
    cores: int,
    layout: Choice | None = None,
) -> dict[str, Any]:
    """Aggregate GFLOP/s of ``seeds`` seeds run as ``--n-jobs auto --batch-seeds auto`` plans them.

    Each round of the plan (:func:`~gzslbench.execution.schedule.execution_rounds`: the units on one thread,
    then the tail's on more) is timed as :func:`_round_seconds` says; the aggregate is all seeds'
    FLOP over the rounds' busiest processes' times added up.
    """
    from gzslbench.execution.planning import plan_execution
    from gzslbench.execution.schedule import execution_rounds, schedule
    from gzslbench.execution.spec import RunSpec

    specs = [RunSpec(METHOD, size.name, seed, {}) for seed in range(seeds)]
    plan = plan_execution(specs, cores=cores, device_type=device.type, n_jobs="auto", batch_seeds="auto", layout=layout)
    units = schedule(specs, plan)
    seconds, gflop = 0.0, 0.0
    for round_units, n_jobs in execution_rounds(units, min(plan.n_jobs, len(units))):
        args = [(size.name, len(u), iterations, epochs, str(device), u[0].threads) for u in round_units]
        round_s, round_gflop = _round_seconds(args, n_jobs)
        seconds, gflop = seconds + round_s, gflop + round_gflop
    return {"gflops": gflop / seconds, "plan": plan.describe(), "units": [len(u) for u in units]}


# ---- the whole bench ----


def run_bench(
    *,
    quick: bool = False,
    device: str | torch.device = "cpu",
    threads: int | None = None,
    seeds: int = 5,
    size: str = "cub",
    log: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Every measurement of the bench, as one flat dict (the ``--json`` object).

    ``quick`` times fewer iterations and epochs of the same shapes (under 3 minutes on 2 cores).
    """
    if size not in SIZES:
        raise GZSLBenchError(f"unknown bench size '{size}'; known: {', '.join(SIZES)}")
    if seeds < 1:
        raise GZSLBenchError(f"--seeds must be at least 1, got {seeds}")
    shape = SIZES[size]
    device = torch.device(device)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    threads = cores if threads is None else threads
    if threads < 1:
        raise GZSLBenchError(f"--threads must be at least 1, got {threads}")
    torch.set_num_threads(threads)
    set_up_own_process()
    torch.set_flush_denormal(True)  # as a run computes (core.environment.flush_denormals)
    say = log or (lambda message: None)
    config = method_config(METHOD, shape)
    batch = int(config["batch_size"])
    epoch_iterations = math.ceil(shape.n_train / batch)
    iterations, epochs = (min(20, epoch_iterations), 1) if quick else (epoch_iterations, 2)
    result: dict[str, Any] = {
        "size": shape.name,
        "quick": quick,
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else cpu_name(),
        "cores": cores,
        "threads": threads,
        "torch": torch.__version__,
    }

    say(f"ACMR training: {epochs} x {iterations} iterations of batch {batch}")
    single = TrainingBench(shape, iterations, device).measure(epochs)
    cls_epochs_timed = min(5, int(config["cls_epochs"])) if quick else int(config["cls_epochs"])
    say(f"final classifier: {cls_epochs_timed} epochs")
    cls_s, cls_epochs = classifier_stage_seconds(shape, cls_epochs_timed, device)
    result.update(
        acmr_gflops=single["gflops"],
        acmr_gflop_per_iteration=single["gflop_per_iteration"],
        acmr_iteration_ms=single["iteration_ms"],
        acmr_epoch_s=single["iteration_ms"] * epoch_iterations / 1e3,
        acmr_iterations_timed=single["iterations"],
        cls_stage_s=cls_s * cls_epochs / cls_epochs_timed,
        cls_epochs=cls_epochs,
        cls_epochs_timed=cls_epochs_timed,
        peak_rss_mb=peak_rss_mb(),
    )
    if device.type == "cuda":
        result["gpu_peak_mem_mb"] = torch.cuda.max_memory_allocated(device) / 2**20

    n = shape.matmul_n_quick if quick else shape.matmul_n
    say(f"matmul {n} x {n}")
    result.update(matmul_gflops_measured=[matmul_gflops(n, device)], matmul_n=n)
    say("the VAE's GEMM shapes")
    gemms = iteration_gemms(size_spec(shape), batch)
    timed = {g: gemm_seconds(g, device, min_time=0.02 if quick else 0.1) for g in set(gemms)}
    gemm_s = sum(timed[g] for g in gemms)
    result["vae_gemm_gflops"] = sum(g.flop for g in gemms) / gemm_s / 1e9
    result["vae_gemm_ms"] = gemm_s * 1e3
    result["gemm_shapes"] = [
        {"layer": g.layer, "kind": g.kind, "m": g.m, "k": g.k, "n": g.n, "count": g.count, "gflops": g.flop / s / 1e9}
        for g, s in sorted(timed.items(), key=lambda item: -item[0].flop)
    ]
    say("AMSGrad step")
    result["optimizer_step_ms"] = optimizer_step_seconds(shape, device, min_time=0.1 if quick else 0.5) * 1e3
    # a step's floor: every product at its own shape's measured rate, plus the optimizer step
    result["acmr_ceiling_gflops"] = single["gflop_per_iteration"] / (gemm_s + result["optimizer_step_ms"] / 1e3)
    mb = shape.copy_mb_quick if quick else shape.copy_mb
    say(f"copy {mb} MiB")
    result.update(copy_gbps=copy_gbps(mb, device), copy_mb=mb)

    say(f"{seeds} seeds at once: one batched computation of {threads} thread(s)")
    many = batched_seeds(shape, seeds, iterations, epochs, device)
    result.update(
        acmr_batched_gflops=many["gflops"],
        batched_mode="batched",
        batched_k=seeds,
        batched_threads_per_process=threads,
        batched_peak_rss_mb=many["peak_rss_mb"],
        batched_note=(
            f"{seeds} seeds as one batched computation (--batch-seeds {seeds}) in one process of {threads} "
            "thread(s) (aggregate GFLOP/s)"
        ),
    )
    choice = None
    if device.type == "cpu":
        say("the planner's layouts, each timed with ACMR's speed probe")
        shapes = DataShapes(shape.n_train, shape.feature_dim, shape.attribute_dim, shape.n_seen, shape.n_classes)
        throughput = measure(Workload(METHOD, config, shapes, seeds), cores, candidates(cores, True, seeds))
        choice = Choice(pick(throughput), throughput, cached=False)
        result.update(
            layout_choice=choice.layout,
            layout_gflops={name: value * single["gflop_per_iteration"] for name, value in throughput.items()},
        )
    say(f"{seeds} seeds as --n-jobs auto plans them")
    mix = planned_seeds(shape, seeds, iterations, epochs, device, cores, choice)
    result.update(acmr_planned_gflops=mix["gflops"], planned_mix=mix["plan"], planned_units=mix["units"])
    say("xlsa17-format load")
    result.update(load_seconds(shape))
    say(f"matmul {n} x {n} again")
    result["matmul_gflops_measured"].append(matmul_gflops(n, device))
    # the yardstick is the machine's limit: a measurement slowed by a busy host would flatter every ratio
    result["matmul_gflops"] = max(result["matmul_gflops_measured"])

    result["acmr_efficiency"] = result["acmr_gflops"] / result["matmul_gflops"]
    result["acmr_gemm_efficiency"] = result["acmr_gflops"] / result["vae_gemm_gflops"]
    result["ceiling_efficiency"] = result["acmr_ceiling_gflops"] / result["matmul_gflops"]
    result["batched_speedup"] = result["acmr_batched_gflops"] / result["acmr_gflops"]
    result["batched_efficiency"] = result["acmr_batched_gflops"] / result["matmul_gflops"]
    result["planned_efficiency"] = result["acmr_planned_gflops"] / result["matmul_gflops"]
    return result


def format_report(r: dict[str, Any]) -> str:
    """The human-readable report of a :func:`run_bench` result."""
    head = f"bench{' --quick' if r['quick'] else ''}: size {r['size']}, {r['device']} ({r['device_name']})"
    rows = [
        (
            f"matmul {r['matmul_n']}x{r['matmul_n']} fp32",
            f"{r['matmul_gflops']:.1f} GFLOP/s (the faster of "
            + " and ".join(f"{g:.1f}" for g in r["matmul_gflops_measured"])
            + ", first and last)",
        ),
        (
            "VAE GEMM shapes, one iteration",
            f"{r['vae_gemm_gflops']:.1f} GFLOP/s "
            f"({r['acmr_gflop_per_iteration']:.2f} GFLOP in {r['vae_gemm_ms']:.1f} ms)",
        ),
        (
            "ACMR ceiling (GEMM shapes + AMSGrad step)",
            f"{r['acmr_ceiling_gflops']:.1f} GFLOP/s = {r['ceiling_efficiency']:.0%} of matmul "
            f"(the step {r['optimizer_step_ms']:.1f} ms)",
        ),
        (f"memory copy {r['copy_mb']} MiB", f"{r['copy_gbps']:.1f} GB/s"),
        (
            "ACMR training, 1 seed",
            f"{r['acmr_gflops']:.1f} GFLOP/s "
            f"({r['acmr_iteration_ms']:.1f} ms/iteration, {r['acmr_epoch_s']:.2f} s/epoch)"
            f" = {r['acmr_efficiency']:.0%} of matmul, {r['acmr_gemm_efficiency']:.0%} of the VAE GEMMs",
        ),
        (
            f"ACMR training, {r['batched_k']} seeds ({r['batched_mode']})",
            f"{r['acmr_batched_gflops']:.1f} GFLOP/s aggregate = {r['batched_efficiency']:.0%} of matmul, "
            f"x{r['batched_speedup']:.2f} of 1 seed",
        ),
        (
            f"ACMR training, {r['batched_k']} seeds (auto plan)",
            f"{r['acmr_planned_gflops']:.1f} GFLOP/s aggregate = {r['planned_efficiency']:.0%} of matmul: "
            f"{r['planned_mix']}",
        ),
        *(
            [
                (
                    "planner's layouts (probe)",
                    ", ".join(f"{name} {value:.1f}" for name, value in r["layout_gflops"].items())
                    + f" GFLOP/s: chose {r['layout_choice']}",
                )
            ]
            if "layout_gflops" in r
            else []
        ),
        (
            f"final classifier, {r['cls_epochs']} epochs",
            f"{r['cls_stage_s']:.2f} s"
            + (f" (from {r['cls_epochs_timed']} timed)" if r["cls_epochs_timed"] != r["cls_epochs"] else ""),
        ),
        (
            f"xlsa17 load, {r['load_size_mb']:.0f} MiB",
            f"first (converting) {r['load_cold_s']:.2f} s, cached {r['load_cached_s'] * 1e3:.1f} ms",
        ),
        ("peak RSS", f"{r['peak_rss_mb']:.0f} MiB (1 seed), {r['batched_peak_rss_mb']:.0f} MiB (the batch's process)"),
    ]
    width = max(len(name) for name, _ in rows)
    lines = [head, f"{r['threads']} torch thread(s) of {r['cores']} core(s), torch {r['torch']}"]
    lines += [f"  {name:<{width}}  {value}" for name, value in rows]
    return "\n".join(lines)


# ---- the command line ----


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The options of ``python benchmarks/bench.py`` (those of the former ``gzslbench bench``)."""
    parser = argparse.ArgumentParser(
        prog="python benchmarks/bench.py",
        description=(
            "Measure matmul GFLOP/s, memory bandwidth, ACMR training throughput (1 and K seeds), the "
            "final-classifier stage, xlsa17 load times and peak RSS; print the efficiency ratios."
        ),
        epilog=(
            "examples: python benchmarks/bench.py --quick | --json > bench.json | --device cuda --seeds 5 | --size awa2"
        ),
    )
    parser.add_argument(
        "--quick", action="store_true", help="time fewer iterations and epochs of the same shapes (minutes)"
    )
    parser.add_argument("--json", dest="as_json", action="store_true", help="print one JSON object, not the report")
    parser.add_argument("--device", default="cpu", choices=DEVICE_CHOICES, help="torch device (default: cpu)")
    parser.add_argument("--threads", type=int, help="torch threads (default: all cores)")
    parser.add_argument(
        "--seeds", type=int, default=5, help="seeds trained at once for the batched figure (default: 5)"
    )
    parser.add_argument(
        "--size",
        default="cub",
        choices=tuple(SIZES),
        help="shapes and settings: cub (default); awa2 (the most instances: peak memory); tiny (for tests)",
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the bench and print the report (or ``--json``); a bad option is one ``error:`` line and exit 2."""
    args = parse_args(argv)
    log = None if args.as_json else (lambda message: print(f"... {message}", file=sys.stderr, flush=True))
    try:
        result = run_bench(
            quick=args.quick,
            device=resolve_device(args.device),
            threads=args.threads,
            seeds=args.seeds,
            size=args.size,
            log=log,
        )
    except GZSLBenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    print(json.dumps(result, indent=1) if args.as_json else format_report(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
