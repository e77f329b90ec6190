"""Table 2 / Table 3 from a hand-written results folder: every number checked against the records."""

from __future__ import annotations

import io
import json
import re
import shutil
import subprocess

import pandas as pd
import pytest
from click.testing import CliRunner
from conftest import write_record

from gzslbench.cli import cli
from gzslbench.reports.reported import counterpart, display_dataset, reported, reported_table
from gzslbench.reports.tables import TABLE2_SOURCES


@pytest.fixture
def table(paper_results):
    def call(*args: str) -> str:
        result = CliRunner().invoke(cli, ["table", "--results", str(paper_results), *args], catch_exceptions=False)
        assert result.exit_code == 0, result.output
        return result.output

    return call


def row(markdown: str, label: str) -> list[str]:
    """The cells of the Markdown row whose first cell is ``label``."""
    for line in (ln for ln in markdown.splitlines() if ln.startswith("|")):
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if cells[0] == label:
            return cells
    raise AssertionError(f"no row {label!r} in\n{markdown}")


def test_reported_rows_prefer_a_methods_own_paper():
    acmr_quote = reported(("table2",), ["cub"])
    quoted = acmr_quote[acmr_quote["method"] == "f-CLSWGAN"].iloc[0]
    assert (quoted["U"], quoted["S"]) == (57.7, 43.7)  # as ACMR's Table 2 prints it
    shown = reported(TABLE2_SOURCES, ["cub", "awa2"])
    assert not shown.duplicated(["method", "dataset"]).any()
    fclswgan = shown[(shown["method"] == "f-CLSWGAN") & (shown["dataset"] == "cub")].iloc[0]
    assert (fclswgan["table"], fclswgan["U"], fclswgan["S"], fclswgan["H"]) == ("original", 43.7, 57.7, 49.7)
    assert counterpart("f-vaegan", "cub", TABLE2_SOURCES)["U"] == 48.4
    assert counterpart("tf-vaegan", "cub", TABLE2_SOURCES)["H"] == 58.1  # ACMR's table has no TF-VAEGAN row
    assert counterpart("f-clswgan", "awa2", TABLE2_SOURCES)["table"] == "table2"  # no original row there
    gan = [m for m in reported(TABLE2_SOURCES, ["cub"])["method"] if m in {"cycle-CLSWGAN", "f-CLSWGAN", "LiGAN"}]
    assert gan == ["cycle-CLSWGAN", "f-CLSWGAN", "LiGAN"]  # a corrected row keeps its place in ACMR's table


def test_reported_numbers_are_package_data_with_names_mapped():
    frame = reported_table()
    assert set(frame["table"]) == {"original", "table2", "table3", "xian2018"} and frame["source"].notna().all()
    assert counterpart("acmr", "cub", ("table2",))["H"] == 55.3
    assert counterpart("acmr", "cub", ("table3",))["H"] == 55.2
    assert counterpart("eszsl", "awa2", ("table2", "xian2018"))["H"] == 11.0
    assert counterpart("acmr", "synth-cub", ("table2",)) is None
    assert display_dataset("cub") == "CUB" and display_dataset("synth-cub") == "CUB (synthetic)"


