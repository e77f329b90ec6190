"""Training iterations replayed as CUDA graphs: the switch, the fallback, and (on a GPU) the same runs as eager."""

from __future__ import annotations

import warnings
from contextlib import contextmanager, nullcontext

import pytest
import torch

import gzslbench
from gzslbench.core import cuda_graphs
from gzslbench.core.cuda_graphs import ENVIRONMENT_SWITCH, GraphedIteration, cuda_graphs_enabled
from gzslbench.methods.vae import classifier as vae_classifier
from gzslbench.methods.vae import model as vae_model

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA")
TINY = {"epochs": 3, "cls_epochs": 4}


def test_graphs_are_asked_for_by_the_environment_switch_and_apply_to_cuda_only(monkeypatch):
    monkeypatch.delenv(ENVIRONMENT_SWITCH, raising=False)
    assert not cuda_graphs_enabled(torch.device("cuda"))
    monkeypatch.setenv(ENVIRONMENT_SWITCH, "1")
    assert cuda_graphs_enabled(torch.device("cuda")) and not cuda_graphs_enabled(torch.device("cpu"))


def test_without_capture_every_call_runs_the_body_on_its_inputs():
    seen = []
    step = GraphedIteration(lambda x, none: seen.append((x.item(), none)), capture=False)
    for k in range(4):
        step("key", torch.tensor(k), None)
    assert seen == [(0, None), (1, None), (2, None), (3, None)] and step.replays == 0


class _Unavailable:
    def __init__(self, *args, **kwargs):
        raise RuntimeError("CUDA graphs are not available here\nsecond line of the message")


def test_a_capture_that_fails_warns_in_one_line_and_training_goes_on_eagerly(monkeypatch):
    monkeypatch.setattr(cuda_graphs.torch.cuda, "CUDAGraph", _Unavailable)
    monkeypatch.setattr(cuda_graphs.torch.cuda, "Stream", _Unavailable)
    total = torch.zeros(())

    def body(x):
        total.add_(x)

    step = GraphedIteration(body, capture=True)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for k in range(5):
            step("key", torch.tensor(float(k)))
    assert total.item() == 10.0 and step.replays == 0 and not step.capture
    assert len(caught) == 1
    message = str(caught[0].message)
    assert message.startswith("CUDA graph capture failed, training continues without graphs") and "\n" not in message


class RecordedGraph:
    """What a captured CUDA graph does, on the CPU: nothing at capture; at replay, the recorded work on its buffers."""

    def __init__(self, fn):
        self.fn = fn

    def replay(self):
        self.fn()


def count_replays(monkeypatch) -> dict[str, list[GraphedIteration]]:
    """Every GraphedIteration the VAE step and the final classifier create, by stage."""
    made: dict[str, list[GraphedIteration]] = {"vae": [], "classifier": []}
    for stage, module in (("vae", vae_model), ("classifier", vae_classifier)):

        class Recorded(GraphedIteration):
            def __init__(self, *args, stage=stage, **kwargs):
                super().__init__(*args, **kwargs)
                made[stage].append(self)

        monkeypatch.setattr(module, "GraphedIteration", Recorded)
    return made


def graphed_and_eager(monkeypatch, tmp_path, device: str, batch_seeds: int, switch_on) -> dict:
    """The same ACMR runs with graphs asked for and not: records, and the GraphedIterations of the graphed runs."""
    runs = {}
    for graphs in (True, False):
        switch_on(graphs)
        made = count_replays(monkeypatch)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            records = gzslbench.run(
                "acmr",
                "synth-tiny",
                seeds=2,
                device=device,
                batch_seeds=batch_seeds,
                out=tmp_path / str(graphs),
                overrides=TINY,
            )
        assert not [str(w.message) for w in caught if "CUDA graph" in str(w.message)]
        assert all(r["status"] == "ok" for r in records), [r.get("error") for r in records]
        runs[graphs] = records, made
    return runs


