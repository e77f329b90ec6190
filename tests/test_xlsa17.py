"""The xlsa17 loader on the real split files (with generated features), its layouts, cache and errors."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import h5py
import numpy as np
import pytest
import scipy.io

import gzslbench
from gzslbench.core.errors import DataError
from gzslbench.core.registry import DATASETS
from gzslbench.data import location
from gzslbench.datasets._matfile import read_mat
from gzslbench.protocol.splits import validation_split

# seen classes, of which train classes (the rest are validation classes), per dataset
REAL = {
    "CUB": (200, 312, 150, 100),
    "SUN": (717, 102, 645, 580),
    "AWA1": (50, 85, 40, 27),
    "AWA2": (50, 85, 40, 27),
    "APY": (32, 64, 20, 15),
    "FLO": (102, 1024, 82, 62),
}
FEATURE_DIM = 4  # the loader accepts any feature dim; small keeps the files tiny


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test gets its own cache and no inherited data root."""
    monkeypatch.setenv("GZSLBENCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("GZSLBENCH_DATA", raising=False)


def labels_for(splits: dict, n_classes: int, n_seen: int, n_train: int) -> np.ndarray:
    """1-based labels consistent with the split file: unseen classes only in test_unseen, val apart from train."""
    loc = {k.removesuffix("_loc"): np.asarray(v).ravel().astype(np.int64) - 1 for k, v in splits.items()}
    n = max(int(v.max()) for v in loc.values()) + 1
    labels = np.zeros(n, dtype=np.int64)
    seen, unseen = np.arange(n_seen), np.arange(n_seen, n_classes)

    def spread(idx: np.ndarray, classes: np.ndarray) -> None:
        labels[idx] = classes[np.arange(len(idx)) % len(classes)]

    spread(loc["test_unseen"], unseen)
    if "train" in loc:
        groups = [(loc["train"], seen[:n_train]), (loc["val"], seen[n_train:])]
    else:
        groups = [(np.concatenate([loc["trainval"], loc["test_seen"]]), seen)]
    for members, classes in groups:
        for part in (loc["trainval"], loc["test_seen"]):
            spread(np.intersect1d(members, part), classes)
    return labels + 1


def write_res101(folder: Path, features: np.ndarray, labels: np.ndarray) -> None:
    """A v5 res101.mat in the release's orientation: features D x N, labels N x 1 (1-based)."""
    folder.mkdir(parents=True, exist_ok=True)
    scipy.io.savemat(folder / "res101.mat", {"features": features.T, "labels": labels.reshape(-1, 1).astype(float)})


def real_folder(shared: Path, dest: Path, ds: str) -> Path:
    """``dest/<ds>`` with a copy of the real att_splits.mat and generated, consistent res101.mat."""
    n_classes, _, n_seen, n_train = REAL[ds]
    splits = {k: v for k, v in scipy.io.loadmat(shared / ds / "att_splits.mat").items() if k.endswith("_loc")}
    labels = labels_for(splits, n_classes, n_seen, n_train)
    rng = np.random.default_rng(0)
    folder = dest / ds
    write_res101(folder, rng.random((len(labels), FEATURE_DIM), dtype=np.float32), labels)
    shutil.copy(shared / ds / "att_splits.mat", folder / "att_splits.mat")
    return folder


def small_folder(folder: Path, n_per_class: int = 6, **overrides: np.ndarray) -> Path:
    """A hand-made 6-class dataset (4 seen, 2 unseen) in xlsa17 format, for the error cases."""
    labels = np.repeat(np.arange(1, 7), n_per_class)
    idx = np.arange(1, len(labels) + 1)
    seen = labels <= 4
    test_seen = idx[seen][::3]
    content = {
        "att": np.abs(np.random.default_rng(1).normal(size=(5, 6))),
        "trainval_loc": np.setdiff1d(idx[seen], test_seen).reshape(-1, 1).astype(np.uint16),
        "test_seen_loc": test_seen.reshape(-1, 1).astype(np.uint16),
        "test_unseen_loc": idx[~seen].reshape(-1, 1).astype(np.uint16),
        "allclasses_names": np.array([[f"class{c}"] for c in range(6)], dtype=object),
    }
    features = np.random.default_rng(2).random((len(labels), FEATURE_DIM), dtype=np.float32)
    features = overrides.pop("features", features)
    labels = overrides.pop("labels", labels)
    content.update(overrides)
    write_res101(folder, features, labels)
    scipy.io.savemat(folder / "att_splits.mat", content)
    return folder


def one_line_error(adapter: str, data_dir: Path | None, **options) -> str:
    with pytest.raises(DataError) as info:
        DATASETS.get(adapter)().load(data_dir, **options)
    message = str(info.value)
    assert "\n" not in message
    return message


@pytest.mark.xlsa17
@pytest.mark.parametrize("ds", sorted(REAL))
def test_real_split_files_load(ds: str, shared_xlsa17: Path, tmp_path: Path) -> None:
    """Each real att_splits.mat loads with the published class counts and attribute dims."""
    real_folder(shared_xlsa17, tmp_path, ds)
    data = DATASETS.get(ds.lower())().load(tmp_path)
    n_classes, att_dim, n_seen, _ = REAL[ds]
    assert data.attributes.shape == (n_classes, att_dim)
    assert data.attributes.dtype == np.float32 and data.features.dtype == np.float32
    assert data.labels.dtype == np.int64 and data.trainval.dtype == np.int64
    assert (len(data.seen_classes), len(data.unseen_classes)) == (n_seen, n_classes - n_seen)
    assert data.defaults_from == ds.lower() and data.source == str(tmp_path / ds)
    assert (data.train is None) == (ds in ("CUB", "APY"))
    assert (data.class_names is None) == (ds == "FLO")
    real = scipy.io.loadmat(shared_xlsa17 / ds / "att_splits.mat")
    np.testing.assert_array_equal(data.test_unseen, real["test_unseen_loc"].ravel().astype(np.int64) - 1)
    np.testing.assert_allclose(data.attributes, real["att"].T.astype(np.float32))
    if ds == "CUB":
        assert data.class_names[0] == "002.Laysan_Albatross"
        assert data.summary()["n_instances"] == 11788
    if ds == "AWA1":
        assert data.attributes.min() < 0  # a few slightly negative values are real and accepted


@pytest.mark.xlsa17
def test_release_layout_env_root_and_dataset_folder(shared_xlsa17: Path, tmp_path: Path, monkeypatch) -> None:
    """<root>/xlsa17/data/CUB, $GZSLBENCH_DATA and a root that is the CUB folder all work."""
    folder = real_folder(shared_xlsa17, tmp_path / "xlsa17" / "data", "CUB")
    assert DATASETS.get("cub")().load(tmp_path).source == str(folder)
    assert DATASETS.get("cub")().load(folder).source == str(folder)
    monkeypatch.setenv("GZSLBENCH_DATA", str(tmp_path))
    assert DATASETS.get("cub")().load().source == str(folder)


def test_default_data_dir_is_used_without_env(monkeypatch) -> None:
    """With neither argument nor env, the root is default_data_dir() (platformdirs cache)."""
    assert location.data_root(None) == location.default_data_dir()
    assert location.default_data_dir().name == "data"
    monkeypatch.setenv("GZSLBENCH_DATA", "/somewhere")
    assert location.data_root(None) == Path("/somewhere")


def test_cache_serves_second_load(tmp_path: Path) -> None:
    """The second load is a memory-mapped cache hit equal to the first; changing a source's bytes re-converts."""
    folder = small_folder(tmp_path / "CUB")
    first = DATASETS.get("cub")().load(tmp_path)
    second = DATASETS.get("cub")().load(tmp_path)
    assert (first.extra["cache"], second.extra["cache"]) == ("written", "hit")
    assert isinstance(second.features, np.memmap)
    assert list((tmp_path / "cache" / "converted").iterdir())
    for field in ("features", "labels", "attributes", "trainval", "test_seen", "test_unseen"):
        np.testing.assert_array_equal(getattr(first, field), getattr(second, field))
    assert second.class_names == [f"class{c}" for c in range(6)]
    stat = (folder / "res101.mat").stat()
    os.utime(folder / "res101.mat", ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    assert DATASETS.get("cub")().load(tmp_path).extra["cache"] == "hit"  # touched, same bytes
    other = np.random.default_rng(5).random((36, FEATURE_DIM), dtype=np.float32)
    write_res101(folder, other, np.repeat(np.arange(1, 7), 6))
    assert DATASETS.get("cub")().load(tmp_path).extra["cache"] == "written"
    assert DATASETS.get("cub")().load(tmp_path, cache="false").extra["cache"] == "off"


def _reverse_labels(entry: Path) -> None:
    np.save(entry / "labels.npy", np.load(entry / "labels.npy")[::-1].copy())  # same shape, other content


def _zero_unsampled_rows(entry: Path) -> None:
    features = np.load(entry / "features.npy")
    features[1:-1] = 0  # rows the data fingerprint does not read (it samples some, the first and last among them)
    np.save(entry / "features.npy", features)


def _labels_as_floats(entry: Path) -> None:
    np.save(entry / "labels.npy", np.load(entry / "labels.npy").astype(np.float64))  # same values, other type


def _edit_meta(value: object) -> Callable[[Path], None]:
    return lambda entry: (entry / "meta.json").write_text(json.dumps(value))


def _meta_field(key: str, value: object) -> Callable[[Path], None]:
    def edit(entry: Path) -> None:
        meta = json.loads((entry / "meta.json").read_text())
        (entry / "meta.json").write_text(json.dumps({**meta, key: value}))

    return edit


@pytest.mark.parametrize(
    "damage",
    [
        _reverse_labels,
        _zero_unsampled_rows,
        _labels_as_floats,
        _edit_meta(None),
        _edit_meta([]),
        _meta_field("digests", []),
        _meta_field("class_names", 5),
        _meta_field("warnings", "text"),
    ],
)
def test_cache_entry_changed_on_disk_is_converted_again(tmp_path: Path, damage: Callable[[Path], None]) -> None:
    """A hit is not validated again, so an entry changed after it was written is not served: it is converted again."""
    small_folder(tmp_path / "CUB")
    loaded = DATASETS.get("cub")().load(tmp_path)
    expected = {field: np.array(getattr(loaded, field)) for field in ("features", "labels")}  # copies of the maps
    (entry,) = (tmp_path / "cache" / "converted").iterdir()
    damage(entry)
    again = DATASETS.get("cub")().load(tmp_path)
    assert again.extra["cache"] == "written"
    for field, values in expected.items():
        np.testing.assert_array_equal(getattr(again, field), values)
    assert again.class_names == [f"class{c}" for c in range(6)] and not again.extra.get("warnings")
    assert DATASETS.get("cub")().load(tmp_path).extra["cache"] == "hit"


def test_matlab_v73_hdf5_files(tmp_path: Path) -> None:
    """A v7.3 (HDF5) res101.mat and cell array of names are read through h5py, in MATLAB orientation."""
    folder = small_folder(tmp_path / "CUB")
    expected = scipy.io.loadmat(folder / "res101.mat")
    (folder / "res101.mat").unlink()
    with h5py.File(folder / "res101.mat", "w", userblock_size=512) as f:
        f["features"] = expected["features"].T  # HDF5 stores MATLAB arrays transposed
        f["labels"] = expected["labels"].T
        refs = f.create_group("#refs#")
        names = [
            refs.create_dataset(f"n{i}", data=np.array([[ord(c)] for c in s], dtype=np.uint16))
            for i, s in enumerate(["ab", "cd"])
        ]
        f.create_dataset("names", data=np.array([[n.ref for n in names]]), dtype=h5py.ref_dtype)
    with open(folder / "res101.mat", "r+b") as raw:
        raw.write(b"MATLAB 7.3 MAT-file".ljust(116) + b"\0" * 8 + b"\x00\x02IM")
    content = read_mat(folder / "res101.mat")
    np.testing.assert_array_equal(content["features"], expected["features"])
    assert content["names"] == ["ab", "cd"]
    data = DATASETS.get("cub")().load(tmp_path)
    np.testing.assert_allclose(data.features, expected["features"].T)


def test_missing_folder_says_where_and_how(tmp_path: Path) -> None:
    message = one_line_error("cub", tmp_path / "nowhere")
    assert str(tmp_path / "nowhere" / "CUB") in message
    assert str(tmp_path / "nowhere" / "xlsa17" / "data" / "CUB") in message
    assert "Xian et al. 2018" in message and "--data-dir" in message and "GZSLBENCH_DATA" in message


def test_missing_one_file(tmp_path: Path) -> None:
    small_folder(tmp_path / "SUN")
    (tmp_path / "SUN" / "res101.mat").unlink()
    message = one_line_error("sun", tmp_path)
    assert "res101.mat: file not found" in message and "att_splits.mat is there" in message


def test_corrupt_mat(tmp_path: Path) -> None:
    small_folder(tmp_path / "CUB")
    (tmp_path / "CUB" / "res101.mat").write_bytes(b"this is not a MATLAB file" * 20)
    message = one_line_error("cub", tmp_path)
    assert message.startswith(str(tmp_path / "CUB" / "res101.mat")) and "not a readable MATLAB file" in message


def test_label_count_mismatch(tmp_path: Path) -> None:
    small_folder(tmp_path / "CUB", labels=np.repeat(np.arange(1, 7), 6)[:-1])
    message = one_line_error("cub", tmp_path)
    assert message == f"{tmp_path / 'CUB' / 'res101.mat'}: 'labels' has 35 entries but 'features' has 36 columns"


def test_nan_features(tmp_path: Path) -> None:
    features = np.ones((36, FEATURE_DIM), dtype=np.float32)
    features[3, 1] = np.nan
    small_folder(tmp_path / "CUB", features=features)
    message = one_line_error("cub", tmp_path)
    assert "res101.mat: 'features' contains 1 NaN" in message


def test_overlapping_splits(tmp_path: Path) -> None:
    small_folder(tmp_path / "CUB", test_seen_loc=np.array([[2], [3]], dtype=np.uint16))
    message = one_line_error("cub", tmp_path)
    assert "att_splits.mat" in message and "'trainval' and 'test_seen' share instances" in message


def test_index_out_of_range(tmp_path: Path) -> None:
    small_folder(tmp_path / "CUB", test_unseen_loc=np.arange(25, 38).reshape(-1, 1).astype(np.uint16))
    message = one_line_error("cub", tmp_path)
    assert "att_splits.mat: 'test_unseen_loc' has values in [25, 37] but must lie in [1, 36]" in message


def test_labels_beyond_att_columns(tmp_path: Path) -> None:
    small_folder(tmp_path / "CUB", att=np.ones((5, 5)))
    message = one_line_error("cub", tmp_path)
    assert "'labels' has values in [1, 6] but must lie in [1, 5]" in message


def test_unknown_option(tmp_path: Path) -> None:
    assert "unknown option(s) scale" in one_line_error("cub", tmp_path, scale=0.5)


LEAKS = {"SUN": (2320, 260), "AWA1": (3404, 1554), "AWA2": (4031, 1851), "FLO": (1173, 230)}


@pytest.mark.xlsa17
@pytest.mark.parametrize("ds", sorted(LEAKS))
def test_real_train_and_val_loc_are_cut_back_to_trainval(ds: str, shared_xlsa17: Path, tmp_path: Path) -> None:
    """The release's train_loc/val_loc hold test_seen images; loading keeps only their trainval part."""
    real = scipy.io.loadmat(shared_xlsa17 / ds / "att_splits.mat")
    test_seen = real["test_seen_loc"].ravel().astype(np.int64) - 1
    raw_train, raw_val = (real[k].ravel().astype(np.int64) - 1 for k in ("train_loc", "val_loc"))
    assert (np.intersect1d(raw_train, test_seen).size, np.intersect1d(raw_val, test_seen).size) == LEAKS[ds]
    real_folder(shared_xlsa17, tmp_path, ds)
    data = DATASETS.get(ds.lower())().load(tmp_path)
    assert data.extra["validation_restricted"] == {"train_loc": LEAKS[ds][0], "val_loc": LEAKS[ds][1]}
    assert np.isin(data.train, data.trainval).all() and np.isin(data.val, data.trainval).all()
    made = validation_split(data)
    used = np.concatenate([made.train, made.held_out, made.unseen])
    assert not np.intersect1d(used, data.test_seen).size and not np.intersect1d(used, data.test_unseen).size
    assert made.provenance["n_val_train"] + made.provenance["n_val_seen"] + made.provenance["n_val_unseen"] == len(
        data.trainval
    )


def test_leaky_validation_split_is_rejected_by_data_validation(tiny_data) -> None:
    """A dataset whose train/val reach outside trainval (e.g. a custom file) is refused, naming the split."""
    from dataclasses import replace

    from gzslbench.data.dataset import validate

    val_class_test_seen = tiny_data.test_seen[np.isin(tiny_data.labels[tiny_data.test_seen], [4, 5])]
    leaky = replace(tiny_data, val=np.union1d(tiny_data.val, val_class_test_seen[:2]))
    with pytest.raises(DataError, match="split 'val' has 2 instances outside trainval"):
        validate(leaky, "leaky")


def test_phantom_classes_and_one_dimensional_features_are_refused(tmp_path: Path) -> None:
    """Attribute columns no split uses would silently enlarge the GZSL label space; 1-d features are transposed."""
    folder = small_folder(tmp_path / "APY")
    extra_class = np.abs(np.random.default_rng(1).normal(size=(5, 7)))
    content = {k: v for k, v in scipy.io.loadmat(folder / "att_splits.mat").items() if not k.startswith("__")}
    names = np.array([[f"class{c}"] for c in range(7)], dtype=object)
    scipy.io.savemat(folder / "att_splits.mat", {**content, "att": extra_class, "allclasses_names": names})
    assert "1 class(es) have attributes but no instance in any split (rows 6" in one_line_error("apy", tmp_path)
    small_folder(tmp_path / "CUB", features=np.random.default_rng(0).random((36, 1), dtype=np.float32))
    assert "features have 1 dimension(s) per instance" in one_line_error("cub", tmp_path, cache=False)


def test_train_loc_without_val_loc_is_refused(tmp_path: Path) -> None:
    """Half a validation partition would be ignored silently; the custom adapter refuses it too."""
    small_folder(tmp_path / "CUB", train_loc=np.arange(1, 9).reshape(-1, 1))
    message = one_line_error("cub", tmp_path)
    assert message.endswith("'val_loc' is missing while 'train_loc' is there: give both or neither")


def test_the_release_classes_with_attributes_of_another_width_are_warned_about(tmp_path, monkeypatch) -> None:
    small_folder(tmp_path / "CUB")  # 6 classes with 5-d attributes
    assert not DATASETS.get("cub")().load(tmp_path, cache="false").extra.get("warnings")  # not the release's classes
    monkeypatch.setattr(DATASETS.get("cub"), "release", (6, 4))
    for cache in ("true", "true", "false"):  # written, a hit, read directly: the warning each time
        data = DATASETS.get("cub")().load(tmp_path, cache=cache)
        assert data.extra["warnings"] == [
            "5-d class attributes, where the xlsa17 release of cub has 4-d: "
            "results do not compare with those on the release's attributes"
        ]


def test_a_data_dir_that_is_not_a_path_is_one_line() -> None:
    with pytest.raises(DataError, match=r"^data_dir must be a path, got int 123$"):
        gzslbench.load_dataset("cub", 123)  # type: ignore[arg-type]