def test_table2_markdown_means_stds_groups_and_best(table):
    out = table()  # table2 is the default style
    header = out.splitlines()[2]
    assert header.index("CUB") < header.index("CUB (synthetic)") < header.index("SUN (synthetic)")
    assert out.index("*Generative (VAE)*") < out.index("*ACMR ablations*") < out.index("*ACMR*")
    acmr = row(out, "ACMR")
    # Method, n, CUB U S H, CUB (synthetic) U S H, SUN (synthetic) U S H
    assert acmr[2:5] == ["50.0", "58.0", "**54.0**<sup>c</sup>"]  # one seed: no spread; n varies -> footnote
    assert acmr[5:8] == ["31.0 ± 1.0", "60.0 ± 0.0", "**42.0 ± 2.0**<sup>a</sup>"]
    assert acmr[10] == "<u>21.0 ± 1.4</u><sup>d</sup>" and acmr[1] == "1–3"
    cada = row(out, "CADA-VAE")  # read first: its notes get the first letters
    assert cada[2:5] == ["–", "–", "–"] and cada[7] == "<u>39.0 ± 1.0</u><sup>a</sup>"
    assert cada[10] == "**25.0**<sup>b</sup>"  # one finished seed beside one failed
    assert row(out, "Dual-VAE")[1] == "2" and row(out, "Dual-VAE")[7] == "30.5 ± 0.7"
    assert "- <sup>b</sup> n=1, 1 failed" in out and "- <sup>c</sup> n=1" in out and "- <sup>a</sup> n=3" in out
    assert "fixed epoch count" in out and "†" not in out and "reported" not in out


def test_failed_note_only_when_a_run_failed(table, paper_results):
    shutil.rmtree(paper_results / "runs" / "synth-sun" / "cada-vae")
    assert "failed" not in table()


def test_table2_reported_rows_and_deltas_only_on_real_datasets(table):
    out = table("--reported", "--compare", "reported")
    header = out.splitlines()[2]
    assert " SUN " in header  # the twin of synth-sun joins to carry the published numbers
    sub = row(out, "")  # U / S / H / ΔH sub-header
    assert sub[2:6] == ["U", "S", "H", "ΔH"] and sub.count("ΔH") == 1  # Δ only under CUB
    rep = row(out, "ACMR (reported)")
    assert rep[2:5] == ["53.1", "57.7", "**55.3**"] and rep[6:9] == ["–", "–", "–"]  # nothing under CUB (synthetic)
    assert row(out, "ACMR")[5] == "-1.3"  # 54.0 - 55.3
    assert row(out, "ESZSL (reported)")[4] == "21.0<sup>a</sup>"  # from another paper than most: its note names it
    assert "<sup>a</sup> published in Xian et al. TPAMI 2018" in out
    assert row(out, "CVAE (reported)")[2:5] == ["–", "–", "34.5"]
    assert "(reported): published numbers, not run here; from ACMR AAAI 2022 Table 2 unless the cell's note" in out
    assert out.index("ESZSL (reported)") < out.index("*Generative (GAN)*")

    data = json.loads(table("--reported", "--compare", "reported", "--format", "json"))
    rows = data["entries"]
    assert {e["dataset"] for e in rows if e["kind"] == "reported"} == {"cub", "sun"}
    deltas = [e for e in rows if e.get("delta_H") is not None]
    assert [(e["method"], e["dataset"]) for e in deltas] == [("acmr", "cub")]
    assert deltas[0]["delta_H"] == pytest.approx(-1.3) and deltas[0]["delta_U"] == pytest.approx(50.0 - 53.1)


def test_in_oracle_mode_a_delta_is_marked_as_the_test_selected_number_it_comes_from(table):
    out = table("--reported", "--compare", "reported", "--mode", "oracle")
    assert "†" in row(out, "ACMR")[4] and row(out, "ACMR")[5] == "-0.3†"  # 55.0 - 55.3, both marked


def test_compare_without_a_real_run_says_so(table, paper_results):
    shutil.rmtree(paper_results / "runs" / "cub")
    out = table("--compare", "reported")
    assert "ΔH" not in out and "reported numbers exist only for real datasets" in out


def test_oracle_marks_every_run_cell(table):
    out = table("--mode", "oracle")
    acmr = row(out, "ACMR")
    assert all(c.endswith(("†", "</sup>")) and "†" in c for c in acmr[2:])
    assert acmr[7] == "**43.0 ± 2.0**†<sup>a</sup>"  # the oracle numbers of the records
    assert "- † oracle: every run number here selects its epoch on the test set." in out
    latex = table("--mode", "oracle", "--format", "latex")
    assert latex.count("$^{\\dagger}$") == 6 + 3 + 9 + 1  # CADA-VAE, Dual-VAE and ACMR run cells, the footnote
    assert "ORACLE" in latex


