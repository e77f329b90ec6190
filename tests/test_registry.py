"""The registries: names, did-you-mean, duplicates, and third-party plugins via entry points."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

import gzslbench
from gzslbench.core.errors import UnknownNameError
from gzslbench.core.registry import Registry

EXPECTED_METHODS = {
    "eszsl",
    "acmr",
    "dual-vae",
    "ie-vae",
    "vsa-vae",
    "cada-vae",
    "f-clswgan",
    "f-vaegan",
    "tf-vaegan",
    "free",
    "lsrgan",
}
EXPECTED_DATASETS = {"cub", "sun", "awa1", "awa2", "apy", "flo", "synth-cub", "synth-sun", "synth-awa1", "synth-awa2"}


def test_builtins_are_registered():
    assert set(gzslbench.list_methods()) >= EXPECTED_METHODS
    assert EXPECTED_DATASETS | {"synth-tiny", "custom"} <= set(gzslbench.list_datasets())
    assert gzslbench.list_datasets("synth-*") == sorted(n for n in gzslbench.list_datasets() if n.startswith("synth-"))


def test_every_entry_has_a_description():
    for name in gzslbench.list_methods():
        assert gzslbench.METHODS.get(name).description, name
    for name in gzslbench.list_datasets():
        assert gzslbench.DATASETS.get(name).description, name


def test_names_are_normalised():
    assert gzslbench.get_method("CADA_VAE") is gzslbench.get_method("cada-vae")


def test_unknown_name_lists_known_and_suggests():
    with pytest.raises(UnknownNameError) as info:
        gzslbench.get_method("acrm")
    message = str(info.value)
    assert "Did you mean: acmr" in message and "eszsl" in message and "\n" not in message


def test_duplicate_registration_raises():
    registry: Registry = Registry("thing", "gzslbench.tests-none")
    first, second = type("First", (), {}), type("Second", (), {})
    registry.register("a")(first)
    registry.register("a")(first)  # the same object again is fine
    with pytest.raises(ValueError, match="already registered"):
        registry.register("a")(second)
    assert registry.get("A") is first and first.name == "a"


def test_a_subclass_of_a_registered_class_runs_under_its_own_name():
    """Inheriting the parent's ``name``, it would run, record and tabulate as the parent."""
    registry: Registry = Registry("thing", "gzslbench.tests-none")
    parent = registry.register("parent")(type("Parent", (), {}))
    child = registry.register("child")(type("Child", (parent,), {}))
    named = registry.register("alias")(registry.register("named")(type("Named", (), {"name": "named"})))
    assert (parent.name, child.name, named.name) == ("parent", "child", "named")


PLUGIN = '''
"""A GZSL method that lives outside gzslbench: predicts the seen class nearest in attribute space."""

from collections.abc import Iterator

import torch

from gzslbench.methods.base import Method, Scores


class NearestMean(Method):
    description = "plugin: nearest class mean in feature space"
    defaults = {"temperature": 1.0}

    def predict(self, split, config, ctx) -> Iterator[Scores]:
        x = torch.as_tensor(split.train_x)
        y = torch.as_tensor(split.train_y)
        means = torch.zeros(split.n_classes, x.shape[1]).index_add_(0, y, x)
        means /= torch.bincount(y, minlength=split.n_classes).clamp(min=1)[:, None].float()
        def score(t):
            return -torch.cdist(torch.as_tensor(t), means) / config["temperature"]
        yield Scores(1, score(split.test_seen_x), score(split.test_unseen_x))
'''


@pytest.fixture
def plugin_path(tmp_path):
    """A package installed only as files on PYTHONPATH, with an entry point in gzslbench.methods."""
    (tmp_path / "gzsl_demo_plugin.py").write_text(textwrap.dedent(PLUGIN))
    dist = tmp_path / "gzsl_demo_plugin-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: gzsl-demo-plugin\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[gzslbench.methods]\nnearest-mean = gzsl_demo_plugin:NearestMean\n")
    (dist / "top_level.txt").write_text("gzsl_demo_plugin\n")
    return tmp_path


