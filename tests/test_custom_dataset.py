"""The custom .npz adapter: round trip and one-line errors naming file and key."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import make_tiny_data

from gzslbench.core.errors import DataError
from gzslbench.core.registry import DATASETS


def arrays() -> dict[str, np.ndarray]:
    data = make_tiny_data()
    return {
        "features": data.features,
        "labels": data.labels,
        "attributes": data.attributes,
        "trainval": data.trainval,
        "test_seen": data.test_seen,
        "test_unseen": data.test_unseen,
        "train": data.train,
        "val": data.val,
        "class_names": np.array([f"c{i}" for i in range(data.n_classes)]),
    }


def write(tmp_path: Path, **changes) -> Path:
    content = {**arrays(), **changes}
    content = {k: v for k, v in content.items() if v is not None}
    path = tmp_path / "mine.npz"
    np.savez(path, **content)
    return path


def error(data_dir: Path | None = None, **options) -> str:
    with pytest.raises(DataError) as info:
        DATASETS.get("custom")().load(data_dir, **options)
    assert "\n" not in str(info.value)
    return str(info.value)


def test_round_trip(tmp_path: Path) -> None:
    path = write(tmp_path)
    data = DATASETS.get("custom")().load(path=str(path), defaults_from="SUN")
    for key, value in arrays().items():
        if key == "class_names":
            assert data.class_names == list(value)
        else:
            np.testing.assert_array_equal(getattr(data, key), value)
    assert data.defaults_from == "sun" and data.source == str(path) and data.name == "custom"
    assert data.features.dtype == np.float32 and data.labels.dtype == np.int64


def test_data_dir_names_the_file_and_optional_keys(tmp_path: Path) -> None:
    path = write(tmp_path, train=None, val=None, class_names=None)
    data = DATASETS.get("custom")().load(path)
    assert data.train is None and data.class_names is None and data.defaults_from == "cub"


def test_no_file_given() -> None:
    assert "path=FILE.npz" in error()


def test_missing_file(tmp_path: Path) -> None:
    assert error(path=tmp_path / "absent.npz") == f"{tmp_path / 'absent.npz'}: file not found"


def test_corrupt_file(tmp_path: Path) -> None:
    (tmp_path / "bad.npz").write_bytes(b"garbage" * 10)
    assert "not a readable .npz file" in error(path=tmp_path / "bad.npz")


def test_missing_keys(tmp_path: Path) -> None:
    assert "missing key(s) 'test_unseen'" in error(path=write(tmp_path, test_unseen=None))


def test_object_array(tmp_path: Path) -> None:
    path = write(tmp_path, class_names=np.array([["a"], 1], dtype=object))
    assert "object array" in error(path=path)


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"features": np.ones(10)}, "'features' must be a 2-D array"),
        ({"labels": np.zeros(5, dtype=np.int64)}, "'labels' must have shape (270,)"),
        ({"labels": np.full(270, 9)}, "'labels' has values in [9, 9] but must lie in [0, 8]"),
        ({"labels": np.full(270, 0.5)}, "'labels' must hold whole numbers"),
        ({"test_unseen": np.array([0, 270])}, "'test_unseen' has values in [0, 270] but must lie in [0, 269]"),
        ({"attributes": np.full((9, 8), np.nan)}, "'attributes' contains 72 NaN"),
        ({"attributes": np.full((9, 8), 1e300)}, "'attributes' has 72 values beyond float32's range"),
        ({"labels": np.full(270, 2**63 + 5, dtype=np.uint64)}, "'labels' has values up to 9223372036854775813 but"),
        ({"train": None}, "'val' is given without its partner"),
        ({"class_names": np.array(["a", "b"])}, "'class_names' has 2 names but 'attributes' has 9 rows"),
    ],
)
def test_bad_content(tmp_path: Path, changes: dict, expected: str) -> None:
    path = write(tmp_path, **changes)
    message = error(path=path)
    assert message.startswith(str(path)) and expected in message


def test_nan_features(tmp_path: Path) -> None:
    features = arrays()["features"].copy()
    features[0, 0] = np.nan
    assert "'features' contains 1 NaN" in error(path=write(tmp_path, features=features))


def test_overlapping_splits(tmp_path: Path) -> None:
    a = arrays()
    path = write(tmp_path, test_seen=np.concatenate([a["test_seen"], a["trainval"][:1]]))
    assert "'trainval' and 'test_seen' share instances" in error(path=path)


def test_bad_options(tmp_path: Path) -> None:
    path = write(tmp_path)
    assert "unknown option(s) scale" in error(path=path, scale=1)
    assert "defaults_from must be one of" in error(path=path, defaults_from="imagenet")
