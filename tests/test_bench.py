"""benchmarks/bench.py: the analytic FLOP count of a VAE iteration, the report, the .mat writer, the script.

The default suite asserts only what the machine cannot change (shapes, FLOP counts, formatting,
files written); the tests that time real work are marked ``slow``.
"""

from __future__ import annotations

import importlib
import json
import re
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from gzslbench.execution.layouts import Choice
from gzslbench.methods.vae.model import BackboneSpec, CrossModalVAE, VAESettings
from gzslbench.methods.vae.parts import draw_noise, random_permutations

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "bench.py"


def import_bench():
    """benchmarks/bench.py as the module ``bench`` (a script of the checkout, not part of the package)."""
    if str(SCRIPT.parent) not in sys.path:
        sys.path.insert(0, str(SCRIPT.parent))
    return importlib.import_module("bench")


bench = import_bench()

SMALL = BackboneSpec(
    visual_dim=6,
    attribute_dim=4,
    n_classes=3,
    latent=2,
    visual_hidden=(5, 7),
    attribute_hidden=(3, 4),
    iem_hidden=3,
    use_iem=True,
    use_vsa=True,
    use_cross_reconstruction=False,
)
JSON_KEYS = (
    "matmul_gflops",
    "acmr_gflops",
    "acmr_batched_gflops",
    "batched_speedup",
    "cls_stage_s",
    "load_cold_s",
    "load_cached_s",
    "peak_rss_mb",
    "vae_gemm_gflops",
    "copy_gbps",
    "acmr_efficiency",
    "acmr_planned_gflops",
    "planned_efficiency",
)


def counted_flops(model: CrossModalVAE, config: dict, batch: int) -> int:
    """FLOP that torch's own counter sees in one training iteration's forward and backward pass."""
    settings = VAESettings.from_config(config)
    spec, cpu = model.spec, torch.device("cpu")
    generator = torch.Generator().manual_seed(0)
    x = torch.rand(batch, spec.visual_dim, generator=generator)
    y = torch.randint(spec.n_classes, (batch,), generator=generator)
    attributes = torch.rand(spec.n_classes, spec.attribute_dim, generator=generator)
    eps = draw_noise(batch, spec.latent, settings.noise, generator, cpu, leading=(2,))
    perms = random_permutations(2, 2 * spec.latent, generator, cpu) if spec.use_iem else None
    with FlopCounterMode(display=False) as counter:
        loss = torch.stack(model.loss_terms(x, attributes[y], y, eps, perms, settings.reparam_scale)).sum()
        loss.backward()
    return counter.get_total_flops()


def test_flop_count_of_a_small_spec_by_hand() -> None:
    """Every layer's 2*m*k*n forward, twice that backward, less the data inputs' gradients; VSA's bmm."""
    b = 2
    forward = 2 * (
        b * 6 * 5  # visual encoder hidden
        + 2 * b * 5 * 2  # visual mu, logvar
        + b * 4 * 3  # attribute encoder hidden
        + 2 * b * 3 * 2  # attribute mu, logvar
        + b * 2 * 7  # visual decoder hidden
        + b * 7 * 6  # visual decoder out
        + b * 2 * 4  # attribute decoder hidden
        + b * 4 * 4  # attribute decoder out
        + 2 * (b * 4 * 3 + b * 3 * 2)  # two IEMs: (2 * latent) -> hidden -> latent
        + 2 * b * 2 * 3  # two VSA latent classifiers
        + b * 2 * 2 * 2  # VSA: per sample (2, latent) @ (latent, latent)
    )
    no_input_grad = 2 * (b * 6 * 5 + b * 4 * 3)  # the encoders' inputs are data
    assert forward + 2 * forward - no_input_grad == 2352
    assert bench.iteration_flops(SMALL, b) == 2352
    cross = replace(SMALL, use_iem=False, use_vsa=False, use_cross_reconstruction=True)
    decoders = 2 * (b * 2 * 7 + b * 7 * 6 + b * 2 * 4 + b * 4 * 4)
    encoders = 2 * (b * 6 * 5 + 2 * b * 5 * 2 + b * 4 * 3 + 2 * b * 3 * 2)
    assert bench.iteration_flops(cross, b) == 3 * (encoders + 2 * decoders) - no_input_grad


@pytest.mark.parametrize("method", ["acmr", "cada-vae"])
def test_flop_count_matches_torch_counter_at_cub_size(method: str) -> None:
    """The analytic count equals torch's FlopCounterMode on the real CUB-sized backbone."""
    model, config = bench.build_model(bench.SIZES["cub"], method)
    batch = int(config["batch_size"])
    assert bench.iteration_flops(model.spec, batch) == counted_flops(model, config, batch)
    if method == "acmr":
        assert round(bench.iteration_flops(model.spec, batch) / 1e9, 2) == 2.00


def test_flop_count_matches_torch_counter_on_small_spec() -> None:
    """The same agreement on the hand-counted spec (and so the hand count is torch's too)."""
    model = CrossModalVAE(SMALL, torch.device("cpu"), torch.Generator().manual_seed(0))
    config = bench.method_config("acmr", bench.SIZES["tiny"])
    assert counted_flops(model, config, 2) == 2352


