"""Speed of the feature-generating GANs (f-CLSWGAN, f-VAEGAN, TF-VAEGAN, FREE, LsrGAN) against matmul speed.

Runs each method with its per-dataset defaults on random data with a real dataset's shapes for a
few GAN epochs and a short final-classifier stage, and prints the seconds per GAN epoch, the
analytic FLOP of one GAN epoch (:func:`epoch_gemms`), the GFLOP/s that makes and its share of
the machine's fp32 speed at the epoch's dominant product shape (the ceiling).

Usage::

    python benchmarks/bench_gan_speed.py                          # all five, CUB shapes, 2 GAN epochs
    python benchmarks/bench_gan_speed.py --methods f-clswgan --size awa2 --gan-epochs 3 --repeats 3
    python benchmarks/bench_gan_speed.py --device cuda --json
    python -m pytest benchmarks/bench_gan_speed.py --benchmark-enable -s   # under pytest-benchmark
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import asdict, replace
from typing import Any

import pytest
import torch

# benchmarks/bench.py, beside this script (its folder is sys.path[0] when run as a script)
from bench import SIZES as BENCH_SIZES
from bench import BenchSize, Gemm, gemm_gflops, random_split

from gzslbench.core.environment import flush_denormals, resolve_device
from gzslbench.core.errors import GZSLBenchError
from gzslbench.core.registry import METHODS
from gzslbench.execution.resolve import method_config as resolve_method_config
from gzslbench.methods.base import RunContext

GAN_METHODS = ("f-clswgan", "f-vaegan", "tf-vaegan", "free", "lsrgan")
TIMINGS = ("gan_epoch_s", "pretrain_s", "generate_s", "classifier_s")

# CUB's widths and classes with 640 training rows (10 generator steps an epoch): the pytest-benchmark size.
SIZES: dict[str, BenchSize] = {
    "cub": BENCH_SIZES["cub"],
    "awa2": BENCH_SIZES["awa2"],
    "small": replace(BENCH_SIZES["cub"], name="small", n_train=640, n_test_seen=300, n_test_unseen=200),
    "tiny": BENCH_SIZES["tiny"],
}
# The tiny size shrinks the networks too, for tests; its numbers mean nothing. Keys a method lacks are skipped.
TINY_CONFIG: dict[str, Any] = {
    "generator_hidden": 24,
    "critic_hidden": 24,
    "encoder_hidden": 24,
    "decoder_hidden": 12,
    "refiner_hidden": 12,
    "batch_size": 20,
    "pretrain_epochs": 2,
    "pretrain_batch_size": 20,
    "syn_num": 10,
}


def gan_config(method: str, size: BenchSize, gan_epochs: int, cls_epochs: int) -> dict[str, Any]:
    """The method's config as ``gzslbench run`` resolves it for the size's dataset, with the epochs overridden.

    The per-dataset layer comes from the method's own table (or the nearest dataset's, as
    f-CLSWGAN's AWA1 settings for AWA2), checked against the method's ranges.
    """
    overrides: dict[str, Any] = {"epochs": gan_epochs, "cls_epochs": cls_epochs}
    if size.name == "tiny":
        known = METHODS.get(method).defaults
        overrides |= {k: v for k, v in TINY_CONFIG.items() if k in known}
    return resolve_method_config(method, size.defaults, overrides=overrides)


# ---- FLOP count ----


def _dense(name: str, rows: int, n_in: int, n_out: int, weight_grad: bool, input_grad: bool) -> list[Gemm]:
    """A fully connected layer's products: its forward, and the backward ones autograd runs for it."""
    kinds = ["forward"] + ["weight_grad"] * weight_grad + ["input_grad"] * input_grad
    return [Gemm(name, kind, rows, n_in, n_out) for kind in kinds]


