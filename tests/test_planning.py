"""The execution planner: processes x threads never exceed the cores, and auto follows the measured layout."""

from __future__ import annotations

from dataclasses import replace

import pytest

from gzslbench.core.errors import GZSLBenchError
from gzslbench.execution import planning
from gzslbench.execution import schedule as schedule_module
from gzslbench.execution.api import run
from gzslbench.execution.layouts import Choice
from gzslbench.execution.options import parse_count
from gzslbench.execution.planning import MAX_CPU_BATCH, ExecutionPlan, plan_execution, seed_batches, tail_units
from gzslbench.execution.schedule import execution_rounds, schedule
from gzslbench.execution.spec import RunSpec


def scheduled_threads(runs: list[RunSpec], plan: ExecutionPlan) -> list[int | None]:
    return [s.threads for unit in schedule(runs, plan) for s in unit]


def specs(method: str = "acmr", seeds: int = 5, configs: int = 1) -> list[RunSpec]:
    return [RunSpec(method, "synth-tiny", s, {"k": c}) for c in range(configs) for s in range(seeds)]


PROCESSES = Choice("processes", {"sequential": 10.0, "processes": 13.2}, cached=True)
BATCHED = Choice("batched", {"sequential": 10.0, "processes": 9.0, "batched": 11.0}, cached=False)


def auto(runs: list[RunSpec], cores: int = 2, device_type: str = "cpu", backend: str = "joblib", **kw):
    options = {"n_jobs": "auto", "batch_seeds": "auto", **kw}
    return plan_execution(runs, cores=cores, device_type=device_type, backend=backend, **options)


def test_without_a_measurement_seeds_run_one_after_another_on_every_core():
    plan = auto(specs(seeds=5))
    assert (plan.n_jobs, plan.threads, plan.batch_seeds, plan.tail) == (1, 2, 1, 0)
    assert plan.describe() == "1 process x 2 threads (auto: one seed after another)"


def test_measured_processes_run_two_rounds_on_one_thread_each_then_the_fifth_on_two():
    runs = specs(seeds=5)
    plan = auto(runs, layout=PROCESSES)
    assert (plan.n_jobs, plan.threads, plan.batch_seeds, plan.tail, plan.tail_threads) == (2, 1, 1, 1, 2)
    assert plan.describe().startswith("2 processes x 1 thread, then the last 1 unit on 2 threads each (auto:")
    assert "processes fastest here (cached measurement, seed-iterations/s: sequential 10.0, processes 13.2)" in (
        plan.reason
    )
    assert scheduled_threads(runs, plan) == [1, 1, 1, 1, 2]


def test_measured_batches_train_a_group_in_one_process_on_every_core():
    plan = auto(specs(seeds=5), cores=4, layout=BATCHED)
    assert (plan.n_jobs, plan.threads, plan.batch_seeds, plan.tail) == (1, 4, 5, 0)
    assert "measured now" in plan.reason


def test_one_process_of_several_threads_batches_its_seeds():
    plan = auto(specs(seeds=5), threads=2)
    assert (plan.n_jobs, plan.threads, plan.batch_seeds, plan.tail) == (1, 2, 5, 0)


def test_rounds_that_come_out_even_have_no_tail():
    plan = auto(specs(seeds=4), layout=PROCESSES)
    assert (plan.n_jobs, plan.threads, plan.batch_seeds, plan.tail) == (2, 1, 1, 0)
    assert "then" not in plan.describe()


def test_processes_of_several_threads_get_a_group_cut_in_batches():
    runs = specs(seeds=5)
    plan = auto(runs, cores=4, threads=2)  # 2 processes x 2 threads; given threads: no tail
    assert (plan.n_jobs, plan.threads, plan.batch_seeds, plan.tail) == (2, 2, 2, 0)
    assert [len(u) for u in seed_batches(runs, plan.batch_seeds)] == [2, 2, 1]


@pytest.mark.parametrize(
    ("units", "n_jobs", "threads", "expected"),
    [
        (5, 2, 1, (1, 2)),  # the fifth seed on both cores
        (4, 2, 1, (0, 0)),
        (2, 2, 1, (0, 0)),
        (1, 2, 2, (0, 0)),  # fewer units than processes: planned as fewer processes
        (5, 4, 1, (1, 4)),
        (6, 4, 1, (2, 2)),
        (7, 4, 1, (0, 0)),  # 3 left on 4 processes: no 2 processes' threads for each
        (9, 4, 2, (1, 8)),
    ],
)
def test_the_tail_is_the_uneven_last_round_given_the_idle_processes_threads(units, n_jobs, threads, expected):
    assert tail_units(units, n_jobs, threads) == expected


def test_one_seed_gets_every_core_as_threads():
    plan = auto(specs(seeds=1))
    assert (plan.n_jobs, plan.threads, plan.batch_seeds) == (1, 2, 1)


def test_methods_that_cannot_batch_get_processes_only():
    plan = auto(specs("eszsl", seeds=3), n_jobs=2)
    assert (plan.n_jobs, plan.threads, plan.batch_seeds) == (2, 1, 1)


