"""Fetching files: download with checksum from a local server, and present files used offline."""

from __future__ import annotations

import os
from dataclasses import replace

import numpy as np
import pytest

from gridrun.data import DataError
from gridrun.data._files import RemoteFile, fetch, verify
from gridrun.data._load import load_raw

from .helpers import closed_port_url, record_of, serve, write_idx_set

PAYLOAD = b"gridrun test payload\n" * 500


@pytest.fixture
def served(tmp_path):
    """PAYLOAD served over HTTP from 127.0.0.1; yields (record for it, request log)."""
    (tmp_path / "srv").mkdir()
    (tmp_path / "srv" / "blob.bin").write_bytes(PAYLOAD)
    with serve(tmp_path / "srv") as (base, requests):
        yield record_of(PAYLOAD, "set/blob.bin", base + "blob.bin"), requests


def _leftovers(folder):
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


@pytest.mark.parametrize("algorithm", ["sha256", "md5"])
def test_download_verifies_and_keeps_the_file(tmp_path, served, algorithm):
    record, requests = served
    record = record_of(PAYLOAD, record.path, record.url, algorithm)
    path = fetch(record, tmp_path / "root")
    assert path == tmp_path / "root" / "set" / "blob.bin"
    assert path.read_bytes() == PAYLOAD
    assert _leftovers(path.parent) == ["blob.bin"]  # no temporary file left behind
    assert requests == ["/blob.bin"]


@pytest.mark.parametrize(
    "change, message",
    [({"digest": "ab" * 32}, "has sha256 .*, expected abab"), ({"size": 7}, "expected 7")],
    ids=["checksum", "size"],
)
def test_download_with_wrong_checksum_is_not_kept(tmp_path, served, change, message):
    record, _ = served
    with pytest.raises(DataError, match=message) as err:
        fetch(replace(record, **change), tmp_path / "root")
    assert record.url in str(err.value) and "nothing was kept" in str(err.value)
    assert _leftovers(tmp_path / "root" / "set") == []


def test_failed_download_names_the_url_and_keeps_nothing(tmp_path, served):
    record, _ = served
    with pytest.raises(DataError, match="could not download .*404") as err:
        fetch(replace(record, url=record.url + ".missing"), tmp_path / "root")
    assert "by hand" in str(err.value)
    assert _leftovers(tmp_path / "root" / "set") == []


def test_file_urls_work(tmp_path):
    src = tmp_path / "src.bin"
    src.write_bytes(PAYLOAD)
    path = fetch(record_of(PAYLOAD, "set/blob.bin", src.as_uri()), tmp_path / "root")
    assert path.read_bytes() == PAYLOAD


def test_present_file_is_used_without_the_network(tmp_path, served):
    record, requests = served
    target = tmp_path / "root" / "set" / "blob.bin"
    target.parent.mkdir(parents=True)
    target.write_bytes(PAYLOAD)
    assert fetch(record, tmp_path / "root") == target
    assert fetch(replace(record, url=closed_port_url()), tmp_path / "root") == target
    assert requests == []


def test_present_file_with_wrong_checksum_says_what_to_do(tmp_path):
    target = tmp_path / "set" / "blob.bin"
    target.parent.mkdir()
    target.write_bytes(PAYLOAD[:-1] + b"?")
    record = record_of(PAYLOAD, "set/blob.bin", closed_port_url())
    with pytest.raises(DataError) as err:
        fetch(record, tmp_path)
    msg = str(err.value)
    actual = record_of(target.read_bytes(), "x").digest
    assert str(target) in msg and record.digest in msg and actual in msg
    assert "delete it to download it again" in msg
    assert target.exists()  # the user's file is theirs to delete


def test_present_file_with_wrong_size_is_caught_before_hashing(tmp_path):
    target = tmp_path / "set" / "blob.bin"
    target.parent.mkdir()
    target.write_bytes(PAYLOAD[:100])
    with pytest.raises(DataError, match=f"is 100 bytes, expected {len(PAYLOAD)}"):
        fetch(record_of(PAYLOAD, "set/blob.bin"), tmp_path)


def test_a_folder_in_place_of_the_file_is_a_data_error(tmp_path):
    (tmp_path / "set" / "blob.bin").mkdir(parents=True)
    with pytest.raises(DataError, match="cannot read .*blob.bin"):
        fetch(RemoteFile("set/blob.bin", None, "ab" * 32), tmp_path)


def test_a_replaced_file_is_verified_again(tmp_path):
    target = tmp_path / "blob.bin"
    target.write_bytes(PAYLOAD)
    record = record_of(PAYLOAD, "blob.bin")
    verify(target, record)
    target.write_bytes(PAYLOAD[::-1])  # same size, other content
    os.utime(target, ns=(1, 1))
    with pytest.raises(DataError, match="has sha256"):
        verify(target, record)


@pytest.mark.parametrize("has_url", [True, False], ids=["closed-port-url", "no-url"])
def test_missing_file_without_download_says_where_to_put_it(tmp_path, has_url):
    record = RemoteFile("set/blob.bin", closed_port_url() if has_url else None, "ab" * 32)
    with pytest.raises(DataError, match="not found: put blob.bin") as err:
        fetch(record, tmp_path, download=False)
    assert str(tmp_path / "set" / "blob.bin") in str(err.value)
    assert not (tmp_path / "set").exists()  # nothing created in the data folder


def test_unreachable_server_is_a_data_error(tmp_path):
    with pytest.raises(DataError, match="could not download"):
        fetch(RemoteFile("set/blob.bin", closed_port_url(), "ab" * 32), tmp_path)


def test_dataset_downloads_once_then_loads_offline(tmp_path):
    arrays, table = write_idx_set(tmp_path / "mirror", "mnist")
    with serve(tmp_path / "mirror" / "mnist") as (base, requests):
        table = {role: replace(f, url=base + f.filename) for role, f in table.items()}
        first = load_raw("mnist", root=tmp_path / "cache", files=table)
    assert sorted(requests) == sorted("/" + f.filename for f in table.values())
    before = sorted((tmp_path / "cache" / "mnist").iterdir())
    # The server is gone: a second load must need nothing but the verified files.
    offline = {role: replace(f, url=closed_port_url()) for role, f in table.items()}
    second = load_raw("mnist", root=tmp_path / "cache", files=offline)
    np.testing.assert_array_equal(first.x_train, second.x_train)
    np.testing.assert_array_equal(second.x_train[..., 0], arrays["train_images"])
    assert sorted((tmp_path / "cache" / "mnist").iterdir()) == before  # nothing written