def critic_step_gemms(batch: int, feature_dim: int, attribute_dim: int, hidden: int) -> list[Gemm]:
    """The products of one critic step as :func:`~gzslbench.methods.gan.losses.critic_step_gradients` runs them.

    Forward of the attribute block once and of the feature block on the real, generated and
    interpolated rows together (3 * batch); the penalty's input gradients ``g = v W_x^T`` and
    ``r W_x`` (for the output weight's gradient); the feature block's weight gradient over the 3 *
    batch rows at once and the attribute block's. The Wasserstein estimate's dot product is not
    a matrix product and is not counted.
    """
    b, d, a, h = batch, feature_dim, attribute_dim, hidden
    return [
        Gemm("critic.hidden[a]", "forward", b, a, h),
        Gemm("critic.hidden[x]", "forward", 3 * b, d, h),
        Gemm("critic.penalty_g", "input_grad", b, d, h),
        Gemm("critic.hidden[x]", "weight_grad", 3 * b, d, h),
        Gemm("critic.hidden[a]", "weight_grad", b, a, h),
        Gemm("critic.penalty_r", "forward", b, d, h),
    ]


def epoch_gemms(
    method: str,
    config: Mapping[str, Any],
    feature_dim: int,
    attribute_dim: int,
    n_seen: int,
    n_train: int,
    n_unseen: int = 0,
) -> Counter[Gemm]:
    """Every matrix product of one GAN epoch of ``method`` with ``config``, and how many times the epoch runs it.

    An epoch is ``passes * ceil(n_train / batch_size)`` generator steps (``passes`` is TF-VAEGAN's
    ``feedback_loop``, FREE's ``passes``, else 1), each after ``critic_iters`` critic steps. A critic step is the
    generated rows' forward pass (no gradient: the generator; f-VAEGAN's first the encoder,
    TF-VAEGAN's second pass also the feedback's generator, decoder and feedback module), TF-VAEGAN's
    decoder step on the real rows (with ``decoder_weight > 0``), FREE's refiner step on the real rows
    (with the centre loss's distances to the centres) and the closed-form critic update
    (:func:`critic_step_gemms`). A generator step is the forward and backward products of the
    networks its loss passes through: weight gradients of the trained layers, input gradients
    wherever the input carries a gradient (never for data, noise or a detached input; through the
    frozen critic and pre-trained classifier to the generated features). Element-wise work,
    reductions and optimizer steps are not products and are not counted. LsrGAN's is an epoch with
    its unseen step (every epoch but the first by default): its classifier spans all
    ``n_seen + n_unseen`` classes, and the unseen step adds generated rows through the generator and
    the classifier (which trains) and the real batch through the classifier. Its SR-loss's cosines
    (a batched product of at most ``2 * batch * neighbours * feature_dim``) are left out.
    """
    cfg = dict(config)
    b = min(int(cfg["batch_size"]), n_train)
    d, a = feature_dim, attribute_dim
    z = int(cfg["noise_size"]) or a
    hg, hd = int(cfg["generator_hidden"]), int(cfg["critic_hidden"])
    steps = math.ceil(n_train / int(cfg["batch_size"]))
    critic = critic_step_gemms(b, d, a, hd)

    def generator(grad: bool, input_grad: bool) -> list[Gemm]:
        return _dense("generator.hidden", b, z + a, hg, grad, grad and input_grad) + _dense(
            "generator.out", b, hg, d, grad, grad
        )

    critic_on_fake = _dense("critic.hidden", b, d + a, hd, False, True) + _dense("critic.out", b, hd, 1, False, True)
    if method in ("f-clswgan", "lsrgan"):
        fake = generator(False, False)
        classes = n_seen if method == "f-clswgan" else n_seen + n_unseen
        gen = generator(True, False) + critic_on_fake + _dense("classifier.fc", b, d, classes, False, True)
        if method == "lsrgan":
            gen += generator(True, False) + _dense("classifier.fc", b, d, classes, True, True)
            gen += _dense("classifier.fc", b, d, classes, True, False)
        return Counter({g: steps * n for g, n in Counter(int(cfg["critic_iters"]) * (fake + critic) + gen).items()})
    if method not in ("f-vaegan", "tf-vaegan", "free"):
        raise ValueError(f"no FLOP count for method {method!r}; known: {', '.join(GAN_METHODS)}")
    if cfg["adversarial_noise"] != "encoded":
        raise ValueError("the FLOP count covers adversarial_noise='encoded' only (the CUB, SUN and AWA2 settings)")
    he, latent = int(cfg["encoder_hidden"]), z

    def encoder(grad: bool) -> list[Gemm]:
        return (
            _dense("encoder.hidden", b, d + a, he, grad, False)
            + _dense("encoder.middle", b, he, 2 * latent, grad, grad)
            + _dense("encoder.heads", b, 2 * latent, 2 * latent, grad, grad)
        )

    vaegan_gen = encoder(True) + generator(True, True) + critic_on_fake
    if method == "f-vaegan":
        total = Counter(int(cfg["critic_iters"]) * (encoder(False) + generator(False, False) + critic) + vaegan_gen)
        return Counter({g: steps * n for g, n in total.items()})
    if method == "free":
        hr, n_centres = int(cfg["refiner_hidden"]), n_seen

        def refiner(grad: bool, input_grad: bool) -> list[Gemm]:
            return _dense("refiner.hidden", b, d, hr, grad, input_grad) + _dense(
                "refiner.out", b, hr, 2 * a, grad, grad or input_grad
            )

        # the centre loss's distances: embedding x centres^T, and both its gradients
        centres = [Gemm("centres", kind, b, a, n_centres) for kind in ("forward", "input_grad", "weight_grad")]
        refiner_step = refiner(True, False) + centres
        on_generated = refiner(not bool(cfg["freeze_refiner"]), True) if float(cfg["cycle_weight"]) > 0 else []
        step = int(cfg["critic_iters"]) * (encoder(False) + generator(False, False) + refiner_step + critic)
        total = Counter(int(cfg["passes"]) * (step + vaegan_gen + on_generated))
        return Counter({g: steps * n for g, n in total.items()})

    hdec = int(cfg["decoder_hidden"])
    decoding = float(cfg["decoder_weight"]) > 0
    train_decoder = not bool(cfg["freeze_decoder"])

    # the output layer's input (the hidden layer) carries a gradient whenever the weights or the input do
    def decoder(grad: bool, input_grad: bool) -> list[Gemm]:
        return _dense("decoder.hidden", b, d, hdec, grad, input_grad) + _dense(
            "decoder.out", b, hdec, a, grad, grad or input_grad
        )

    # the feedback's input (the decoder's hidden layer) is detached: its first layer gets no input gradient
    def feedback(grad: bool) -> list[Gemm]:
        return _dense("feedback.first", b, hdec, hg, grad, False) + _dense("feedback.second", b, hg, hg, grad, grad)

    # the second pass's generated rows: G(z, a) without gradient, its decoder's hidden layer, F of it, then G again
    def with_feedback(grad: bool) -> list[Gemm]:
        return generator(False, False) + decoder(False, False) + feedback(grad) + generator(grad, True)

    decoder_step = decoder(True, False) if decoding else []
    on_generated = decoder(train_decoder, True) if decoding else []
    passes = [
        (encoder(False) + generator(False, False), encoder(True) + generator(True, True)),
        (encoder(False) + with_feedback(False), encoder(True) + with_feedback(True)),
    ][: int(cfg["feedback_loop"])]
    total: Counter[Gemm] = Counter()
    for fake, gen in passes:
        total.update(int(cfg["critic_iters"]) * (fake + decoder_step + critic) + gen + critic_on_fake + on_generated)
    return Counter({g: steps * n for g, n in total.items()})