def fake_result(**changes) -> dict:
    """A run_bench result of made-up numbers (tiny shapes, 2 seeds): what format_report and --json print."""
    result = {
        "size": "tiny", "quick": True, "device": "cpu", "device_name": "Test CPU", "cores": 2, "threads": 1,
        "torch": "2.x", "acmr_gflops": 2.0, "acmr_gflop_per_iteration": 0.004, "acmr_iteration_ms": 2.0,
        "acmr_epoch_s": 0.024, "acmr_iterations_timed": 12, "cls_stage_s": 0.5, "cls_epochs": 2,
        "cls_epochs_timed": 2, "peak_rss_mb": 300.0, "matmul_gflops_measured": [40.0, 50.0], "matmul_n": 128,
        "vae_gemm_gflops": 8.0, "vae_gemm_ms": 0.5, "gemm_shapes": [], "optimizer_step_ms": 0.25,
        "acmr_ceiling_gflops": 5.0, "copy_gbps": 10.0, "copy_mb": 4, "acmr_batched_gflops": 3.0,
        "batched_mode": "batched", "batched_k": 2, "batched_threads_per_process": 1, "batched_peak_rss_mb": 350.0,
        "batched_note": "", "acmr_planned_gflops": 4.0, "planned_mix": "2 processes x 1 thread",
        "planned_units": [1, 1], "load_cold_s": 0.1, "load_cached_s": 0.002, "load_size_mb": 1.0,
        "matmul_gflops": 50.0, "acmr_efficiency": 0.04, "acmr_gemm_efficiency": 0.25, "ceiling_efficiency": 0.1,
        "batched_speedup": 1.5, "batched_efficiency": 0.06, "planned_efficiency": 0.08,
    }  # fmt: skip
    return result | changes


def test_report_formats_every_measurement() -> None:
    """The report's head, thread line and one row per measurement, with the ratios as percentages."""
    lines = bench.format_report(fake_result()).splitlines()
    assert lines[0] == "bench --quick: size tiny, cpu (Test CPU)"
    assert lines[1] == "1 torch thread(s) of 2 core(s), torch 2.x"
    rows = dict(re.split(r"\s{2,}", line.strip(), maxsplit=1) for line in lines[2:])
    assert rows["matmul 128x128 fp32"] == "50.0 GFLOP/s (the faster of 40.0 and 50.0, first and last)"
    assert rows["ACMR ceiling (GEMM shapes + AMSGrad step)"] == "5.0 GFLOP/s = 10% of matmul (the step 0.2 ms)"
    assert rows["ACMR training, 1 seed"].endswith("= 4% of matmul, 25% of the VAE GEMMs")
    assert rows["ACMR training, 2 seeds (batched)"] == "3.0 GFLOP/s aggregate = 6% of matmul, x1.50 of 1 seed"
    assert rows["final classifier, 2 epochs"] == "0.50 s"
    assert rows["xlsa17 load, 1 MiB"] == "first (converting) 0.10 s, cached 2.0 ms"
    assert len(rows) == 10
    layouts = {"layout_gflops": {"sequential": 4.0, "processes": 3.5}, "layout_choice": "sequential"}
    with_layouts = bench.format_report({**fake_result(), **layouts}).splitlines()
    rows = dict(re.split(r"\s{2,}", line.strip(), maxsplit=1) for line in with_layouts[2:])
    assert rows["planner's layouts (probe)"] == "sequential 4.0, processes 3.5 GFLOP/s: chose sequential"
    full = bench.format_report(fake_result(quick=False, cls_epochs=50, cls_epochs_timed=5)).splitlines()
    assert full[0].startswith("bench: size tiny") and "(from 5 timed)" in "\n".join(full)


def test_script_options_reach_run_bench_and_json_is_one_object(monkeypatch, capsys) -> None:
    """`--quick --json --size tiny --seeds 2 --threads 1`: the options as run_bench's arguments, one JSON object."""
    calls = []

    def fake_run_bench(**kwargs):
        calls.append(kwargs)
        return fake_result()

    monkeypatch.setattr(bench, "run_bench", fake_run_bench)
    assert bench.main(["--quick", "--json", "--size", "tiny", "--seeds", "2", "--threads", "1"]) == 0
    out, err = capsys.readouterr()
    assert json.loads(out) == fake_result() and err == ""
    assert calls == [
        {"quick": True, "device": torch.device("cpu"), "threads": 1, "seeds": 2, "size": "tiny", "log": None}
    ]
    assert bench.main(["--size", "awa2"]) == 0
    out, _ = capsys.readouterr()
    assert out.startswith("bench --quick: size tiny")  # the report, not JSON
    assert calls[1]["size"] == "awa2" and not calls[1]["quick"] and calls[1]["seeds"] == 5 and calls[1]["log"]