def test_ci_replaces_std(table):
    acmr = row(table("--ci"), "ACMR")
    assert acmr[7] == "**42.0 ± 5.0**<sup>a</sup>"  # t(0.975, 2) * 2 / sqrt(3) = 4.97
    assert acmr[4] == "**54.0**<sup>c</sup>"  # one seed: still no spread


def test_significance_marks_runs_tied_with_the_best(table):
    out = table("--significance")
    assert row(out, "ACMR")[7].startswith("**42.0 ± 2.0**‡")  # the best
    assert "‡" in row(out, "CADA-VAE")[7]  # 39 ± 1 vs 42 ± 2 over 3 seeds: p > 0.05
    assert "‡" not in row(out, "Dual-VAE")[7]  # 30.5 ± 0.7: significantly below
    assert "one-sided t-test over seeds" in out


def test_table3_marks_components_and_sets_reported_beside_ours(table):
    out = table("--style", "table3", "--reported", "--compare", "reported")
    sub = row(out, "")
    assert sub[4:] == ["ours", "reported", "Δ", "ours", "reported", "ours"]  # CUB, CUB (synthetic), SUN, SUN (synth.)
    acmr = row(out, "ACMR")
    assert acmr[1:4] == ["✓", "✓", "1–3"] and acmr[4:7] == ["**54.0**<sup>a</sup>", "55.2", "-1.2"]
    assert acmr[7] == "**42.0 ± 2.0**<sup>b</sup>"
    dual = row(out, "Dual-VAE")
    assert dual[1:4] == ["", "", "2"] and dual[5] == "32.7" and dual[7] == "<u>30.5 ± 0.7</u>"
    assert row(out, "IE-VAE")[1:3] == ["✓", ""] and row(out, "VSA-VAE")[1:3] == ["", "✓"]
    assert "CADA-VAE" not in out
    plain = table("--style", "table3")
    assert "reported" not in plain and "IE-VAE" not in plain  # not run, not reported


def test_table3_without_ablation_runs_is_an_error(paper_results):
    result = CliRunner().invoke(cli, ["table", "--results", str(paper_results), "--style", "table3", "-m", "cada-vae"])
    assert result.exit_code == 2 and result.output.startswith("error: Table 3 needs runs of the ablation methods")


def test_csv_and_json_carry_the_record_numbers(table):
    frame = pd.read_csv(io.StringIO(table("--format", "csv")))
    assert list(frame.columns[:4]) == ["method", "dataset", "config_hash", "U_mean"]
    acmr = frame[(frame["method"] == "acmr") & (frame["dataset"] == "synth-cub")].iloc[0]
    assert (acmr["H_mean"], acmr["H_std"], acmr["n"], acmr["best_H"]) == (42.0, 2.0, 3, True)
    assert acmr["H_ci"] == pytest.approx(4.968, abs=1e-3)
    cada = frame[(frame["method"] == "cada-vae") & (frame["dataset"] == "synth-sun")].iloc[0]
    assert (cada["n"], cada["failed"], cada["H_mean"]) == (1, 1, 25.0) and pd.isna(cada["H_std"])
    data = json.loads(table("--style", "table3", "--format", "json", "--mode", "oracle"))
    assert data["style"] == "table3" and data["mode"] == "oracle"
    dual = next(e for e in data["entries"] if e["method"] == "dual-vae")
    assert dual["H_mean"] == pytest.approx(31.5) and dual["IEM"] is False and dual["second_H"] is True
    assert any("test set" in note for note in data["notes"])