@pytest.mark.parametrize("batch_seeds", [1, 2])  # the hand step of a lone seed; vmap and autograd for a batch
def test_replaying_recorded_iterations_gives_the_same_runs_on_the_cpu(batch_seeds, monkeypatch, tmp_path):
    """The bookkeeping around the graphs (inputs copied into fixed buffers, recapture on new loss weights,
    the classifier's step count) checked on the CPU, with a replay that runs the recorded work."""
    monkeypatch.setattr(cuda_graphs, "capture", RecordedGraph)
    monkeypatch.setattr(GraphedIteration, "_side_stream", lambda self: nullcontext())

    def switch_on(graphs: bool) -> None:
        for module in (vae_model, vae_classifier):
            monkeypatch.setattr(module, "cuda_graphs_enabled", lambda device, on=graphs: on)

    runs = graphed_and_eager(monkeypatch, tmp_path, "cpu", batch_seeds, switch_on)
    (graphed, made), (eager, eager_made) = runs[True], runs[False]
    for stage in ("vae", "classifier"):
        assert sum(g.replays for g in made[stage]) > 0 and sum(g.replays for g in eager_made[stage]) == 0
    vae = made["vae"][0]
    assert vae.eager_calls >= TINY["epochs"]  # each warm-up epoch's new loss weights: one eager step, a new capture
    for g, e in zip(graphed, eager, strict=True):
        assert g["history"]["train"] == e["history"]["train"] and g["metrics"] == e["metrics"]


@needs_cuda
@pytest.mark.parametrize("batch_seeds", [1, 2])
def test_replayed_graphs_give_the_runs_eager_cuda_gives(batch_seeds, monkeypatch, tmp_path):
    runs = graphed_and_eager(
        monkeypatch,
        tmp_path,
        "cuda",
        batch_seeds,
        lambda on: monkeypatch.setenv(ENVIRONMENT_SWITCH, "1" if on else "0"),
    )
    (graphed, made), (eager, _) = runs[True], runs[False]
    assert all(sum(g.replays for g in made[stage]) > 0 for stage in ("vae", "classifier"))
    for g, e in zip(graphed, eager, strict=True):
        assert g["execution"]["cuda_graphs"] and not e["execution"]["cuda_graphs"]
        assert g["history"]["train"] == e["history"]["train"] and g["metrics"] == e["metrics"]


@needs_cuda
def test_a_body_that_cannot_be_captured_falls_back_on_cuda():
    total = torch.zeros((), device="cuda")

    def body(x):
        total.add_(x)
        if total.item() > 1e9:  # waits for the device: not capturable
            raise AssertionError

    stream = torch.cuda.current_stream()
    step = GraphedIteration(body, capture=True)
    with pytest.warns(UserWarning, match="CUDA graph capture failed"):
        for k in range(5):
            step("key", torch.tensor(float(k), device="cuda"))
    assert total.item() == 10.0 and step.replays == 0
    # The failed capture left nothing behind: work goes on the stream it went on before, and the
    # default generator draws (it failed here with torch 2.11 before captures were closed).
    assert torch.cuda.current_stream() == stream
    torch.manual_seed(0)
    expected = torch.rand(4, device="cuda")
    torch.manual_seed(0)
    assert torch.equal(torch.rand(4, device="cuda"), expected)


class FakeCUDA:
    """torch's capture bookkeeping as far as a failed capture disturbs it: the current stream and
    the default generator's capturing mark, set when a capture begins and cleared when it ends."""

    def __init__(self):
        self.stream, self.generator_capturing = "default", False

    def current_stream(self):
        return self.stream

    def set_stream(self, stream):
        self.stream = stream

    def CUDAGraph(self):
        return object()

    @contextmanager
    def graph(self, graph):
        self.stream, self.generator_capturing = "capture", True
        yield  # a body that raises skips the end of the capture, as torch's __exit__ does when capture_end fails
        self.stream, self.generator_capturing = "default", False


def test_a_failed_capture_restores_the_stream_and_ends_the_generators_capture(monkeypatch):
    fake = FakeCUDA()
    for name in ("current_stream", "set_stream", "CUDAGraph", "graph"):
        monkeypatch.setattr(cuda_graphs.torch.cuda, name, getattr(fake, name))

    def not_capturable():
        raise RuntimeError("operation not permitted when stream is capturing")

    with pytest.raises(RuntimeError, match="not permitted"):
        cuda_graphs.capture(not_capturable)
    assert fake.stream == "default" and not fake.generator_capturing
