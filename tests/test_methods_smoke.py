"""Every registered method runs end to end through the harness, on the CPU and on CUDA when present.

That each one learns is tests/test_methods_learn.py's job; here a run must finish, report
consistent metrics, repeat itself exactly and leave the caller's global random state alone.
"""

from __future__ import annotations

import pytest
import torch

import gzslbench

SHORT = {"epochs": 2, "cls_epochs": 2}  # applied where a method has these keys
DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA"))]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("method", gzslbench.list_methods())
def test_method_runs_and_is_deterministic(method, device, tmp_path):
    defaults = gzslbench.get_method(method).defaults
    overrides = {k: v for k, v in SHORT.items() if k in defaults}
    global_state = torch.get_rng_state(), torch.cuda.get_rng_state() if device == "cuda" else None
    first, second = (
        gzslbench.run(method, "synth-tiny", out=tmp_path / name, overrides=overrides, device=device)[0]
        for name in ("a", "b")
    )
    assert first["status"] == "ok", first.get("error")
    assert torch.equal(torch.get_rng_state(), global_state[0])  # a run draws from its own generators only
    if device == "cuda":
        assert torch.equal(torch.cuda.get_rng_state(), global_state[1])
    assert first["env"]["device"].startswith(device)
    for mode in ("last", "oracle"):
        u, s, h = (first["metrics"][mode][m] for m in ("U", "S", "H"))
        assert h == pytest.approx(2 * u * s / (u + s) if u + s else 0.0)  # H is the harmonic mean of U and S
    assert len(first["history"]["test"]) == overrides.get("cls_epochs", overrides.get("epochs", 1))
    if device == "cpu":
        assert first["metrics"] == second["metrics"]
