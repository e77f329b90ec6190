"""Speed of the cross-modal VAE methods on CUB-sized random data: seconds per VAE epoch and classifier stage.

The work is the reference's (widths, batch sizes, iteration and sample counts at CUB's shapes).
To compare with a reference implementation, time both on this machine with
``benchmarks/ab_reference.py``: a time measured on another machine compares with nothing.

Usage::

    python benchmarks/bench_vae_speed.py                     # acmr and cada-vae, 3 VAE epochs
    python benchmarks/bench_vae_speed.py --methods acmr --vae-epochs 5 --threads 2 --repeats 3
    python benchmarks/bench_vae_speed.py --methods acmr --breakdown   # ms per iteration by pass
    python benchmarks/bench_vae_speed.py --device cuda --seeds 5 --graphs both   # CUDA graphs off and on
    python -m pytest benchmarks/bench_vae_speed.py --benchmark-enable   # under pytest-benchmark
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable

import numpy as np
import torch

# benchmarks/bench.py, beside this script (its folder is sys.path[0] when run as a script)
from bench import SIZES, Gemm, build_model, gemm_gflops, iteration_flops, method_config, random_split

from gzslbench.core.cuda_graphs import ENVIRONMENT_SWITCH
from gzslbench.core.environment import flush_denormals
from gzslbench.core.registry import METHODS
from gzslbench.methods.base import RunContext
from gzslbench.methods.vae.hand_step import HandStep
from gzslbench.methods.vae.model import CrossModalVAE, VAESettings, make_optimizer


def measure(
    method: str, vae_epochs: int = 3, cls_epochs: int = 50, device: str = "cpu", seeds: int = 1, graphs: bool = False
) -> dict[str, float]:
    """Seconds per VAE epoch, latent encoding and classifier stage of one run with CUB defaults.

    ``seeds`` above 1 trains that many seeds batched (the times are the batch's); ``graphs`` replays
    the training iterations as CUDA graphs (:mod:`gzslbench.core.cuda_graphs`; on CUDA only).
    """
    cls = METHODS.get(method)
    config = {**method_config(method), "epochs": vae_epochs, "cls_epochs": cls_epochs}
    ctxs = [RunContext(seed=k, device=torch.device(device)) for k in range(seeds)]
    ctx = ctxs[0]
    os.environ[ENVIRONMENT_SWITCH] = "1" if graphs else "0"
    start = time.perf_counter()
    with flush_denormals():  # as a run computes
        n_scores = sum(1 for _ in cls().predict_seeds(random_split(SIZES["cub"]), config, ctxs))
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    wall = time.perf_counter() - start
    assert n_scores == cls_epochs
    return {
        "vae_epoch_s": ctx.timings["vae_epoch_s"],
        "encode_s": ctx.timings["encode_s"],
        "classifier_s": ctx.timings["classifier_s"],
        "classifier_epochs": cls_epochs,
        "wall_s": wall,
    }


def matmul_gflops() -> float:
    """GFLOP/s of the dominant product (50 x 2048 @ 2048 x 1560, fp32) here: the machine's yardstick."""
    return gemm_gflops(Gemm("visual_encoder.hidden", "forward", 50, 2048, 1560))


def cub_model(method: str) -> tuple[CrossModalVAE, dict]:
    """The method's VAE backbone at CUB size (on the CPU, seed 0) and its CUB config."""
    return build_model(SIZES["cub"], method)


def vae_step(model: CrossModalVAE, config: dict, hand: bool = False) -> Callable[[], tuple[float, float, float]]:
    """One VAE training iteration of ``model`` at CUB size on random batches.

    Returns a function that runs an iteration and gives the seconds of its forward pass (all
    loss terms), its backward pass and its optimizer step. With ``hand`` the iteration takes the
    hand-derived step a lone seed trains with (:class:`HandStep`: forward and gradients in one
    pass, reported as the forward's time, backward 0) instead of autograd.
    """
    settings = VAESettings.from_config(config)
    optimizer = make_optimizer(
        model.parameter_groups(settings.lr, settings.iem_lr, settings.vsa_lr), torch.device("cpu")
    )
    generator = torch.Generator().manual_seed(0)
    features, attributes = torch.rand(7057, 2048, generator=generator), torch.rand(200, 312, generator=generator)
    hand_step = HandStep(model, settings.reparam_scale) if hand else None
    weights = dict.fromkeys(("kl", "distance", "classification", "cross_reconstruction"), 1.0)

    def step() -> tuple[float, float, float]:
        rows = torch.randint(7057, (50,), generator=generator)
        y = torch.randint(150, (50,), generator=generator)
        eps, perms = torch.randn(2, 50, 1, generator=generator), torch.rand(2, 128, generator=generator).argsort(-1)
        start = time.perf_counter()
        if hand_step is not None:
            hand_step(features[rows], attributes[y], y, eps, perms, weights)
            forward = time.perf_counter()
            optimizer.step()
            return forward - start, 0.0, time.perf_counter() - forward
        total = torch.stack(model.loss_terms(features[rows], attributes[y], y, eps, perms, settings.reparam_scale))
        total = total.sum()
        forward = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        total.backward()
        backward = time.perf_counter()
        optimizer.step()
        return forward - start, backward - forward, time.perf_counter() - backward

    return step


def profile_vae_steps(method: str = "acmr", iterations: int = 20) -> str:
    """torch.profiler table of ``iterations`` VAE training iterations at CUB size (after 3 warm-up ones)."""
    from torch.profiler import profile

    step = vae_step(*cub_model(method))
    for _ in range(3):
        step()
    with profile() as prof:
        for _ in range(iterations):
            step()
    return prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=15)


