"""The execution planner: processes x threads never exceed the cores, and auto picks the measured mix."""

from __future__ import annotations

import pytest

from gzslbench.errors import GZSLBenchError
from gzslbench.planning import MAX_CPU_BATCH, parse_count, plan_execution
from gzslbench.runner import RunSpec, seed_batches


def specs(method: str = "acmr", seeds: int = 5, configs: int = 1) -> list[RunSpec]:
    return [RunSpec(method, "synth-tiny", s, {"k": c}) for c in range(configs) for s in range(seeds)]


def auto(runs: list[RunSpec], cores: int = 2, device_type: str = "cpu", backend: str = "joblib", **kw):
    batchable = [r.method != "eszsl" for r in runs]
    options = {"n_jobs": "auto", "batch_seeds": "auto", **kw}
    return plan_execution(runs, batchable, cores=cores, device_type=device_type, backend=backend, **options)


def test_five_seeds_on_two_cores_run_as_two_single_thread_processes_with_batches_of_three_and_two():
    runs = specs(seeds=5)
    plan = auto(runs)
    assert (plan.n_jobs, plan.threads, plan.batch_seeds) == (2, 1, 3)
    assert sorted(len(u) for u in seed_batches(runs, plan.batch_seeds)) == [2, 3]
    assert "2 processes x 1 thread, seeds batched by up to 3" in plan.describe()


def test_one_seed_gets_every_core_as_threads():
    plan = auto(specs(seeds=1))
    assert (plan.n_jobs, plan.threads, plan.batch_seeds) == (1, 2, 1)


def test_methods_that_cannot_batch_get_processes_only():
    plan = auto(specs("eszsl", seeds=3))
    assert (plan.n_jobs, plan.threads, plan.batch_seeds) == (2, 1, 1)


def test_many_groups_batch_each_group_whole_up_to_the_cap():
    plan = auto(specs(seeds=12, configs=4), cores=4)
    assert (plan.n_jobs, plan.threads, plan.batch_seeds) == (4, 1, MAX_CPU_BATCH)


def test_a_gpu_gets_one_process_and_every_seed_of_a_group_batched():
    plan = auto(specs(seeds=5), cores=16, device_type="cuda")
    assert (plan.n_jobs, plan.threads, plan.batch_seeds) == (1, 16, 5)


def test_dask_runs_are_never_batched():
    plan = auto(specs(seeds=5), cores=4, backend="dask")
    assert (plan.n_jobs, plan.threads, plan.batch_seeds) == (4, 1, 1)


def test_explicit_values_are_kept():
    plan = auto(specs(seeds=5), n_jobs=1, batch_seeds=5, threads=1)
    assert (plan.n_jobs, plan.threads, plan.batch_seeds, plan.reason) == (1, 1, 5, "as given")


@pytest.mark.parametrize("cores", [1, 2, 3, 8, 16])
@pytest.mark.parametrize("seeds", [1, 2, 5, 7, 20])
@pytest.mark.parametrize("method", ["acmr", "eszsl"])
def test_auto_never_asks_for_more_threads_than_cores_and_runs_every_seed(cores, seeds, method):
    runs = specs(method, seeds=seeds)
    plan = auto(runs, cores=cores)
    assert plan.n_jobs * plan.threads <= cores
    units = seed_batches(runs, plan.batch_seeds) if method == "acmr" else [[r] for r in runs]
    assert sum(len(u) for u in units) == seeds and max(len(u) for u in units) <= MAX_CPU_BATCH
    assert plan.n_jobs <= seeds


def test_counts_accept_numbers_and_auto_only():
    assert parse_count("3", "--n-jobs") == 3 and parse_count("auto", "--n-jobs") == "auto"
    with pytest.raises(GZSLBenchError, match="--batch-seeds must be a whole number or 'auto', got 'two'"):
        parse_count("two", "--batch-seeds")


def test_given_threads_leave_room_for_fewer_processes():
    plan = auto(specs(seeds=5), cores=4, threads=2)
    assert (plan.n_jobs, plan.threads) == (2, 2)
