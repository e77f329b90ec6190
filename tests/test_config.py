"""Config resolution: precedence, type coercion, unknown keys, files and hashing."""

from __future__ import annotations

import pytest

from gzslbench.core.config import config_hash, load_config_file, parse_assignment, resolve_config
from gzslbench.core.errors import ConfigError, UnknownNameError

DEFAULTS = {"epochs": 100, "lr": 1.5e-4, "amsgrad": True, "kl_schedule": [0.25, 0, 93], "mode": "a"}


def test_parse_assignment_reads_yaml_values():
    assert parse_assignment("epochs=10") == ("epochs", 10)
    assert parse_assignment("kl_schedule=[2.5,0,93]") == ("kl_schedule", [2.5, 0, 93])
    assert parse_assignment("amsgrad=false") == ("amsgrad", False)
    with pytest.raises(ConfigError):
        parse_assignment("epochs")


def test_precedence_later_layers_win():
    config = resolve_config(DEFAULTS, [{"epochs": 50}, {"epochs": 20, "lr": "1e-3"}])
    assert config["epochs"] == 20 and config["lr"] == pytest.approx(1e-3)
    assert config["kl_schedule"] == [0.25, 0, 93] and DEFAULTS["epochs"] == 100


@pytest.mark.parametrize(
    ("key", "value"),
    [("epochs", 1.5), ("epochs", "ten"), ("amsgrad", 1), ("kl_schedule", [1, 2]), ("mode", 3), ("lr", True)],
)
def test_wrong_types_raise(key, value):
    with pytest.raises(ConfigError, match=key):
        resolve_config(DEFAULTS, [{key: value}])


def test_unknown_key_suggests_the_close_one():
    with pytest.raises(UnknownNameError, match="Did you mean: epochs"):
        resolve_config(DEFAULTS, [{"epoch": 3}])


def test_config_files(tmp_path):
    (tmp_path / "c.toml").write_text("epochs = 7\nkl_schedule = [1.0, 0, 10]\n")
    (tmp_path / "c.yaml").write_text("epochs: 8\n")
    (tmp_path / "bad.yaml").write_text("epochs: [1,\n")
    assert load_config_file(tmp_path / "c.toml") == {"epochs": 7, "kl_schedule": [1.0, 0, 10]}
    assert load_config_file(tmp_path / "c.yaml") == {"epochs": 8}
    with pytest.raises(ConfigError, match=r"bad\.yaml"):
        load_config_file(tmp_path / "bad.yaml")
    with pytest.raises(ConfigError, match="cannot read"):
        load_config_file(tmp_path / "missing.toml")


def test_config_hash_is_order_free_and_value_sensitive():
    assert config_hash({"a": 1, "b": 2}) == config_hash({"b": 2, "a": 1})
    assert config_hash({"a": 1}) != config_hash({"a": 2})


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("path=run #2.npz", "run #2.npz"),  # YAML would cut it at the comment
        ("path=my file: x.npz", "my file: x.npz"),  # ... make it a mapping
        ("path=yes", "yes"),  # ... or true
        ("lr=0.5", 0.5),
        ("use_iem=false", False),
        ("epochs=[1, 2]", [1, 2]),
        ("loss='sje'", "sje"),
    ],
)
def test_set_values_are_yaml_numbers_booleans_and_lists_and_otherwise_the_text_as_given(text, value):
    assert parse_assignment(text)[1] == value