def breakdown(method: str = "acmr", iterations: int = 143) -> str:
    """Median milliseconds of the forward pass, backward pass and optimizer step of a VAE iteration,
    with autograd and with the hand-derived step (alternated, on two copies of the model), next to
    the time of its matrix products (:func:`bench.iteration_flops`) at the yardstick speed."""
    model, config = cub_model(method)
    autograd_step, hand_step = vae_step(model, config), vae_step(cub_model(method)[0], config, hand=True)
    times: dict[str, list] = {"autograd": [], "hand": []}
    with flush_denormals():  # as a run computes
        for _ in range(5):
            autograd_step(), hand_step()
        for _ in range(iterations):  # alternated, so that a busy moment slows both alike
            times["autograd"].append(autograd_step())
            times["hand"].append(hand_step())
    autograd = np.median(np.array(times["autograd"]) * 1e3, axis=0)
    hand = np.median(np.array(times["hand"]) * 1e3, axis=0)
    gflop, speed = iteration_flops(model.spec, int(config["batch_size"])) / 1e9, matmul_gflops()
    return (
        f"{method:9s} ms per VAE iteration (median of {iterations}): autograd: forward {autograd[0]:.1f}, "
        f"backward {autograd[1]:.1f}, optimizer {autograd[2]:.1f}, total {autograd.sum():.1f}; hand step: "
        f"loss and gradients {hand[0]:.1f}, optimizer {hand[2]:.1f}, total {hand.sum():.1f}; "
        f"its {gflop:.2f} GFLOP of dense products take {gflop / speed * 1e3:.1f} ms at {speed:.0f} GFLOP/s"
    )


def report(method: str, result: dict[str, float], label: str = "") -> str:
    cls_50 = result["classifier_s"] * 50 / result["classifier_epochs"]
    return (
        f"{method:9s}{label} VAE epoch {result['vae_epoch_s']:.2f} s | classifier 50 epochs {cls_50:.2f} s"
        f" | encoding {result['encode_s']:.2f} s | wall {result['wall_s']:.1f} s"
    )


def test_acmr_speed(benchmark) -> None:
    """pytest-benchmark entry: one ACMR run with 1 VAE epoch and 5 classifier epochs."""
    torch.set_num_threads(2)
    result = benchmark.pedantic(measure, args=("acmr", 1, 5), rounds=1, iterations=1)
    print(report("acmr", result))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--methods", nargs="+", default=["acmr", "cada-vae"])
    parser.add_argument("--vae-epochs", type=int, default=3)
    parser.add_argument("--cls-epochs", type=int, default=50)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=1, help="measure each method this many times")
    parser.add_argument("--seeds", type=int, default=1, help="seeds trained as one batch (default: 1)")
    parser.add_argument(
        "--graphs", choices=("on", "off", "both"), default="off", help="CUDA graphs; both: alternated (default: off)"
    )
    parser.add_argument("--profile", action="store_true", help="print an op profile of 20 VAE iterations")
    parser.add_argument(
        "--breakdown", action="store_true", help="print ms per VAE iteration by pass instead of the timings"
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.profile:
        print(profile_vae_steps(args.methods[0]), flush=True)
    print(f"{args.threads} threads: 50x2048 @ 2048x1560 fp32 runs at {matmul_gflops():.0f} GFLOP/s", flush=True)
    for method in args.methods:
        for _ in range(args.repeats):
            if args.breakdown:
                print(breakdown(method), flush=True)
                continue
            for graphs in (True, False) if args.graphs == "both" else (args.graphs == "on",):
                result = measure(method, args.vae_epochs, args.cls_epochs, args.device, args.seeds, graphs)
                label = f" {args.seeds} seeds" * (args.seeds > 1) + " graphs" * graphs * args.device.startswith("cuda")
                print(report(method, result, label), flush=True)


if __name__ == "__main__":
    main()