def epoch_flops(gemms: Counter[Gemm]) -> int:
    """FLOP of an :func:`epoch_gemms` count: ``2 m k n`` per product, times how often it runs."""
    return sum(g.flop * n for g, n in gemms.items())


def dominant_gemm(gemms: Counter[Gemm]) -> Gemm:
    """The product shape and pass that does the most FLOP of the epoch: the yardstick's shape."""
    return max(gemms, key=lambda g: (g.flop * gemms[g], g.kind == "forward", g.layer))


def size_gemms(method: str, size: BenchSize, config: Mapping[str, Any]) -> Counter[Gemm]:
    """:func:`epoch_gemms` at the size's shapes."""
    return epoch_gemms(method, config, size.feature_dim, size.attribute_dim, size.n_seen, size.n_train, size.n_unseen)


# ---- measurement ----


def measure(
    method: str, size: BenchSize = SIZES["cub"], gan_epochs: int = 2, cls_epochs: int = 1, device: str = "cpu"
) -> dict[str, Any]:
    """One run of ``method`` on random data of the size's shapes: its stage timings and the epoch's FLOP.

    The timings are the method's own (``ctx.timings``): seconds per GAN epoch, of the pre-trained
    classifier (f-CLSWGAN and LsrGAN, else None), of generating the unseen features and of the
    ``cls_epochs`` final-classifier epochs (LsrGAN: of scoring with its classifier after every GAN epoch).
    """
    cls = METHODS.get(method)
    config = gan_config(method, size, gan_epochs, cls_epochs)
    ctx = RunContext(seed=0, device=torch.device(device))
    start = time.perf_counter()
    with flush_denormals():  # as a run computes
        n_scores = sum(1 for _ in cls().predict_seeds(random_split(size), config, [ctx]))
    wall = time.perf_counter() - start
    assert n_scores == (gan_epochs if config.get("final_classifier") == "joint" else cls_epochs)
    gemms = size_gemms(method, size, config)
    flop = epoch_flops(gemms)
    return {
        **{name: ctx.timings.get(name) for name in TIMINGS},
        "gan_epochs": gan_epochs,
        "cls_epochs": cls_epochs,
        "epoch_gflop": flop / 1e9,
        "gflops": flop / ctx.timings["gan_epoch_s"] / 1e9,
        "dominant_gemm": asdict(dominant_gemm(gemms)),
        "wall_s": wall,
    }


