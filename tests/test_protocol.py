"""The split preparation (scaling, renumbering, validation split) and the selection modes."""

from __future__ import annotations

import numpy as np
import pytest

from gzslbench.core.errors import DataError
from gzslbench.protocol.selection import select
from gzslbench.protocol.splits import make_split, minmax_scale, validation_split


def test_minmax_scale_fits_on_train_only():
    train = np.array([[0.0, 5.0], [10.0, 5.0]], dtype=np.float32)
    test = np.array([[20.0, 6.0]], dtype=np.float32)
    scaled_train, scaled_test = minmax_scale(train, test)
    assert scaled_train.tolist() == [[0.0, 0.0], [1.0, 0.0]]
    assert scaled_test.tolist() == [[2.0, 1.0]]  # outside [0, 1]: the test set does not refit; zero span -> 1


def test_test_split_keeps_all_classes(tiny_data):
    split = make_split(tiny_data, "test")
    assert split.n_classes == tiny_data.n_classes
    assert split.seen.tolist() == list(range(6)) and split.unseen.tolist() == [6, 7, 8]
    assert split.train_x.min() == 0.0 and split.train_x.max() == 1.0
    assert len(split.train_y) == len(tiny_data.trainval)


def test_val_split_is_deterministic_disjoint_and_renumbered(tiny_data):
    first, again = validation_split(tiny_data), validation_split(tiny_data)
    train, held, val = first.train, first.held_out, first.unseen
    assert all(
        np.array_equal(a, b)
        for a, b in zip((train, held, val), (again.train, again.held_out, again.unseen), strict=True)
    )
    assert not np.intersect1d(train, held).size and not np.intersect1d(train, val).size
    assert set(np.unique(tiny_data.labels[held])) <= set(np.unique(tiny_data.labels[train]))
    split = make_split(tiny_data, "val")
    assert split.n_classes == 6  # 4 train classes + 2 validation classes; test classes excluded
    assert sorted(split.seen.tolist() + split.unseen.tolist()) == list(range(6))
    assert split.class_ids.tolist() == list(range(6))


def test_val_split_derived_when_file_lacks_it(tiny_data):
    from dataclasses import replace

    data = replace(tiny_data, train=None, val=None)
    derived = validation_split(data)
    train, val = derived.train, derived.unseen
    assert derived.provenance["source"].startswith("derived: 2 of 6 seen classes")
    val_classes = set(np.unique(data.labels[val]))
    assert len(val_classes) == 2  # a third of 6 seen classes
    assert val_classes.isdisjoint(np.unique(data.labels[train]))


ROWS = [
    {"epoch": 1, "U": 10.0, "S": 80.0, "H": 50.0},
    {"epoch": 2, "U": 30.0, "S": 70.0, "H": 60.0},
    {"epoch": 3, "U": 20.0, "S": 75.0, "H": 40.0},
]


def test_select_last_and_oracle():
    chosen = select(ROWS)
    assert chosen["last"]["epoch"] == 3 and chosen["oracle"]["epoch"] == 2
    assert "val" not in chosen
    assert select(ROWS, oracle_from_epoch=3)["oracle"]["epoch"] == 3
    with pytest.raises(ValueError, match="no evaluated epoch >= 4"):
        select(ROWS, oracle_from_epoch=4)  # once fell back silently to all epochs


def test_select_val_reads_test_at_validation_epoch():
    val_rows = [{"epoch": 1, "H": 5.0}, {"epoch": 2, "H": 1.0}, {"epoch": 3, "H": 2.0}]
    chosen = select(ROWS, val_rows)
    assert chosen["val"]["epoch"] == 1 and chosen["val"]["H"] == 50.0 and chosen["val"]["val_H"] == 5.0
    with pytest.raises(ValueError, match="did not evaluate"):
        select(ROWS, [{"epoch": 7, "H": 9.0}])  # once fell back silently to the last epoch


def test_select_needs_rows():
    with pytest.raises(ValueError):
        select([])


def test_val_split_never_uses_test_instances_and_says_how_it_was_made(tiny_data):
    """File train/val that reach into test_seen are cut back to trainval; the provenance counts each part."""
    from dataclasses import replace

    leaky = replace(tiny_data, train=np.union1d(tiny_data.train, tiny_data.test_seen))  # as in the real files
    made = validation_split(leaky)
    used = np.concatenate([made.train, made.held_out, made.unseen])
    assert np.isin(used, tiny_data.trainval).all()
    assert not np.intersect1d(used, tiny_data.test_seen).size
    p = made.provenance
    assert (p["n_val_train"], p["n_val_seen"], p["n_val_unseen"]) == (
        len(made.train),
        len(made.held_out),
        len(made.unseen),
    )
    assert p["n_val_train"] + p["n_val_seen"] + p["n_val_unseen"] == len(tiny_data.trainval)
    assert p["carved_from"] == "trainval" and p["classes_without_seen_validation"] == []


def test_val_split_names_classes_too_small_to_hold_out(tiny_data):
    from dataclasses import replace

    labels = tiny_data.labels
    keep = np.concatenate(
        [tiny_data.train[labels[tiny_data.train] != 0], tiny_data.train[labels[tiny_data.train] == 0][:3]]
    )
    trainval = np.union1d(keep, tiny_data.val)
    small = replace(tiny_data, trainval=trainval, train=np.sort(keep))
    assert validation_split(small).provenance["classes_without_seen_validation"] == [0]


def test_val_split_too_small_is_an_error(tiny_data):
    from dataclasses import replace

    one_each = np.array([np.flatnonzero(tiny_data.labels == c)[0] for c in range(4)])
    with pytest.raises(DataError, match="too few trainval instances"):
        validation_split(replace(tiny_data, trainval=one_each, train=one_each[:2], val=one_each[2:]))