def test_latex_is_booktabs_ascii_and_compiles(table, tmp_path):
    latex = table("--reported", "--compare", "reported", "--format", "latex")
    assert latex.isascii() and "siunitx" not in latex and "\\hline" not in latex
    for rule in ("\\toprule", "\\midrule", "\\bottomrule"):
        assert rule in latex
    assert "\\multicolumn{4}{c}{CUB} & \\multicolumn{3}{c}{CUB (synthetic)}" in latex
    assert "\\cmidrule(lr){3-6} \\cmidrule(lr){7-9}" in latex
    assert "\\textbf{42.0 $\\pm$ 2.0}" in latex and "\\underline{39.0 $\\pm$ 1.0}" in latex
    assert "ACMR (reported) &  & 53.1 & 57.7 & \\textbf{55.3} & -- & -- & -- & --" in latex
    columns = re.search(r"\\begin\{tabular\}\{(\w+)\}", latex).group(1)
    body = [ln for ln in latex.splitlines() if ln.endswith("\\\\") and not ln.startswith("\\multicolumn{")]
    assert all(ln.count(" & ") == len(columns) - 1 for ln in body[2:])  # every row fills every column
    assert latex.count("{") == latex.count("}")
    table3 = table("--style", "table3", "--reported", "--format", "latex")
    assert "$\\surd$" in table3 and table3.isascii()
    assert "\\begin{table*}[t]" in latex and latex.rstrip().endswith("\\end{table*}")  # wider than a column
    narrow = table("--style", "table3", "-d", "synth-cub", "--format", "latex")
    assert "\\begin{table}[t]" in narrow and narrow.rstrip().endswith("\\end{table}")
    engine = shutil.which("pdflatex")
    if engine is None:
        return
    for name, text in (("t2", latex), ("t3", table3)):
        doc = "\\documentclass{article}\n\\usepackage{booktabs}\n\\begin{document}\n" + text + "\\end{document}\n"
        (tmp_path / f"{name}.tex").write_text(doc)
        done = subprocess.run(
            [engine, "-interaction=nonstopmode", "-halt-on-error", f"{name}.tex"], cwd=tmp_path, capture_output=True
        )
        assert done.returncode == 0, done.stdout.decode(errors="replace")[-2000:]


def test_metrics_option_adds_ausuc_and_h_cs_columns(paper_results):
    from conftest import write_record

    out = paper_results.parent / "cs"
    for seed, (ausuc, h_cs) in enumerate([(60.0, 50.0), (62.0, 54.0)]):
        record = write_record(out, "acmr", "synth-cub", seed, 40.0, 30.0, 60.0)
        record["metrics"]["last"].update(AUSUC=ausuc, H_cs=h_cs)
        path = out / "runs" / "synth-cub" / "acmr" / "cfg0" / f"seed-{seed}.json"
        path.write_text(json.dumps(record))
    result = CliRunner().invoke(cli, ["table", "--results", str(out), "--metrics", "h,ausuc,h_cs"])
    assert result.exit_code == 0, result.output
    assert row(result.output, "ACMR")[2:] == ["**40.0 ± 0.0**", "61.0 ± 1.4", "52.0 ± 2.8"]
    bad = CliRunner().invoke(cli, ["table", "--results", str(out), "--metrics", "h,zsl"])
    assert bad.exit_code == 2 and "unknown metric 'zsl'" in bad.output


def test_unusable_and_mixed_records_are_named_and_strict_refuses_them(paper_results):
    acmr = paper_results / "runs" / "synth-cub" / "acmr" / "cfg0"
    (acmr / "seed-7.json").write_text('{"schema_version": 2, "status": "ok", "metr')  # truncated
    record = json.loads((acmr / "seed-1.json").read_text())
    record["code"] = {"version": "0.0.9", "git_commit": "abc"}
    (acmr / "seed-1.json").write_text(json.dumps(record))
    runner = CliRunner()
    shown = runner.invoke(cli, ["table", "--results", str(paper_results)])
    assert shown.exit_code == 0
    assert f"warning: skipped {acmr / 'seed-7.json'}: not valid JSON" in shown.output
    assert "acmr on synth-cub [cfg0]: seeds from 2 code versions" in shown.output
    assert "1 unusable record file(s) skipped" in shown.output
    strict = runner.invoke(cli, ["table", "--results", str(paper_results), "--strict"])
    assert strict.exit_code == 2 and "--strict: 1 unusable record(s) and 1 cell(s) mixing" in strict.output