def _cli(args, plugin_path, cwd):
    env = {**os.environ, "PYTHONPATH": str(plugin_path)}
    return subprocess.run(
        [sys.executable, "-m", "gzslbench", *args], capture_output=True, text=True, env=env, cwd=cwd, timeout=300
    )


def test_entry_point_plugin_runs_end_to_end(plugin_path, tmp_path):
    """A method defined outside the package is listed, runs and is tabulated with no edit to gzslbench."""
    listed = _cli(["list", "methods"], plugin_path, tmp_path)
    assert listed.returncode == 0, listed.stderr
    assert "nearest-mean" in listed.stdout and "plugin: nearest class mean" in listed.stdout
    ran = _cli(["run", "-m", "nearest-mean", "-d", "synth-tiny", "--seeds", "2", "-q"], plugin_path, tmp_path)
    assert ran.returncode == 0, ran.stderr
    record = json.loads(next((tmp_path / "results" / "runs").rglob("seed-0.json")).read_text())
    assert record["code"]["plugins"] == {"method": "gzsl-demo-plugin 0.1"}  # the record names the plugin's code
    table = _cli(["table"], plugin_path, tmp_path)
    assert table.returncode == 0, table.stderr
    row = next(line for line in table.stdout.splitlines() if "nearest-mean" in line)
    assert row.split("|")[2].strip() == "2"  # two seeds aggregated (the n column)


BROKEN_ENTRY_POINTS = """[gzslbench.methods]
nearest-mean = gzsl_demo_plugin:NearestMean
acmr = gzsl_demo_plugin:Clash
not-a-method = gzsl_demo_plugin:NotAMethod
a-function = gzsl_demo_plugin:helper
missing = gzsl_no_such_module:Thing
"""
BROKEN_PARTS = """

class Clash(NearestMean):
    description = "plugin: a second method called acmr"


class NotAMethod:
    description = "plugin: not a Method subclass"


def helper():
    return None
"""


def test_plugins_that_cannot_be_registered_are_skipped_in_one_line_each(plugin_path, tmp_path):
    """A clashing name, a class of the wrong kind, a function or a failed import: a warning, and the rest runs."""
    with (plugin_path / "gzsl_demo_plugin.py").open("a") as module:
        module.write(BROKEN_PARTS)
    (plugin_path / "gzsl_demo_plugin-0.1.dist-info" / "entry_points.txt").write_text(BROKEN_ENTRY_POINTS)
    ran = _cli(["run", "-m", "eszsl,nearest-mean", "-d", "synth-tiny", "-q"], plugin_path, tmp_path)
    assert ran.returncode == 0, ran.stderr
    assert sorted(ran.stderr.splitlines()) == [
        "warning: skipping plugin 'a-function' (gzsl_demo_plugin:helper): names a function, not a method class "
        "or a module",
        "warning: skipping plugin 'acmr' (gzsl_demo_plugin:Clash): the name is taken by "
        "gzslbench.methods.vae.registry.ACMR",
        "warning: skipping plugin 'missing' (gzsl_no_such_module:Thing): ModuleNotFoundError: No module named "
        "'gzsl_no_such_module'",
        "warning: skipping plugin 'not-a-method' (gzsl_demo_plugin:NotAMethod): NotAMethod is not a subclass of "
        "gzslbench.methods.base.Method",
    ]
    listed = _cli(["list", "methods"], plugin_path, tmp_path)
    acmr = [line for line in listed.stdout.splitlines() if line.startswith("acmr ")]
    assert len(acmr) == 1 and "plugin" not in acmr[0] and "not-a-method" not in listed.stdout
    missing = _cli(["run", "-m", "missing", "-d", "synth-tiny", "-q"], plugin_path, tmp_path)
    assert missing.returncode == 2
    assert missing.stderr.splitlines()[-1] == (
        "error: method plugin 'missing' could not be loaded: ModuleNotFoundError: No module named 'gzsl_no_such_module'"
    )
