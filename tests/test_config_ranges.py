"""Declared config ranges and config-file checks: bad values are refused before any run, with one line."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, ClassVar

import pytest
from click.testing import CliRunner

from gzslbench.cli import cli
from gzslbench.core.config import Constraint, Range, check_ranges, load_config_file, undeclared_keys
from gzslbench.core.errors import ConfigError
from gzslbench.core.registry import METHODS
from gzslbench.execution.resolve import method_config
from gzslbench.methods.base import Method, RunContext, Scores


@pytest.fixture
def invoke(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cli_runner = CliRunner()

    def call(*args: str):
        return cli_runner.invoke(cli, list(args), catch_exceptions=False)

    return call


def _records(root) -> list:
    return sorted(root.rglob("seed-*.json"))


def _one_error_line(result) -> str:
    lines = result.output.strip().splitlines()
    assert result.exit_code == 2, result.output
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    return lines[0]


@pytest.mark.parametrize(
    ("method", "setting", "expected"),
    [
        ("acmr", "epochs=-2", "config 'epochs' = -2 is out of range (must be >= 0 and <= 100000)"),
        ("acmr", "lr=-0.001", "config 'lr' = -0.001 is out of range (must be > 0)"),
        ("acmr", "latent_size=0", "config 'latent_size' = 0 is out of range (must be >= 1)"),
        ("acmr", "seen_samples=-1", "config 'seen_samples' = -1 is out of range (must be >= 1)"),
        ("eszsl", "gamma=-1000", "config 'gamma' = -1000.0 is out of range (must be > 0)"),
        ("eszsl", "lam=0", "config 'lam' = 0.0 is out of range (must be > 0)"),
        ("acmr", "batch_size=0", "config 'batch_size' = 0 is out of range (must be >= 1 and <= 100000)"),
        ("acmr", "cls_batch_size=-4", "config 'cls_batch_size' = -4 is out of range (must be >= 1 and <= 100000)"),
        ("cada-vae", "cls_epochs=0", "config 'cls_epochs' = 0 is out of range (must be >= 1 and <= 100000)"),
        ("acmr", "lr=nan", "config 'lr' = nan is not finite (must be > 0)"),
        ("acmr", "lr=inf", "config 'lr' = inf is not finite (must be > 0)"),
        ("eszsl", "gamma=.inf", "config 'gamma' = inf is not finite (must be > 0)"),
        ("eszsl", "lam=.nan", "config 'lam' = nan is not finite (must be > 0)"),
        ("acmr", "kl_schedule=[2.5,10,5]", "config 'kl_schedule' = [2.5, 10.0, 5.0] is out of range (must be [factor"),
        ("acmr", "distance_schedule=[-1,0,10]", "config 'distance_schedule' = [-1.0, 0.0, 10.0] is out of range"),
        ("acmr", "kl_schedule=[1,0,.nan]", "config 'kl_schedule' = [1.0, 0.0, nan] is not finite"),
        ("acmr", "oracle_from_epoch=0", "config 'oracle_from_epoch' = 0 is out of range (must be >= 1"),
        ("acmr", "cls_epochs=1", "config 'oracle_from_epoch' = 2 is out of range (must be >= 1 and <= cls_epochs"),
        ("acmr", "reparam_scale=foo", "config 'reparam_scale' = 'foo' is out of range (must be one of 'exp_logvar'"),
        ("dual-vae", "cls_beta1=1", "config 'cls_beta1' = 1.0 is out of range (must be >= 0 and < 1)"),
    ],
)
def test_out_of_range_values_are_refused_before_any_run(invoke, tmp_path, method, setting, expected):
    result = invoke("run", "-m", method, "-d", "synth-tiny", "-q", "--set", setting)
    assert _one_error_line(result).startswith(f"error: method '{method}': {expected}")
    assert not _records(tmp_path)


@pytest.mark.parametrize(
    "settings",
    [
        ["epochs=0", "unseen_samples=0", "kl_schedule=[0,0,0]", "classify_schedule=[0,3,3]"],
        ["seen_samples=1", "batch_size=1", "cls_batch_size=1", "latent_size=1", "iem_hidden=1", "cls_beta1=0"],
        ["cls_epochs=1", "oracle_from_epoch=1", "lr=1e-12"],
        ["cls_epochs=7", "oracle_from_epoch=7"],
    ],
)
def test_boundary_values_are_accepted(invoke, settings):
    result = invoke("config", "-m", "acmr", "-d", "synth-tiny", *[a for s in settings for a in ("--set", s)])
    assert result.exit_code == 0, result.output
    for setting in settings:
        key = setting.partition("=")[0]
        assert any(line.startswith(f"{key} = ") for line in result.output.splitlines())


def test_a_run_with_parts_switched_off_is_saved_as_ok(invoke, tmp_path):
    """Zero unseen samples and a zero schedule factor switch parts off deliberately; they stay valid."""
    args = ["epochs=1", "cls_epochs=1", "oracle_from_epoch=1", "unseen_samples=0", "classify_schedule=[0,0,1]"]
    result = invoke("run", "-m", "acmr", "-d", "synth-tiny", "-q", *[a for s in args for a in ("--set", s)])
    assert result.exit_code == 0, result.output
    (path,) = _records(tmp_path)
    assert '"status": "ok"' in path.read_text()


def test_config_command_shows_each_keys_range(invoke):
    shown = invoke("config", "-m", "acmr", "-d", "synth-cub", "--set", "cls_epochs=80")
    lines = {line.split(" = ")[0]: line for line in shown.output.splitlines() if not line.startswith("#")}
    assert lines["lr"].endswith("# > 0") and lines["unseen_samples"].endswith("# >= 0")
    assert lines["oracle_from_epoch"].endswith("# >= 1 and <= cls_epochs (= 80)")
    assert lines["noise"].endswith("# one of 'per_sample', 'per_dim'") and lines["use_iem"].endswith("# true or false")
    assert "factor >= 0, start >= 0, end >= start" in lines["kl_schedule"]
    assert len(lines) == len(METHODS.get("acmr").defaults)


@pytest.mark.parametrize("name", METHODS.names())
def test_every_registered_method_declares_a_range_for_every_key(name):
    """Built-in or installed as a plugin: every non-boolean key has a range, and no range names a missing key."""
    cls = METHODS.get(name)
    assert undeclared_keys(cls.defaults, cls.ranges) == []
    assert set(cls.ranges) <= set(cls.defaults)


@pytest.mark.parametrize("name", METHODS.names())
def test_every_methods_own_defaults_are_in_range(name):
    cls = METHODS.get(name)
    for defaults_from in [*cls.dataset_defaults, *cls.nearest_defaults] or ["any"]:
        method_config(name, defaults_from)


class _PlainMethod(Method):
    """A third-party method that declares no ranges."""

    name: ClassVar[str] = "plain-method"
    description: ClassVar[str] = "test method without ranges"
    defaults: ClassVar[dict[str, Any]] = {"alpha": 1.0, "steps": [1, 2], "mode": "a"}

    def predict(self, split: Any, config: Mapping[str, Any], ctx: RunContext) -> Iterator[Scores]:
        raise NotImplementedError


def test_a_method_without_ranges_is_type_checked_and_refuses_only_non_finite_numbers(invoke, monkeypatch):
    METHODS.names()
    monkeypatch.setitem(METHODS._items, "plain-method", _PlainMethod)
    assert undeclared_keys(_PlainMethod.defaults, _PlainMethod.ranges) == ["alpha", "steps", "mode"]
    assert method_config("plain-method", "cub", overrides={"alpha": -5, "mode": "zzz"})["alpha"] == -5.0
    with pytest.raises(ConfigError, match=r"method 'plain-method': config 'alpha' = nan is not finite$"):
        method_config("plain-method", "cub", overrides={"alpha": "nan"})
    with pytest.raises(ConfigError, match=r"config 'alpha': expected a number"):
        method_config("plain-method", "cub", overrides={"alpha": "many"})
    shown = invoke("config", "-m", "plain-method", "-d", "synth-cub")
    assert shown.output.splitlines()[1].split() == [
        "alpha",
        "=",
        "1.0",
        "#",
        "not",
        "declared",
        "(type",
        "checked",
        "only)",
    ]


def test_cross_key_bound_uses_the_resolved_value():
    ranges: dict[str, Constraint] = {"epochs": Range(ge=1), "start": Range(ge=0, lt="epochs")}
    check_ranges({"epochs": 5, "start": 4}, ranges)
    with pytest.raises(ConfigError, match=r"'start' = 5 is out of range \(must be >= 0 and < epochs \(= 5\)\)"):
        check_ranges({"epochs": 5, "start": 5}, ranges)


def test_binary_config_file_names_the_file(invoke, tmp_path):
    (tmp_path / "weights.yaml").write_bytes(b"\x80\x04\x95\x00binary\xff\xfe")
    with pytest.raises(ConfigError, match=r"weights\.yaml: not a text config file \(invalid UTF-8 at byte 0\)"):
        load_config_file(tmp_path / "weights.yaml")
    line = _one_error_line(invoke("run", "-m", "eszsl", "-d", "synth-tiny", "--config", "weights.yaml"))
    assert "weights.yaml" in line and not _records(tmp_path)


def test_duplicated_yaml_key_names_the_key_and_the_file(invoke, tmp_path):
    (tmp_path / "dup.yaml").write_text("gamma: 10\nlam: 2\ngamma: 20\n")
    with pytest.raises(ConfigError, match=r"dup\.yaml: not valid YAML: duplicate key 'gamma' \(line 3\)"):
        load_config_file(tmp_path / "dup.yaml")
    line = _one_error_line(invoke("run", "-m", "eszsl", "-d", "synth-tiny", "--config", "dup.yaml"))
    assert "dup.yaml" in line and "'gamma'" in line and not _records(tmp_path)
    (tmp_path / "nested.yaml").write_text("outer:\n  a: 1\n  a: 2\n")
    with pytest.raises(ConfigError, match="duplicate key 'a'"):
        load_config_file(tmp_path / "nested.yaml")


def test_duplicated_toml_key_names_the_line_and_the_file(tmp_path):
    (tmp_path / "dup.toml").write_text("gamma = 10.0\nlam = 2.0\ngamma = 20.0\n")
    with pytest.raises(ConfigError, match=r"dup\.toml: not valid TOML: .*line 3.*'gamma = 20\.0'$"):
        load_config_file(tmp_path / "dup.toml")


def test_empty_config_files_and_a_byte_order_mark_are_fine(tmp_path):
    for name in ("empty.yaml", "empty.toml"):
        (tmp_path / name).write_text("")
        assert load_config_file(tmp_path / name) == {}
    (tmp_path / "bom.toml").write_bytes("\ufeffgamma = 3.0\n".encode())
    assert load_config_file(tmp_path / "bom.toml") == {"gamma": 3.0}


def test_out_of_range_value_in_a_config_file_is_refused(invoke, tmp_path):
    (tmp_path / "c.toml").write_text("epochs = -2\n")
    line = _one_error_line(invoke("run", "-m", "cada-vae", "-d", "synth-tiny", "--config", "c.toml"))
    assert line == "error: method 'cada-vae': config 'epochs' = -2 is out of range (must be >= 0 and <= 100000)"
    assert not _records(tmp_path)


def test_a_range_or_dataset_default_of_an_undeclared_key_is_refused_with_the_class():
    """A typo in ``ranges`` would leave the real key unchecked: the class is refused where it is defined."""
    with pytest.raises(TypeError, match=r"Typo: ranges\['lamda'\], dataset_defaults\['cub'\]\['gama'\] names no key"):

        class Typo(Method):
            defaults = {"lam": 1.0, "gamma": 2.0}
            ranges = {"lamda": Range(gt=0)}
            dataset_defaults = {"cub": {"gama": 3.0}}