def test_tuned_rows_are_labelled(tmp_path):
    from conftest import write_record

    out = tmp_path / "results"
    write_record(out, "eszsl", "synth-cub", 0, 7.8, 4.7, 23.6, config_hash="plain")
    write_record(out, "eszsl", "synth-cub", 0, 13.1, 7.1, 85.1, config_hash="tuned", tuning={"chosen": {"lam": 0.1}})
    result = CliRunner().invoke(cli, ["table", "--results", str(out)])
    assert result.exit_code == 0, result.output
    assert (
        row(result.output, "ESZSL [tuned] (tuned)")[4] == "**13.1**"
        and row(result.output, "ESZSL [plain]")[4] == "<u>7.8</u>"
    )
    assert "Hyper-parameters chosen on the validation split (`gzslbench tune`): eszsl." in result.output


def test_reported_with_nothing_published_for_the_datasets_says_so(tmp_path):
    write_record(tmp_path, "acmr", "synth-tiny", 0, 40.0, 30.0, 60.0)
    shown = CliRunner().invoke(cli, ["table", "--reported", "--results", str(tmp_path)])
    assert shown.exit_code == 0 and "reported: no published numbers for these datasets" in shown.output


def test_a_config_variant_gets_a_row_of_its_own_and_the_defaults_keep_one_row(tmp_path):
    """Per-dataset defaults differ in hash, not in kind: they stay on one row; a variant is named by what differs."""
    from gzslbench.execution.resolve import method_config

    cub, awa2 = method_config("acmr", "cub"), method_config("acmr", "awa2")
    write_record(tmp_path, "acmr", "synth-cub", 0, 40.0, 30.0, 60.0, config_hash="cub-default", config=cub)
    write_record(tmp_path, "acmr", "synth-awa2", 0, 50.0, 40.0, 70.0, config_hash="awa2-default", config=awa2)
    variant = cub | {"epochs": 50}
    write_record(tmp_path, "acmr", "synth-cub", 0, 20.0, 10.0, 60.0, config_hash="cub-variant", config=variant)
    shown = CliRunner().invoke(cli, ["table", "--results", str(tmp_path)])
    assert shown.exit_code == 0, shown.output
    labels = [line.split("|")[1].strip() for line in shown.output.splitlines() if line.startswith("| ACMR")]
    assert labels == ["ACMR", "ACMR [epochs=50]"]
    assert row(shown.output, "ACMR")[4] == "**40.0**" and row(shown.output, "ACMR")[7] == "**50.0**"


def test_configs_that_differ_in_a_dataset_option_are_named_by_it(tmp_path):
    """Equal method configs on data made with another option (`-D seed=1`): not two bare config hashes."""
    from gzslbench.execution.resolve import method_config

    config = method_config("eszsl", "synth-tiny")
    write_record(tmp_path, "eszsl", "synth-tiny", 0, 40.0, 30.0, 60.0, config_hash="default", config=config)
    other = {"scale": 1.0, "seed": 1}
    write_record(
        tmp_path, "eszsl", "synth-tiny", 0, 20.0, 10.0, 60.0, config_hash="seed1", config=config, dataset_options=other
    )
    shown = CliRunner().invoke(cli, ["table", "--results", str(tmp_path)])
    assert shown.exit_code == 0, shown.output
    labels = [line.split("|")[1].strip() for line in shown.output.splitlines() if line.startswith("| ESZSL")]
    assert labels == ["ESZSL", "ESZSL [-D seed=1]"]


