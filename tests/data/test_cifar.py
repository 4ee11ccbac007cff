"""The CIFAR-10 reader, on small files in the exact layout of the python release."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from gridrun.data import DataError
from gridrun.data._cifar import read_cifar_archive, read_cifar_folder
from gridrun.data._load import load_raw, split_raw

from .helpers import (CLASS_NAMES, cifar_batch, cifar_members, record_of, write_cifar_folder,
                      write_cifar_tar)

BATCHES = ("data_batch_1", "data_batch_2")
CLASSES = tuple(n.decode() for n in CLASS_NAMES)


def test_pixels_land_in_height_width_channel_order(tmp_path):
    # One image whose R, G and B planes are known, with one marked pixel per plane.
    red, green, blue = (np.full((32, 32), v, np.uint8) for v in (10, 20, 30))
    red[1, 2], green[5, 7], blue[31, 0] = 200, 201, 202
    row = np.concatenate([red.ravel(), green.ravel(), blue.ravel()])  # CIFAR's row layout
    batch = {b"batch_label": b"training batch 1 of 1", b"labels": [6],
             b"data": row[np.newaxis], b"filenames": [b"frog_1.png"]}
    members = {"data_batch_1": pickle.dumps(batch, protocol=2),
               "test_batch": pickle.dumps(batch, protocol=2),
               "batches.meta": pickle.dumps({b"label_names": CLASS_NAMES}, protocol=2)}
    x, y, _, _, classes = read_cifar_archive(write_cifar_tar(tmp_path / "c.tar.gz", members),
                                             batches=("data_batch_1",))
    assert x.shape == (1, 32, 32, 3) and x.dtype == np.uint8
    assert x[0, 0, 0].tolist() == [10, 20, 30]
    assert x[0, 1, 2].tolist() == [200, 20, 30]
    assert x[0, 5, 7].tolist() == [10, 201, 30]
    assert x[0, 31, 0].tolist() == [10, 20, 202]
    assert y.tolist() == [6] and classes[6] == "frog"


@pytest.mark.parametrize("protocol", [0, 2, 4])
def test_archive_round_trip(tmp_path, protocol):
    members, (x_train, y_train, x_test, y_test) = cifar_members(
        np.random.default_rng(protocol), protocol=protocol)
    got = read_cifar_archive(write_cifar_tar(tmp_path / "c.tar.gz", members), BATCHES)
    np.testing.assert_array_equal(got[0], x_train)  # batches concatenated in order
    np.testing.assert_array_equal(got[1], y_train)
    np.testing.assert_array_equal(got[2], x_test)
    np.testing.assert_array_equal(got[3], y_test)
    assert got[1].dtype == np.int64 and got[4] == CLASSES
    assert got[0].flags.c_contiguous


def test_extracted_folder_gives_the_same_arrays(tmp_path):
    members, expected = cifar_members(np.random.default_rng(1))
    from_tar = read_cifar_archive(write_cifar_tar(tmp_path / "c.tar.gz", members), BATCHES)
    from_dir = read_cifar_folder(write_cifar_folder(tmp_path / "dir", members), BATCHES)
    for a, b, want in zip(from_tar[:4], from_dir[:4], expected):
        np.testing.assert_array_equal(a, want)
        np.testing.assert_array_equal(b, want)
    assert from_dir[4] == CLASSES


def _table(members, archive=b""):
    """A source table for a tiny CIFAR release: the archive's md5 and each member's."""
    table = {"archive": record_of(archive, "cifar10/cifar-10-python.tar.gz", algorithm="md5")}
    for name, data in members.items():
        table[name] = record_of(data, f"cifar10/cifar-10-batches-py/{name}", algorithm="md5")
    return table


@pytest.mark.parametrize("layout", ["archive", "folder"])
def test_load_raw_reads_either_layout(tmp_path, layout):
    members, (x_train, y_train, x_test, y_test) = cifar_members(np.random.default_rng(2),
                                                                sizes=(10, 10))
    archive = b""
    if layout == "archive":
        archive = write_cifar_tar(tmp_path / "cifar10" / "cifar-10-python.tar.gz",
                                  members).read_bytes()
    else:
        write_cifar_folder(tmp_path / "cifar10" / "cifar-10-batches-py", members)
    raw = load_raw("cifar10", root=tmp_path, download=False, files=_table(members, archive))
    np.testing.assert_array_equal(raw.x_train, x_train)
    np.testing.assert_array_equal(raw.y_test, y_test)
    ds = split_raw(raw, val_fraction=0.2, split_seed=0)
    assert ds.image_shape == (32, 32, 3) and len(ds.y_val) == 4 and ds.classes == CLASSES


def test_folder_files_are_verified_too(tmp_path):
    members, _ = cifar_members(np.random.default_rng(3))
    write_cifar_folder(tmp_path / "cifar10" / "cifar-10-batches-py", members)
    table = _table(members)
    (tmp_path / "cifar10" / "cifar-10-batches-py" / "data_batch_2").write_bytes(b"junk")
    with pytest.raises(DataError, match="data_batch_2 is 4 bytes, expected"):
        load_raw("cifar10", root=tmp_path, download=False, files=table)


def test_archive_without_a_member_is_a_data_error(tmp_path):
    members, _ = cifar_members(np.random.default_rng(4))
    del members["test_batch"]
    path = write_cifar_tar(tmp_path / "c.tar.gz", members)
    with pytest.raises(DataError, match="lacks cifar-10-batches-py/test_batch"):
        read_cifar_archive(path, BATCHES)


def test_truncated_archive_is_a_data_error(tmp_path):
    members, _ = cifar_members(np.random.default_rng(5))
    path = write_cifar_tar(tmp_path / "c.tar.gz", members)
    path.write_bytes(path.read_bytes()[:-200])
    with pytest.raises(DataError, match="corrupt or truncated|not a readable"):
        read_cifar_archive(path, BATCHES)


class _Evil:
    def __reduce__(self):
        return (print, ("this must never run",))


def _bad(key, value):
    x = np.zeros((2, 32, 32, 3), np.uint8)
    batch = cifar_batch(x, [0, 1], b"training batch 1 of 1")
    if value is None:
        del batch[key]
    else:
        batch[key] = value
    return pickle.dumps(batch, protocol=2)


@pytest.mark.parametrize(
    "payload, message",
    [
        (b"\x80\x02not a pickle", "not a readable CIFAR-10 pickle"),
        (pickle.dumps({b"data": 1})[:-3], "not a readable CIFAR-10 pickle"),  # cut short
        (pickle.dumps([1, 2, 3], protocol=2), "expected a pickled dict"),
        (pickle.dumps({b"data": _Evil()}, protocol=2), r"\.print is not allowed"),
        (_bad(b"data", None), "lacks key b'data'"),
        (_bad(b"data", np.zeros((2, 3071), np.uint8)), r"shape \(N, 3072\)"),
        (_bad(b"data", np.zeros((2, 3072), np.float32)), r"must be uint8"),
        (_bad(b"labels", [0, 1, 2]), "must be 2 integers"),
        (_bad(b"labels", [0, 10]), "labels span 0..10"),
    ],
    ids=["garbage", "cut-short", "not-dict", "foreign-global", "no-data", "wrong-width",
         "wrong-dtype", "label-count", "label-range"],
)
@pytest.mark.parametrize("layout", ["archive", "folder"])
def test_malformed_batches_are_data_errors(tmp_path, capsys, payload, message, layout):
    members, _ = cifar_members(np.random.default_rng(6))
    members["data_batch_2"] = payload
    with pytest.raises(DataError, match=message) as err:
        if layout == "archive":
            read_cifar_archive(write_cifar_tar(tmp_path / "c.tar.gz", members), BATCHES)
        else:
            read_cifar_folder(write_cifar_folder(tmp_path / "dir", members), BATCHES)
    assert "data_batch_2" in str(err.value) and "\n" not in str(err.value)
    assert "must never run" not in capsys.readouterr().out


def test_meta_without_label_names_is_a_data_error(tmp_path):
    members, _ = cifar_members(np.random.default_rng(7))
    members["batches.meta"] = pickle.dumps({b"num_vis": 3072}, protocol=2)
    with pytest.raises(DataError, match="batches.meta: lacks key b'label_names'"):
        read_cifar_folder(write_cifar_folder(tmp_path / "dir", members), BATCHES)
