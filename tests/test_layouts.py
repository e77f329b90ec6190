"""The measured layout: chosen by throughput with a margin for one seed after another, cached per machine."""

from __future__ import annotations

import json

import pytest
import torch

from gzslbench.execution import layouts
from gzslbench.execution.layouts import Workload, choose_layout, pick
from gzslbench.methods.base import DataShapes
from gzslbench.methods.vae import method as vae_method

TINY = DataShapes(n_train=120, feature_dim=16, attribute_dim=8, n_seen=6, n_classes=9)
TINY_ACMR = {
    "epochs": 1,
    "batch_size": 10,
    "latent_size": 4,
    "visual_encoder_hidden": 12,
    "visual_decoder_hidden": 12,
    "attribute_encoder_hidden": 8,
    "attribute_decoder_hidden": 8,
    "iem_hidden": 4,
}


@pytest.fixture
def measuring(monkeypatch, tmp_path):
    """Layouts measured (the test session's default is not to), cached under a fresh folder."""
    monkeypatch.delenv(layouts.LAYOUT_ENV, raising=False)
    monkeypatch.setenv(layouts.CACHE_ENV, str(tmp_path / "cache"))
    return tmp_path / "cache" / "layouts.json"


def acmr_workload(seeds: int = 3) -> Workload:
    from gzslbench.execution.resolve import method_config

    return Workload("acmr", method_config("acmr", "cub", overrides=TINY_ACMR), TINY, seeds)


class FakeMeasure:
    def __init__(self, throughput: dict[str, float]) -> None:
        self.throughput, self.calls = throughput, 0

    def __call__(self, workload: Workload, cores: int, names: list[str]) -> dict[str, float]:
        self.calls += 1
        assert names == ["sequential", "processes", "batched"][: len(names)]
        return {name: self.throughput[name] for name in names}


@pytest.mark.parametrize(
    ("throughput", "chosen"),
    [
        ({"sequential": 10.0, "processes": 13.0, "batched": 9.0}, "processes"),
        ({"sequential": 10.0, "processes": 9.0, "batched": 12.0}, "batched"),
        ({"sequential": 10.0, "processes": 10.4, "batched": 8.0}, "sequential"),  # within the 5% margin
        ({"sequential": 10.0, "processes": 7.0, "batched": 6.0}, "sequential"),
    ],
)
def test_the_fastest_layout_wins_but_only_by_the_margin_over_one_seed_after_another(throughput, chosen):
    assert pick(throughput) == chosen


def test_a_measurement_is_made_once_per_machine_and_workload_then_read_from_the_cache(measuring, monkeypatch):
    fake = FakeMeasure({"sequential": 10.0, "processes": 14.0, "batched": 11.0})
    first = choose_layout(acmr_workload(), cores=2, measure_fn=fake)
    assert (first.layout, first.cached, fake.calls) == ("processes", False, 1)
    again = choose_layout(acmr_workload(), cores=2, measure_fn=fake)
    assert (again.layout, again.cached, fake.calls) == ("processes", True, 1)
    assert "cached measurement" in again.describe() and "processes 14.0" in again.describe()
    choose_layout(acmr_workload(seeds=5), cores=2, measure_fn=fake)  # another workload: measured anew
    monkeypatch.setattr(layouts, "cpu_name", lambda: "another CPU")
    choose_layout(acmr_workload(), cores=2, measure_fn=fake)  # another machine: measured anew
    assert fake.calls == 3
    assert len(json.loads(measuring.read_text())["entries"]) == 3


def test_a_corrupt_cache_is_measured_again_and_rewritten(measuring):
    measuring.parent.mkdir(parents=True)
    measuring.write_text("{not json")
    fake = FakeMeasure({"sequential": 10.0, "processes": 9.0, "batched": 8.0})
    assert choose_layout(acmr_workload(), cores=2, measure_fn=fake).layout == "sequential"
    assert fake.calls == 1 and json.loads(measuring.read_text())["format"] == layouts.CACHE_FORMAT


def test_nothing_is_measured_without_a_probe_a_choice_or_the_wish(measuring, monkeypatch):
    fake = FakeMeasure({"sequential": 1.0, "processes": 9.0, "batched": 9.0})
    eszsl = Workload("eszsl", {}, TINY, 3)  # no speed probe
    assert choose_layout(eszsl, cores=2, measure_fn=fake).layout == "sequential"
    assert choose_layout(acmr_workload(seeds=1), cores=1, measure_fn=fake).layout == "sequential"  # one candidate
    monkeypatch.setenv(layouts.LAYOUT_ENV, "sequential")
    assert choose_layout(acmr_workload(), cores=2, measure_fn=fake).layout == "sequential"
    assert fake.calls == 0 and not measuring.exists()


def test_the_vae_probe_runs_the_real_training_loop_for_the_asked_iterations(monkeypatch):
    seen = []
    real = vae_method.train_vae

    def spy(models, train_x, *args):
        seen.append((len(models), train_x.shape[0]))
        return real(models, train_x, *args)

    monkeypatch.setattr(vae_method, "train_vae", spy)
    probe = vae_method.CrossModalVAEMethod.speed_probe(TINY, acmr_workload().config, torch.device("cpu"), 3)
    probe(2)
    probe(5)
    assert seen == [(3, 20), (3, 50)]  # 3 seeds batched, iterations x batch rows of one epoch


def test_an_impossible_timing_is_neither_used_nor_cached(measuring, monkeypatch):
    """Shorter calls slowed by another process can time longer than the longer ones: no throughput follows."""
    clock = iter([0.0, 1.0, 1.5] * 100)  # each pair: the shorter call 1.0 s, the longer one 0.5 s
    monkeypatch.setattr(layouts.time, "perf_counter", lambda: next(clock))
    choice = choose_layout(acmr_workload(), cores=2)
    assert (choice.layout, dict(choice.throughput), choice.cached) == ("sequential", {}, False)
    assert not measuring.exists()


def test_measuring_times_every_candidate_layout_in_this_process_and_in_spawned_ones():
    throughput = layouts.measure(acmr_workload(), cores=2, layouts=["sequential", "processes", "batched"])
    assert set(throughput) == {"sequential", "processes", "batched"}
    assert all(value > 0 for value in throughput.values())


def test_a_run_measures_on_first_use_and_reads_the_cache_after(measuring, invoke):
    small = [f"--set={key}={value}" for key, value in TINY_ACMR.items() if key != "epochs"]
    command = ["run", "-m", "acmr", "-d", "synth-tiny", "--seeds", "2", "--set", "epochs=1", "--set", "cls_epochs=2"]
    first = invoke(*command, *small, "--results", str(measuring.parent.parent / "a"))
    assert "measured now" in first.output and measuring.exists()
    second = invoke(*command, *small, "--results", str(measuring.parent.parent / "b"))
    assert "cached measurement" in second.output