def test_many_groups_batch_each_group_whole_up_to_the_cap():
    plan = auto(specs(seeds=12, configs=4), cores=8, threads=2)
    assert (plan.n_jobs, plan.threads, plan.batch_seeds) == (4, 2, MAX_CPU_BATCH)


def test_a_gpu_gets_one_process_and_every_seed_of_a_group_batched():
    plan = auto(specs(seeds=5), cores=16, device_type="cuda")
    assert (plan.n_jobs, plan.threads, plan.batch_seeds) == (1, 16, 5)


def test_dask_runs_are_never_batched():
    plan = auto(specs(seeds=5), cores=4, backend="dask")
    assert (plan.n_jobs, plan.threads, plan.batch_seeds) == (4, 1, 1)


def test_explicit_values_are_kept():
    plan = auto(specs(seeds=5), n_jobs=1, batch_seeds=5, threads=1)
    assert (plan.n_jobs, plan.threads, plan.batch_seeds, plan.reason) == (1, 1, 5, "as given")


def test_a_batch_size_given_for_methods_that_train_seed_by_seed_is_not_promised():
    plan = auto(specs(method="f-clswgan", seeds=3), n_jobs=1, batch_seeds=3, threads=1)
    assert plan.batch_seeds == 1 and "batched" not in plan.describe().split(";")[0]
    assert plan.reason == "as given; --batch-seeds unused: no method here trains seeds batched"


@pytest.mark.parametrize("given", [{"n_jobs": 2}, {"threads": 1}])
def test_given_processes_or_threads_get_no_tail(given):
    plan = auto(specs("eszsl", seeds=3), **given)
    assert (plan.tail, plan.tail_threads) == (0, 0)


@pytest.mark.parametrize("cores", [1, 2, 3, 8, 16])
@pytest.mark.parametrize("seeds", [1, 2, 5, 7, 20])
@pytest.mark.parametrize("method", ["acmr", "eszsl"])
@pytest.mark.parametrize("layout", [None, PROCESSES, BATCHED])
def test_auto_never_asks_for_more_threads_than_cores_and_runs_every_seed(cores, seeds, method, layout):
    runs = specs(method, seeds=seeds)
    plan = auto(runs, cores=cores, layout=layout)
    assert plan.n_jobs * plan.threads <= cores
    units = seed_batches(runs, plan.batch_seeds) if method == "acmr" else [[r] for r in runs]
    assert sum(len(u) for u in units) == seeds and max(len(u) for u in units) <= MAX_CPU_BATCH
    assert plan.n_jobs <= seeds
    assert plan.tail < plan.n_jobs and plan.tail * plan.tail_threads <= cores
    rounds = execution_rounds(schedule(runs, plan), plan.n_jobs)
    assert sum(len(u) for units_, _ in rounds for u in units_) == seeds
    assert all(n * units_[0][0].threads <= cores for units_, n in rounds)
    assert len(rounds) == (2 if plan.tail else 1) and (not plan.tail or len(rounds[-1][0]) == plan.tail)


def test_counts_accept_numbers_and_auto_only():
    assert parse_count("3", "--n-jobs") == 3 and parse_count("auto", "--n-jobs") == "auto"
    with pytest.raises(GZSLBenchError, match="--batch-seeds must be a whole number or 'auto', got 'two'"):
        parse_count("two", "--batch-seeds")


def test_given_threads_leave_room_for_fewer_processes():
    plan = auto(specs(seeds=5), cores=4, threads=2)
    assert (plan.n_jobs, plan.threads) == (2, 2)


def test_runs_of_more_threads_start_after_the_others_on_fewer_processes():
    runs = [replace(r, threads=2 if r.seed == 4 else 1) for r in specs("eszsl", seeds=5)]
    rounds = execution_rounds([[r] for r in runs], n_jobs=2)
    assert [([u[0].seed for u in units], n) for units, n in rounds] == [([0, 1, 2, 3], 2), ([4], 1)]
    only_tail = execution_rounds([[runs[4]]], n_jobs=1)
    assert [(len(units), n) for units, n in only_tail] == [(1, 1)]


def test_an_auto_run_gives_its_tail_every_core_after_the_others_and_the_same_records_as_alone(monkeypatch, tmp_path):
    monkeypatch.setattr(planning, "cpu_count", lambda: 2)
    monkeypatch.setattr(schedule_module, "cpu_count", lambda: 2)
    monkeypatch.setattr(schedule_module, "measured_layout", lambda specs, cores, loaded: PROCESSES)
    records = run("ale", "synth-tiny", seeds=3, out=tmp_path / "auto", n_jobs="auto", batch_seeds="auto")
    assert [r["threads"] for r in records] == [1, 1, 2]
    assert records[2]["started_at"] >= max(r["finished_at"] for r in records[:2])
    alone = run("ale", "synth-tiny", seeds=1, seed_start=2, out=tmp_path / "alone", threads=2)
    assert alone[0]["metrics"] == records[2]["metrics"] and alone[0]["config_hash"] == records[2]["config_hash"]


def test_a_plan_without_a_tail_leaves_the_specs_as_they_are():
    runs = specs(seeds=4)
    units = schedule(runs, ExecutionPlan(2, 1, 2, "as given"))
    assert [s for unit in units for s in unit] == [replace(r, threads=1) for r in runs]