def test_bench_rejects_zero_seeds(capsys) -> None:
    """A bad --seeds is one line and exit 2, before anything is measured."""
    assert bench.main(["--quick", "--size", "tiny", "--seeds", "0"]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err == "error: --seeds must be at least 1, got 0\n"


def test_the_script_runs_from_the_checkout() -> None:
    """`python benchmarks/bench.py --help` from any folder: the former `gzslbench bench` options."""
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--help"], capture_output=True, text=True, timeout=120, cwd=SCRIPT.anchor
    )
    assert result.returncode == 0, result.stderr
    for option in ("--quick", "--json", "--device", "--threads", "--seeds", "--size"):
        assert option in result.stdout


@pytest.mark.slow
def test_bench_quick_json_on_tiny_shapes() -> None:
    """`python benchmarks/bench.py --quick --json --size tiny`: one JSON object with every key, all numbers positive.

    Slow: it times real work (every measurement of the bench at tiny shapes, two worker processes).
    """
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick", "--json", "--size", "tiny", "--seeds", "2", "--threads", "1"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    for key in JSON_KEYS:
        assert isinstance(data[key], float) and data[key] > 0, key
    assert data["size"] == "tiny" and data["batched_k"] == 2 and data["batched_mode"] == "batched"
    assert sum(data["planned_units"]) == 2 and "process" in data["planned_mix"]
    assert set(data["layout_gflops"]) == {"sequential", "processes", "batched"}
    assert data["layout_choice"] in data["layout_gflops"] and data["layout_choice"] in data["planned_mix"]
    assert len(data["matmul_gflops_measured"]) == 2 and data["matmul_gflops"] == max(data["matmul_gflops_measured"])
    assert data["acmr_efficiency"] == data["acmr_gflops"] / data["matmul_gflops"]
    spec = bench.size_spec(bench.SIZES["tiny"])
    assert data["acmr_gflop_per_iteration"] == bench.iteration_flops(spec, 20) / 1e9
    assert {(g["layer"], g["kind"]) for g in data["gemm_shapes"]} == {
        (g.layer, g.kind) for g in bench.iteration_gemms(spec, 20)
    }
    floor_s = data["vae_gemm_ms"] / 1e3 + data["optimizer_step_ms"] / 1e3
    assert data["acmr_ceiling_gflops"] == pytest.approx(data["acmr_gflop_per_iteration"] / floor_s)
    assert data["acmr_ceiling_gflops"] < data["vae_gemm_gflops"]  # the step costs time and does no products
    assert "ACMR ceiling (GEMM shapes + AMSGrad step)" in bench.format_report(data)


@pytest.mark.slow
def test_optimizer_step_time_follows_the_parameter_count() -> None:
    """The timed step is the real AMSGrad step: CUB's 7 M parameters take far longer than tiny's few thousand.

    Slow: a wall-clock ratio, which a busy machine can upset.
    """
    cpu = torch.device("cpu")
    tiny = bench.optimizer_step_seconds(bench.SIZES["tiny"], cpu, min_time=0.05)
    cub = bench.optimizer_step_seconds(bench.SIZES["cub"], cpu, min_time=0.05)
    assert cub > 20 * tiny


def test_the_planned_mix_times_the_plans_rounds_one_after_the_other(monkeypatch) -> None:
    """3 seeds on 2 cores: two single-thread processes at once, then the third seed on both cores."""
    rounds: list[tuple[list[int], list[int], int]] = []

    def timed_round(args, n_jobs):
        rounds.append(([a[1] for a in args], [a[5] for a in args], n_jobs))
        return 2.0, 10.0 * len(args)

    monkeypatch.setattr(bench, "_round_seconds", timed_round)
    processes = Choice("processes", {"sequential": 1.0, "processes": 2.0}, cached=False)
    result = bench.planned_seeds(bench.SIZES["tiny"], 3, 2, 1, torch.device("cpu"), cores=2, layout=processes)
    assert rounds == [([1, 1], [1, 1], 2), ([1], [2], 1)]  # seeds per unit, threads per unit, processes
    assert result["units"] == [1, 1, 1] and result["gflops"] == 30.0 / 4.0
    assert "then the last 1 unit on 2 threads each" in result["plan"]


def test_the_awa2_size_takes_awa2s_settings_shapes_and_adapter() -> None:
    """`bench --size awa2`: ACMR's AWA2 settings (not CUB's) at AWA2's shapes, loaded through the AWA2 adapter."""
    size = bench.SIZES["awa2"]
    config = bench.method_config("acmr", size)
    cub = bench.method_config("acmr", bench.SIZES["cub"])
    assert (config["cls_epochs"], config["unseen_samples"], config["visual_decoder_hidden"]) == (300, 480, 1680)
    assert (cub["cls_epochs"], cub["unseen_samples"], cub["visual_decoder_hidden"]) == (50, 390, 1665)
    assert bench.size_spec(size).attribute_dim == 85 and bench.random_split(size).defaults_from == "awa2"
    small = replace(size, n_train=80, n_test_seen=20, n_test_unseen=30)
    assert bench.load_seconds(small)["load_size_mb"] > 0  # the AWA2 adapter found and read its folder twice
