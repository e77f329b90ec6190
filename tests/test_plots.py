"""Figures from run records: valid PNG and PDF files whose pixels follow the records' numbers."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from conftest import write_record

import gzslbench
from gzslbench.cli import cli
from gzslbench.cli.report import write_report
from gzslbench.reports import plots
from gzslbench.reports.plots import (
    curve_panels,
    latent_points,
    line_labels,
    plot_bars,
    plot_curves,
    plot_sensitivity,
    select_records,
    sweeps,
)

imread = pytest.importorskip("matplotlib.image", reason="the figures need the plots extra").imread
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
OVERRIDES = {"epochs": 2, "cls_epochs": 1, "oracle_from_epoch": 1, "seen_samples": 20, "unseen_samples": 20}


def assert_figures(paths, names):
    assert sorted(p.name for p in paths) == sorted(f"{n}.{ext}" for n in names for ext in ("png", "pdf"))
    for path in paths:
        head = path.read_bytes()[:8]
        assert head == PNG_MAGIC if path.suffix == ".png" else head.startswith(b"%PDF-")
    for png in (p for p in paths if p.suffix == ".png"):
        assert imread(png).shape[0] > 200  # decodes, and is a real figure


def history(scale: float, epochs: int = 4) -> dict:
    train = [
        {"stage": "vae", "epoch": e, "reconstruction": scale * 100 / e, "kl": scale * e, "distance": 0.0, "total": 1.0}
        for e in range(1, epochs + 1)
    ]
    train += [{"stage": "classifier", "epoch": e, "loss": scale / e} for e in range(1, 3)]
    test = [{"epoch": e, "U": 10.0 * e * scale, "S": 50.0, "H": 15.0 * e * scale} for e in range(1, 3)]
    return {"train": train, "test": test}


def test_bars_follow_the_records(paper_results, tmp_path):
    first = plot_bars(paper_results, tmp_path / "a")
    assert_figures(first, ["bars"])
    write_record(paper_results, "acmr", "synth-cub", 0, 10.0, 30.0, 60.0)  # was 40
    second = plot_bars(paper_results, tmp_path / "b")
    assert not np.array_equal(imread(first[0]), imread(second[0]))
    again = plot_bars(paper_results, tmp_path / "c")
    assert np.array_equal(imread(second[0]), imread(again[0]))  # same records, same pixels


def test_curves_one_figure_per_dataset_from_history(tmp_path):
    out = tmp_path / "results"
    for seed in range(2):
        write_record(out, "acmr", "synth-cub", seed, 40.0, 30.0, 60.0, history=history(1.0 + seed))
        write_record(out, "cada-vae", "synth-cub", seed, 38.0, 30.0, 60.0, history=history(2.0))
    write_record(out, "acmr", "synth-sun", 0, 40.0, 30.0, 60.0, history=history(1.0))
    first = plot_curves(select_records(out), tmp_path / "f1")
    assert_figures(first, ["curves-synth-cub", "curves-synth-sun"])
    write_record(out, "acmr", "synth-cub", 1, 40.0, 30.0, 60.0, history=history(5.0))
    second = plot_curves(select_records(out, datasets=["synth-cub"]), tmp_path / "f2")
    assert not np.array_equal(imread(first[0]), imread(second[0]))


def gan_history(scale: float, epochs: int = 3) -> dict:
    """A feature generator's history: a pre-trained classifier, the GAN's loss terms, the final classifier."""
    train = [{"stage": "pretrain", "epoch": e, "loss": scale / e} for e in range(1, epochs + 1)]
    train += [
        {
            "stage": "gan",
            "epoch": e,
            "critic_loss": -scale * e,
            "wasserstein": scale * e,
            "gradient_penalty": 0.1,
            "generator_loss": scale / e,
            "adversarial": scale,
            "classification": 0.0,
        }
        for e in range(1, epochs + 1)
    ]
    train += [{"stage": "classifier", "epoch": e, "loss": scale / e} for e in range(1, 3)]
    test = [{"epoch": e, "U": 10.0 * e * scale, "S": 50.0, "H": 15.0 * e * scale} for e in range(1, 3)]
    return {"train": train, "test": test}


def test_curves_show_the_gan_stage_losses(tmp_path):
    out = tmp_path / "results"
    for seed in range(2):
        write_record(out, "f-clswgan", "synth-cub", seed, 40.0, 30.0, 60.0, history=gan_history(1.0 + seed))
    records = select_records(out)
    gan_panels = [("pretrain", "loss"), *(("gan", t) for t in ("critic_loss", "wasserstein", "gradient_penalty"))]
    gan_panels += [("gan", "generator_loss"), ("gan", "adversarial"), ("classifier", "loss")]
    assert curve_panels(records) == [*gan_panels, ("test", "U"), ("test", "S"), ("test", "H")]  # all-zero term left out
    write_record(out, "acmr", "synth-cub", 0, 40.0, 30.0, 60.0, history=history(1.0))
    assert ("vae", "reconstruction") in curve_panels(select_records(out))  # both families on one figure
    first = plot_curves(records, tmp_path / "f1")
    assert_figures(first, ["curves-synth-cub"])
    write_record(out, "f-clswgan", "synth-cub", 1, 40.0, 30.0, 60.0, history=gan_history(4.0))
    second = plot_curves(select_records(out, methods=["f-clswgan"]), tmp_path / "f2")
    assert not np.array_equal(imread(first[0]), imread(second[0]))


def test_sensitivity_finds_one_key_sweeps(tmp_path):
    out = tmp_path / "results"
    base = {"lam": 1.0, "gamma": 10.0, "schedule": [2.0, 0.0, 9.0]}
    variants = {
        "h1": base,
        "h2": {**base, "lam": 0.1},
        "h3": {**base, "lam": 10.0},
        "h4": {**base, "schedule": [3.0, 0.0, 9.0]},
        "h5": {**base, "lam": 5.0, "gamma": 1.0},  # differs in two keys: in no sweep
    }
    for h, config in variants.items():
        for seed in range(2):
            H = 30.0 + config["lam"] + seed
            write_record(out, "eszsl", "synth-cub", seed, H, H, H, config_hash=h, config=config)
    found = sweeps(select_records(out))
    assert set(found) == {("eszsl", "lam"), ("eszsl", "schedule[0]")}
    assert {r["config_hash"] for rs in found[("eszsl", "lam")].values() for r in rs} == {"h1", "h2", "h3"}
    paths = plot_sensitivity(select_records(out), tmp_path / "figs")
    assert_figures(paths, ["sensitivity-eszsl-lam", "sensitivity-eszsl-schedule_0"])
    result = CliRunner().invoke(cli, ["plot", "sensitivity", "--results", str(out), "-m", "acmr"])
    assert result.exit_code == 2 and result.output.startswith("error: no finished run records")


def test_a_two_key_grid_gives_one_line_per_value_of_the_other_key_not_a_pool(tmp_path):
    out = tmp_path / "results"
    for i, (gamma, lam) in enumerate([(g, lam) for g in (1.0, 10.0, 100.0) for lam in (0.1, 1.0)]):
        H = 10.0 * lam + gamma / 10.0
        write_record(out, "eszsl", "synth-cub", 0, H, H, H, config_hash=f"p{i}", config={"gamma": gamma, "lam": lam})
    lines = sweeps(select_records(out))[("eszsl", "gamma")]
    assert len(lines) == 2  # one per lam, each over the 3 gammas
    for records in lines.values():
        assert len({r["config"]["lam"] for r in records}) == 1 and len(records) == 3
    assert line_labels(sorted(lines)) == ["CUB (synthetic), lam=0.1", "CUB (synthetic), lam=1.0"]
    assert_figures(
        plot_sensitivity(select_records(out), tmp_path / "figs"), ["sensitivity-eszsl-gamma", "sensitivity-eszsl-lam"]
    )


def test_sensitivity_without_a_sweep_is_an_error(paper_results, tmp_path):
    result = CliRunner().invoke(cli, ["plot", "sensitivity", "--results", str(paper_results), "--out", str(tmp_path)])
    assert result.exit_code == 2 and "differ in exactly one config value" in result.output


@pytest.fixture(scope="module")
def saved_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("saved") / "results"
    records = gzslbench.run("acmr", "synth-tiny", seeds=1, out=out, overrides=OVERRIDES, save_model=True)
    return out, records[0]


def test_save_model_writes_the_state_dict_beside_the_record(saved_run):
    out, record = saved_run
    path = next((out / "runs").rglob("seed-0.model.pt"))
    assert record["model_file"] == path.name and path.name == "seed-0.model.pt"
    state = torch.load(path, weights_only=True)
    assert any(k.startswith("visual_encoder.") for k in state) and all(v.device.type == "cpu" for v in state.values())
    assert any(k.startswith("visual_iem") for k in state)  # ACMR's IEM is part of the saved model
    assert "--save-model" in record["command"]
    before = path.stat().st_mtime_ns
    gzslbench.run("acmr", "synth-tiny", seeds=1, out=out, overrides=OVERRIDES, save_model=True)
    assert path.stat().st_mtime_ns == before  # finished with its model: skipped


def test_a_run_finished_without_its_model_reruns_to_save_it(tmp_path):
    out = tmp_path / "results"
    gzslbench.run("acmr", "synth-tiny", seeds=1, out=out, overrides=OVERRIDES)
    assert not list(out.rglob("*.model.pt"))
    record = gzslbench.run("acmr", "synth-tiny", seeds=1, out=out, overrides=OVERRIDES, save_model=True)[0]
    assert record["model_file"] == "seed-0.model.pt" and len(list(out.rglob("*.model.pt"))) == 1


def test_a_run_finished_without_its_scores_reruns_to_save_them(tmp_path):
    """Not asked for at first, or deleted since: --save-scores runs again, as --save-model does, once."""
    first = gzslbench.run("eszsl", "synth-tiny", out=tmp_path)[0]
    again = gzslbench.run("eszsl", "synth-tiny", out=tmp_path, save_scores=True)[0]
    (scores,) = tmp_path.rglob("*.scores.npz")
    assert again["started_at"] != first["started_at"] and again["metrics"] == first["metrics"]
    kept = gzslbench.run("eszsl", "synth-tiny", out=tmp_path, save_scores=True)[0]
    assert kept["started_at"] == again["started_at"]  # finished with its scores: skipped
    scores.unlink()
    gzslbench.run("eszsl", "synth-tiny", out=tmp_path, save_scores=True)
    assert scores.is_file()


def test_save_model_with_a_method_that_saves_none_is_noted_and_resumed(tmp_path):
    """ESZSL keeps no module: --save-model cannot save one, so a rerun must not train it again for it."""
    first = gzslbench.run("eszsl", "synth-tiny", out=tmp_path, save_model=True)[0]
    assert first["warnings"] == ["--save-model: the method saves no model (it does not call ctx.save_model)"]
    again = gzslbench.run("eszsl", "synth-tiny", out=tmp_path, save_model=True)[0]
    assert again["started_at"] == first["started_at"] and not list(tmp_path.rglob("*.model.pt"))


def test_tsne_reencodes_test_features_with_the_saved_model(saved_run, tmp_path):
    out, record = saved_run
    model_file = next((out / "runs").rglob("seed-0.model.pt"))
    points = latent_points(record, model_file, n_classes=3)
    assert points["attribute"].shape == (6, 64) and len(points["visual"]) == len(points["visual_y"]) > 20
    assert set(points["visual_y"]) == set(points["seen"]) | set(points["unseen"])
    result = CliRunner().invoke(cli, ["plot", "tsne", "--results", str(out), "--out", str(tmp_path), "--classes", "3"])
    assert result.exit_code == 0, result.output
    assert_figures(sorted(tmp_path.glob("tsne-*")), [f"tsne-synth-tiny-acmr-{record['config_hash']}-seed0"])
    state = torch.load(model_file, weights_only=True)
    torch.save({k: torch.zeros_like(v) for k, v in state.items()}, model_file)
    zeroed = latent_points(record, model_file, n_classes=3)
    assert not np.allclose(points["visual"], zeroed["visual"])  # the figure's points come from the saved weights
    torch.save(state, model_file)


def test_tsne_needs_a_saved_model(paper_results):
    result = CliRunner().invoke(cli, ["plot", "tsne", "--results", str(paper_results)])
    assert result.exit_code == 2 and "run --save-model" in result.output


def test_tsne_of_a_method_without_a_latent_space_is_refused_and_the_report_still_written(tmp_path):
    """A saved model of another family (a plugin's, a baseline's) has no VAE latents to draw."""
    out = tmp_path / "results"
    (record,) = gzslbench.run("eszsl", "synth-tiny", out=out)
    path = next((out / "runs").rglob("seed-0.json"))
    path.write_text(json.dumps(record | {"model_file": "seed-0.model.pt"}))
    path.with_name("seed-0.model.pt").write_bytes(b"weights")
    result = CliRunner().invoke(cli, ["plot", "tsne", "--results", str(out), "--out", str(tmp_path / "figures")])
    assert result.exit_code == 2
    assert result.output == "error: t-SNE draws the latent space of the VAE methods; no selected saved model has one\n"
    index = write_report(str(out), tmp_path / "report")
    assert "tsne: not drawn (t-SNE draws the latent space" in index.read_text()


def test_report_writes_tables_figures_and_an_index_that_links_them(paper_results, tmp_path):
    index = write_report(str(paper_results), tmp_path / "report")
    text = index.read_text()
    links = re.findall(r"\]\(([^)]+)\)", text)
    assert {"tables/table2.md", "tables/table2.tex", "tables/table3.tex", "figures/bars.png"} <= set(links)
    assert all((index.parent / link).is_file() for link in links)
    assert "tables/table2-reported.md" in links  # a real dataset (cub) is present
    assert "tsne: not drawn" in text and "sensitivity: not drawn" in text
    assert "**42.0 ± 2.0**" in (index.parent / "tables" / "table2.md").read_text()
    assert "\\toprule" in (index.parent / "tables" / "table3.tex").read_text()


def test_seen_unseen_plot_reads_saved_scores_and_needs_them(tmp_path):
    from click.testing import CliRunner

    from gzslbench.cli import cli

    out = tmp_path / "results"
    gzslbench.run("sae", "synth-tiny", out=out, device="cpu")
    runner = CliRunner()
    missing = runner.invoke(cli, ["plot", "seen-unseen", "--results", str(out), "--out", str(tmp_path / "f")])
    assert missing.exit_code == 2 and "run with --save-scores" in missing.output
    gzslbench.run("sae", "synth-tiny", out=out, device="cpu", save_scores=True, overrides={"lam": 1.0})
    drawn = runner.invoke(cli, ["plot", "seen-unseen", "--results", str(out), "--out", str(tmp_path / "f")])
    assert drawn.exit_code == 0, drawn.output
    png = tmp_path / "f" / "seen-unseen-synth-tiny.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and (tmp_path / "f" / "seen-unseen-synth-tiny.pdf").exists()


def test_the_h_axis_of_an_oracle_figure_says_its_epochs_were_chosen_on_the_test_set(paper_results, monkeypatch):
    figures = []
    monkeypatch.setattr(plots, "save", lambda fig, out, name: figures.append(fig) or [])
    plot_bars(paper_results, Path("unused"), mode="oracle")
    plot_bars(paper_results, Path("unused"), mode="last")
    labels = [figure.axes[0].get_ylabel() for figure in figures]
    assert labels == ["H (%), selection: oracle (epoch chosen on the TEST set)", "H (%), selection: last"]


@pytest.mark.parametrize("kind", ["bars", "curves"])
def test_plot_names_the_record_files_it_skips_as_table_does(paper_results, tmp_path, kind):
    path = next((paper_results / "runs" / "synth-cub" / "acmr").rglob("seed-0.json"))
    for seed, scale in enumerate([1.0, 2.0, 3.0]):
        write_record(paper_results, "acmr", "synth-cub", seed, 40.0, 30.0, 60.0, history=history(scale))
    path.write_text(path.read_text()[:40])  # truncated
    result = CliRunner().invoke(cli, ["plot", kind, "--results", str(paper_results), "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert f"warning: skipped {path}: not valid JSON, probably truncated" in result.output
    table = CliRunner().invoke(cli, ["table", "--results", str(paper_results)])
    assert f"warning: skipped {path}: not valid JSON" in table.output


def test_seen_unseen_names_the_record_files_it_skips(tmp_path):
    out = tmp_path / "results"
    gzslbench.run("sae", "synth-tiny", out=out, device="cpu", save_scores=True)
    gzslbench.run("sae", "synth-tiny", out=out, device="cpu", save_scores=True, overrides={"lam": 1.0})
    path = sorted((out / "runs").rglob("seed-0.json"))[0]
    path.write_text("")
    result = CliRunner().invoke(cli, ["plot", "seen-unseen", "--results", str(out), "--out", str(tmp_path / "f")])
    assert result.exit_code == 0, result.output
    assert f"warning: skipped {path}: not valid JSON" in result.output


def test_curves_skip_a_record_whose_history_is_damaged(tmp_path):
    for seed in range(2):
        write_record(tmp_path, "cada-vae", "synth-cub", seed, 40.0, 30.0, 60.0, history=history(1.0 + seed))
    path = next(tmp_path.rglob("seed-1.json"))
    write_record(tmp_path, "cada-vae", "synth-cub", 1, 40.0, 30.0, 60.0, history={"train": [{"stage": "vae"}]})
    result = CliRunner().invoke(cli, ["plot", "curves", "--results", str(tmp_path), "--out", str(tmp_path / "f")])
    assert result.exit_code == 0, result.output
    assert f"warning: skipped {path}: 'history.train' has a row without an 'epoch'" in result.output
    assert_figures(sorted((tmp_path / "f").glob("curves-*")), ["curves-synth-cub"])


def test_tsne_skips_a_record_whose_config_cannot_rebuild_the_model(saved_run, tmp_path):
    """A damaged config value is named with its file, never an error from inside the model's code."""
    import shutil

    out = tmp_path / "results"
    shutil.copytree(saved_run[0], out)
    path = next((out / "runs").rglob("seed-0.json"))
    record = json.loads(path.read_text())
    path.write_text(json.dumps(record | {"config": record["config"] | {"latent_size": [1, 2]}}))
    result = CliRunner().invoke(cli, ["plot", "tsne", "--results", str(out), "--out", str(tmp_path / "f")])
    reason = f"{path}: config 'latent_size': expected an integer, got [1, 2]"
    assert result.exit_code == 2 and "unexpected" not in result.output
    assert result.output == (
        f"warning: skipped {reason}\nerror: no selected saved model can be rebuilt from its record: {reason}\n"
    )
    index = write_report(str(out), tmp_path / "report")
    assert "tsne: not drawn (no selected saved model can be rebuilt" in index.read_text()
