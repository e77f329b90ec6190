"""The split preparation (scaling, renumbering, validation split) and the selection modes."""

from __future__ import annotations

import numpy as np
import pytest

from gzslbench.protocol import make_split, minmax_scale, select, validation_indices


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
    train, held, val = validation_indices(tiny_data)
    again = validation_indices(tiny_data)
    assert all(np.array_equal(a, b) for a, b in zip((train, held, val), again, strict=True))
    assert not np.intersect1d(train, held).size and not np.intersect1d(train, val).size
    assert set(np.unique(tiny_data.labels[held])) <= set(np.unique(tiny_data.labels[train]))
    split = make_split(tiny_data, "val")
    assert split.n_classes == 6  # 4 train classes + 2 validation classes; test classes excluded
    assert sorted(split.seen.tolist() + split.unseen.tolist()) == list(range(6))
    assert split.class_ids.tolist() == list(range(6))


def test_val_split_derived_when_file_lacks_it(tiny_data):
    from dataclasses import replace

    data = replace(tiny_data, train=None, val=None)
    train, _, val = validation_indices(data)
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


def test_select_val_reads_test_at_validation_epoch():
    val_rows = [{"epoch": 1, "H": 5.0}, {"epoch": 2, "H": 1.0}, {"epoch": 3, "H": 2.0}]
    chosen = select(ROWS, val_rows)
    assert chosen["val"]["epoch"] == 1 and chosen["val"]["H"] == 50.0 and chosen["val"]["val_H"] == 5.0


def test_select_needs_rows():
    with pytest.raises(ValueError):
        select([])