def test_a_metric_some_seeds_lack_counts_only_the_seeds_that_have_it(tmp_path):
    """An AUSUC of null (no curve) on one of 3 seeds: the interval is over 2 seeds, and the cell says so."""
    for seed, ausuc in enumerate([4.47, None, 9.42]):
        metrics = {"last": {"epoch": 10, "U": 30.0, "S": 60.0, "H": 40.0 + seed, "AUSUC": ausuc}}
        write_record(tmp_path, "ale", "synth-cub", seed, 40.0 + seed, 30.0, 60.0, metrics=metrics)
    shown = CliRunner().invoke(cli, ["table", "--results", str(tmp_path), "--metrics", "h,ausuc", "--ci"])
    assert shown.exit_code == 0, shown.output
    cell = row(shown.output, "ALE")[3]
    assert cell.startswith("6.9 ± 31.4<sup>")  # t(0.975, 1) * 3.50 / sqrt(2) = 31.4, not the 3-seed 8.7
    assert "AUSUC over 2 of 3 seeds (the others have none)" in shown.output


def test_without_the_h_column_the_seed_notes_and_the_title_follow_the_shown_columns(tmp_path):
    for seed in (0, 1):
        write_record(tmp_path, "devise", "synth-cub", seed, 20.0, 15.0, 40.0)
    write_record(tmp_path, "devise", "synth-cub", 2, 0.0, 0.0, 0.0, status="failed", metrics=None, error="boom")
    shown = CliRunner().invoke(cli, ["table", "--results", str(tmp_path), "--metrics", "u,s"])
    assert shown.exit_code == 0, shown.output
    assert shown.output.startswith("**GZSL results (U, S in %)") and "U / S in %: mean" in shown.output
    assert row(shown.output, "DeViSE")[3].endswith("<sup>a</sup>") and "n=2, 1 failed" in shown.output
    assert "Best H" not in shown.output


def test_val_mode_names_runs_made_without_val_instead_of_calling_them_failed(tmp_path):
    for seed in (0, 1):
        write_record(tmp_path, "devise", "synth-cub", seed, 20.0, 15.0, 40.0)  # modes last and oracle only
        write_record(tmp_path, "ale", "synth-cub", seed, 20.0, 15.0, 40.0)
    write_record(tmp_path, "devise", "synth-cub", 2, 0.0, 0.0, 0.0, status="failed", metrics=None, error="boom")
    metrics = {mode: {"epoch": 3, "U": 30.0, "S": 60.0, "H": 40.0} for mode in ("last", "val", "oracle")}
    write_record(tmp_path, "eszsl", "synth-cub", 0, 40.0, 30.0, 60.0, metrics=metrics)
    shown = CliRunner().invoke(cli, ["table", "--results", str(tmp_path), "--mode", "val"])
    assert shown.exit_code == 0, shown.output
    assert row(shown.output, "ALE")[4] == "–<sup>a</sup>" and row(shown.output, "DeViSE")[4] == "–<sup>b</sup>"
    assert "n=0, 1 failed, 2 without a 'val' selection (run with --val)" in shown.output
    assert "n=0, 2 without a 'val' selection (run with --val)" in shown.output
    assert row(shown.output, "ESZSL")[4] == "**40.0**"


def test_a_method_name_with_markdown_characters_stays_in_its_cell(tmp_path):
    write_record(tmp_path, "ale|v2*x*", "synth-cub", 0, 20.0, 15.0, 40.0)
    shown = CliRunner().invoke(cli, ["table", "--results", str(tmp_path)])
    assert shown.exit_code == 0, shown.output
    line = next(line for line in shown.output.splitlines() if "ale" in line)
    assert "ale\\|v2\\*x\\*" in line and line.count(" | ") == shown.output.splitlines()[2].count(" | ")
