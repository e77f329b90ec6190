"""Training iterations replayed as CUDA graphs: the switch, the fallback, and (on a GPU) the same runs as eager."""

from __future__ import annotations

import warnings

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


@needs_cuda
@pytest.mark.parametrize("batch_seeds", [1, 2])  # the hand step of a lone seed; vmap and autograd for a batch
def test_replayed_graphs_give_the_runs_eager_cuda_gives(batch_seeds, monkeypatch, tmp_path):
    replays: dict[str, int] = {}

    def counting(stage: str) -> type[GraphedIteration]:
        class Counting(GraphedIteration):
            def __call__(self, key, *inputs):
                super().__call__(key, *inputs)
                replays[stage] = max(replays.get(stage, 0), self.replays)

        return Counting

    monkeypatch.setattr(vae_model, "GraphedIteration", counting("vae"))
    monkeypatch.setattr(vae_classifier, "GraphedIteration", counting("classifier"))
    runs = {}
    for switch in ("1", "0"):
        monkeypatch.setenv(ENVIRONMENT_SWITCH, switch)
        replays.clear()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            runs[switch] = gzslbench.run(
                "acmr",
                "synth-tiny",
                seeds=2,
                device="cuda",
                batch_seeds=batch_seeds,
                out=tmp_path / switch,
                overrides=TINY,
            )
        assert not [str(w.message) for w in caught if "CUDA graph" in str(w.message)]
        assert all(r["status"] == "ok" for r in runs[switch]), [r.get("error") for r in runs[switch]]
        assert (replays["vae"] > 0 and replays["classifier"] > 0) == (switch == "1"), replays
    for graphed, eager in zip(runs["1"], runs["0"], strict=True):
        assert graphed["execution"]["cuda_graphs"] and not eager["execution"]["cuda_graphs"]
        assert graphed["history"]["train"] == eager["history"]["train"]
        assert graphed["metrics"] == eager["metrics"]


@needs_cuda
def test_a_body_that_cannot_be_captured_falls_back_on_cuda():
    total = torch.zeros((), device="cuda")

    def body(x):
        total.add_(x)
        if total.item() > 1e9:  # waits for the device: not capturable
            raise AssertionError

    step = GraphedIteration(body, capture=True)
    with pytest.warns(UserWarning, match="CUDA graph capture failed"):
        for k in range(5):
            step("key", torch.tensor(float(k), device="cuda"))
    assert total.item() == 10.0 and step.replays == 0
