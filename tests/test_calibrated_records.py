"""AUSUC and calibrated-stacking H in run records, and the saved test scores they come from."""

from __future__ import annotations

import pytest

import gzslbench
from gzslbench.protocol.calibration import ausuc
from gzslbench.reports.plots import saved_scores_curve


def test_records_carry_ausuc_and_h_cs_and_the_scores_reproduce_them(tmp_path):
    record = gzslbench.run("sae", "synth-tiny", out=tmp_path, validate=True, save_scores=True, device="cpu")[0]
    last = record["metrics"]["last"]
    curve = saved_scores_curve(next(tmp_path.rglob("seed-0.scores.npz")))  # from the file, not the run's memory
    assert 100 * ausuc(curve) == pytest.approx(last["AUSUC"], abs=1.0)  # float16 scores: ties may move a little
    assert last["H_cs"] > last["H"]  # SAE is seen-biased on synth-tiny: calibration helps, as in Chao et al.
    assert last["gamma_cs"] > 0


def test_without_validation_there_is_no_h_cs_and_without_the_flag_no_scores_file(tmp_path):
    record = gzslbench.run("sae", "synth-tiny", out=tmp_path, device="cpu")[0]
    assert "AUSUC" in record["metrics"]["last"] and "H_cs" not in record["metrics"]["last"]
    assert not list(tmp_path.rglob("*.scores.npz"))
