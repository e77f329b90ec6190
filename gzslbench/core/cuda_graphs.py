"""Training iterations replayed as CUDA graphs: one launch instead of hundreds of small ones.

On a GPU a VAE iteration at the benchmarks' shapes (batch 50) is bound by launching its few
hundred small kernels, not by their arithmetic. A CUDA graph records the kernels of one iteration
once and replays them with a single launch. The replay runs the same kernels on the same
addresses, so a run computes what it computes without the graph; only the time changes.

:class:`GraphedIteration` runs an iteration function eagerly until it has been warmed up, then
captures it and replays it for as long as its Python-side constants (``key``, e.g. the epoch's
loss weights) stay the same; a new key runs one iteration eagerly and captures again. Where
capture fails (an operation that cannot be captured, a torch without CUDA graphs), training goes
on eagerly after a one-line warning.

Graphs are opt-in (``GZSLBENCH_CUDA_GRAPHS=1``) until every GPU run of ``tests/test_cuda_graphs.py``
shows replayed runs equal to eager ones (docs/speed.md has what was seen so far); the record's
``execution.cuda_graphs`` says whether a run asked for them.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Hashable
from contextlib import AbstractContextManager, nullcontext

import torch

ENVIRONMENT_SWITCH = "GZSLBENCH_CUDA_GRAPHS"


def cuda_graphs_enabled(device: torch.device) -> bool:
    """Whether training iterations on ``device`` are replayed as CUDA graphs (CUDA, when switched on)."""
    return device.type == "cuda" and os.environ.get(ENVIRONMENT_SWITCH, "0").strip().lower() in ("1", "true", "on")


def capture(fn: Callable[[], None]) -> torch.cuda.CUDAGraph:
    """A CUDA graph of the kernels that ``fn`` launches (recorded, not run), to be replayed.

    A capture that fails is cleaned up before the error propagates, so that the process can go
    on eagerly: see :func:`_close_failed_capture`.
    """
    graph = torch.cuda.CUDAGraph()
    stream = torch.cuda.current_stream()
    try:
        with torch.cuda.graph(graph):
            fn()
    except BaseException:
        _close_failed_capture(stream)
        raise
    return graph


def _close_failed_capture(stream: torch.cuda.Stream) -> None:
    """Undo what a failed capture leaves behind in torch's per-process state.

    torch marks the device's default random generator as capturing when a capture begins and
    unmarks it when the capture ends; a capture that fails never ends, and every later draw from
    that generator then fails ("Offset increment outside graph capture encountered unexpectedly";
    seen with torch 2.11 on an H200). The failed capture also leaves its capture stream current.
    This restores the stream and captures an empty graph, whose end unmarks the generator without
    drawing a number, so the generator's sequence is the one it would have been.
    """
    torch.cuda.set_stream(stream)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch warns that the graph is empty
        try:
            with torch.cuda.graph(torch.cuda.CUDAGraph()):
                pass
        except Exception:  # nothing more can be done here; the original error is what matters
            pass


class GraphedIteration:
    """Call ``body(*inputs)`` each iteration, eagerly or as the replay of a captured CUDA graph.

    ``body`` must read its data only from ``inputs`` (tensors or None, copied into fixed buffers
    before each replay) and from tensors that keep their storage (parameters, optimizer state,
    accumulators updated in place), draw no random numbers and never wait for the device. Its
    Python-side constants are summed up by the ``key`` of each call.
    """

    def __init__(self, body: Callable[..., None], capture: bool, warmup: int = 2) -> None:
        self.body, self.capture, self.warmup = body, capture, warmup
        self.graph: torch.cuda.CUDAGraph | None = None
        self.key: Hashable = None
        self.static: list[torch.Tensor | None] = []
        self.eager_calls = 0
        self.replays = 0
        self._stream: torch.cuda.Stream | None = None

    def __call__(self, key: Hashable, *inputs: torch.Tensor | None) -> None:
        if self.graph is not None and key == self.key:
            for buffer, value in zip(self.static, inputs, strict=True):
                if buffer is not None:
                    buffer.copy_(value)
            self.graph.replay()
            self.replays += 1
            return
        if not self.capture:
            self.body(*inputs)
            return
        self.graph = None  # its constants changed: this iteration runs eagerly, then the next is captured
        with self._side_stream():
            self.body(*inputs)
        self.eager_calls += 1
        if self.capture and self.eager_calls >= self.warmup:
            self._capture(key, inputs)

    def _side_stream(self) -> AbstractContextManager:
        """Eager iterations before a capture run on a side stream, as CUDA graph capture requires."""
        try:
            if self._stream is None:
                self._stream = torch.cuda.Stream()
            self._stream.wait_stream(torch.cuda.current_stream())
        except Exception as exc:  # no CUDA here: nothing to capture
            self._give_up(exc)
            return nullcontext()
        return _StreamJoin(self._stream)

    def _capture(self, key: Hashable, inputs: tuple[torch.Tensor | None, ...]) -> None:
        try:
            self.static = [None if value is None else value.clone() for value in inputs]
            graph = capture(lambda: self.body(*self.static))
        except Exception as exc:
            self._give_up(exc)
            return
        self.graph, self.key = graph, key

    def _give_up(self, exc: BaseException) -> None:
        self.capture, self.graph, self.static = False, None, []
        first_line = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        warnings.warn(f"CUDA graph capture failed, training continues without graphs: {first_line}", stacklevel=3)


class _StreamJoin(AbstractContextManager):
    """Run the block on ``stream``; the current stream waits for it afterwards."""

    def __init__(self, stream: torch.cuda.Stream) -> None:
        self.stream = stream
        self.outer = torch.cuda.current_stream()
        self.context = torch.cuda.stream(stream)

    def __enter__(self) -> None:
        self.context.__enter__()

    def __exit__(self, *exc: object) -> None:
        self.context.__exit__(*exc)
        self.outer.wait_stream(self.stream)
