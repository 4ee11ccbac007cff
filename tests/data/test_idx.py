"""The IDX reader: exact round trips, and every kind of damaged file is a DataError."""

from __future__ import annotations

import gzip
from dataclasses import replace

import numpy as np
import pytest

from gridrun.data import DataError
from gridrun.data._idx import IMAGES_MAGIC, LABELS_MAGIC, read_idx, read_idx_pair
from gridrun.data._load import load_raw

from .helpers import idx_bytes, record_for, write_gz, write_idx_set

IMAGES = np.arange(5 * 4 * 3, dtype=np.uint8).reshape(5, 4, 3)
LABELS = np.array([3, 1, 4, 1, 5], dtype=np.uint8)


def test_round_trip(tmp_path):
    images = write_gz(tmp_path / "img.gz", idx_bytes(IMAGES))
    labels = write_gz(tmp_path / "lbl.gz", idx_bytes(LABELS))
    np.testing.assert_array_equal(read_idx(images, IMAGES_MAGIC), IMAGES)
    x, y = read_idx_pair(images, labels)
    assert x.shape == (5, 4, 3, 1) and x.dtype == np.uint8
    np.testing.assert_array_equal(x[..., 0], IMAGES)
    assert y.dtype == np.int64 and y.tolist() == [3, 1, 4, 1, 5]
    assert x.flags.writeable  # trainers may normalize in place


@pytest.mark.parametrize(
    "payload, magic, message",
    [
        (idx_bytes(IMAGES)[:-7], IMAGES_MAGIC, "truncated"),  # payload shorter than header says
        (idx_bytes(IMAGES) + b"\0", IMAGES_MAGIC, "longer than"),
        (idx_bytes(IMAGES)[:10], IMAGES_MAGIC, "ends inside the IDX header"),
        (idx_bytes(IMAGES, magic=2050), IMAGES_MAGIC, "magic number 2050, expected 2051"),
        (idx_bytes(IMAGES), LABELS_MAGIC, "magic number 2051, expected 2049"),  # swapped files
        (idx_bytes(np.zeros((0, 4, 3), np.uint8)), IMAGES_MAGIC, "none may be 0"),
        # A header claiming 4 GB must be refused before anything is allocated.
        (IMAGES_MAGIC.to_bytes(4, "big") + (2**16).to_bytes(4, "big") * 2 + (2**8).to_bytes(4, "big"),
         IMAGES_MAGIC, "more than a"),
    ],
    ids=["short-payload", "long-payload", "short-header", "bad-magic", "swapped", "zero-dim",
         "absurd-header"],
)
def test_damaged_payload_is_a_data_error(tmp_path, payload, magic, message):
    path = write_gz(tmp_path / "bad.gz", payload)
    with pytest.raises(DataError, match=message) as err:
        read_idx(path, magic)
    assert str(path) in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize("damage", ["cut-stream", "not-gzip", "flipped-byte"])
def test_damaged_compression_is_a_data_error(tmp_path, damage):
    good = gzip.compress(idx_bytes(IMAGES), mtime=0)
    data = {
        "cut-stream": good[: len(good) // 2],
        "not-gzip": b"this is not gzip data at all",
        "flipped-byte": good[:-6] + bytes([good[-6] ^ 0xFF]) + good[-5:],  # breaks the CRC
    }[damage]
    path = tmp_path / "bad.gz"
    path.write_bytes(data)
    with pytest.raises(DataError, match="corrupt or truncated") as err:
        read_idx(path, IMAGES_MAGIC)
    assert str(path) in str(err.value)


def test_image_and_label_counts_must_agree(tmp_path):
    images = write_gz(tmp_path / "img.gz", idx_bytes(IMAGES))
    labels = write_gz(tmp_path / "lbl.gz", idx_bytes(LABELS[:4]))
    with pytest.raises(DataError, match="5 images but .* 4 labels"):
        read_idx_pair(images, labels)


def test_loader_reads_a_verified_idx_set(tmp_path):
    arrays, table = write_idx_set(tmp_path, "mnist")
    raw = load_raw("mnist", root=tmp_path, download=False, files=table)
    np.testing.assert_array_equal(raw.x_train[..., 0], arrays["train_images"])
    np.testing.assert_array_equal(raw.y_test, arrays["test_labels"])
    assert raw.classes == tuple("0123456789")


def test_checksum_mismatch_stops_the_load(tmp_path):
    _, table = write_idx_set(tmp_path, "fashion-mnist")
    table["test_labels"] = replace(table["test_labels"], digest="0" * 64)
    with pytest.raises(DataError) as err:
        load_raw("fashion_mnist", root=tmp_path, download=False, files=table)
    msg = str(err.value)
    assert "t10k-labels-idx1-ubyte.gz" in msg and "0" * 64 in msg and "delete it" in msg


def test_truncated_file_is_never_returned_even_with_a_matching_checksum(tmp_path):
    # The table may be wrong (a mirror, a user's own); the format checks still hold.
    _, table = write_idx_set(tmp_path, "mnist")
    path = tmp_path / table["train_images"].path
    write_gz(path, gzip.decompress(path.read_bytes())[:-1])
    table["train_images"] = record_for(path, table["train_images"].path)
    with pytest.raises(DataError, match="truncated"):
        load_raw("mnist", root=tmp_path, download=False, files=table)


def test_labels_beyond_the_class_list_are_rejected(tmp_path):
    _, table = write_idx_set(tmp_path, "mnist")
    path = tmp_path / table["test_labels"].path
    write_gz(path, idx_bytes(np.full(20, 11, np.uint8)))
    table["test_labels"] = record_for(path, table["test_labels"].path)
    with pytest.raises(DataError, match="label 11 found, but mnist has 10 classes"):
        load_raw("mnist", root=tmp_path, download=False, files=table)