def median_result(results: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The median of every timing over repeated runs (a shared CPU slows single runs); FLOP and shapes as run."""
    out = dict(results[0])
    for key in (*TIMINGS, "wall_s"):
        values = [r[key] for r in results if r[key] is not None]
        out[key] = statistics.median(values) if values else None
    out["gflops"] = out["epoch_gflop"] / out["gan_epoch_s"]
    out["repeats"] = len(results)
    return out


def run_gan_bench(
    methods: Sequence[str] = GAN_METHODS,
    size: str = "cub",
    gan_epochs: int = 2,
    cls_epochs: int = 1,
    device: str = "cpu",
    threads: int | None = None,
    repeats: int = 1,
) -> dict[str, Any]:
    """Every method's :func:`measure` (median of ``repeats``) and its share of the ceiling, as one dict (``--json``).

    The ceiling of a method is the machine's fp32 speed at its epoch's dominant product shape
    (:func:`bench.gemm_gflops`, measured once per shape after the runs); ``ceiling_share`` is the
    epoch's achieved GFLOP/s over it.
    """
    unknown = [m for m in methods if m not in GAN_METHODS]
    if unknown:
        raise GZSLBenchError(f"unknown GAN method(s) {', '.join(unknown)}; known: {', '.join(GAN_METHODS)}")
    if size not in SIZES:
        raise GZSLBenchError(f"unknown size '{size}'; known: {', '.join(SIZES)}")
    for name, value in (("--gan-epochs", gan_epochs), ("--cls-epochs", cls_epochs), ("--repeats", repeats)):
        if value < 1:
            raise GZSLBenchError(f"{name} must be at least 1, got {value}")
    if threads is not None:
        if threads < 1:
            raise GZSLBenchError(f"--threads must be at least 1, got {threads}")
        torch.set_num_threads(threads)
    dev = resolve_device(device)
    shape = SIZES[size]
    results = {
        m: median_result([measure(m, shape, gan_epochs, cls_epochs, str(dev)) for _ in range(repeats)]) for m in methods
    }
    speeds: dict[Gemm, float] = {}
    for r in results.values():
        gemm = Gemm(**r["dominant_gemm"])
        if gemm not in speeds:
            speeds[gemm] = gemm_gflops(gemm, dev)
        r["gemm_gflops"] = speeds[gemm]
        r["ceiling_share"] = r["gflops"] / speeds[gemm]
    return {
        "size": shape.name,
        "device": str(dev),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "methods": results,
    }


def _seconds(value: float | None, digits: int = 3) -> str:
    """A stage's seconds, or "-" for a stage the method does not run."""
    return "-" if value is None else f"{value:.{digits}f} s"


def format_report(bench: dict[str, Any]) -> str:
    """One line per method: seconds per stage, FLOP of an epoch, GFLOP/s and its share of the ceiling."""
    lines = [f"size {bench['size']}, {bench['device']}, {bench['threads']} torch thread(s), torch {bench['torch']}"]
    for method, r in bench["methods"].items():
        g = r["dominant_gemm"]
        lines.append(
            f"{method:9s} GAN epoch {r['gan_epoch_s']:.3f} s (of {r['gan_epochs']})"
            f" | pretrain {_seconds(r['pretrain_s'], 2)} | generate {_seconds(r['generate_s'])}"
            f" | classifier {_seconds(r['classifier_s'])}"
            f" ({'scoring after each GAN epoch' if r['generate_s'] is None else str(r['cls_epochs']) + ' epochs'})"
            f" | {r['epoch_gflop']:.3g} GFLOP/epoch = {r['gflops']:.3g} GFLOP/s"
            f" = {r['ceiling_share']:.1%} of {r['gemm_gflops']:.3g} GFLOP/s"
            f" ({g['layer']} {g['kind']} {g['m']}x{g['k']}x{g['n']}) | wall {r['wall_s']:.1f} s"
        )
    return "\n".join(lines)


@pytest.mark.parametrize("method", GAN_METHODS)
def test_gan_epoch_speed(benchmark, method: str) -> None:
    """pytest-benchmark entry: one GAN epoch (and one classifier epoch) of each method at the small size."""
    result = benchmark.pedantic(measure, args=(method, SIZES["small"], 1, 1), rounds=1, iterations=1)
    print(f"{method}: GAN epoch {result['gan_epoch_s']:.2f} s, {result['gflops']:.3g} GFLOP/s")


# ---- the command line ----


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python benchmarks/bench_gan_speed.py", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--methods", default=",".join(GAN_METHODS), help=f"comma-separated (default: {','.join(GAN_METHODS)})"
    )
    parser.add_argument(
        "--size", default="cub", choices=tuple(SIZES), help="shapes: cub (default), awa2, small, tiny (for tests)"
    )
    parser.add_argument("--gan-epochs", type=int, default=2, help="GAN epochs to time (default: 2)")
    parser.add_argument("--cls-epochs", type=int, default=1, help="final-classifier epochs (default: 1)")
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's)")
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"), help="torch device (default: cpu)")
    parser.add_argument("--repeats", type=int, default=1, help="runs per method; the median is reported")
    parser.add_argument("--json", dest="as_json", action="store_true", help="print one JSON object, not the report")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the bench and print the report (or ``--json``); a bad option is one ``error:`` line and exit 2."""
    args = parse_args(argv)
    try:
        result = run_gan_bench(
            [m.strip() for m in args.methods.split(",") if m.strip()],
            args.size,
            args.gan_epochs,
            args.cls_epochs,
            args.device,
            args.threads,
            args.repeats,
        )
    except GZSLBenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(result, indent=1) if args.as_json else format_report(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
