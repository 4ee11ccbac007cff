"""Builders for tiny dataset files in the real on-disk formats, and a local file server."""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import http.server
import io
import pickle
import socket
import tarfile
import threading
from functools import partial
from pathlib import Path

import numpy as np

from gridrun.data._files import RemoteFile


def idx_bytes(array: np.ndarray, magic: int | None = None) -> bytes:
    """The uncompressed IDX encoding of a uint8 array (magic derived from its ndim)."""
    magic = 0x0800 | array.ndim if magic is None else magic
    header = magic.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in array.shape)
    return header + np.ascontiguousarray(array, dtype=np.uint8).tobytes()


def write_gz(path: Path, payload: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(payload, mtime=0))
    return path


def write_idx_set(root: Path, folder: str, seed: int = 0, n_train: int = 40, n_test: int = 20):
    """Write the four IDX files of a tiny 10-class dataset; return (arrays, RemoteFile table)."""
    rng = np.random.default_rng(seed)
    arrays = {
        "train_images": rng.integers(0, 256, (n_train, 6, 5), dtype=np.uint8),
        "train_labels": (np.arange(n_train) % 10).astype(np.uint8),
        "test_images": rng.integers(0, 256, (n_test, 6, 5), dtype=np.uint8),
        "test_labels": (np.arange(n_test) % 10).astype(np.uint8),
    }
    names = {
        "train_images": "train-images-idx3-ubyte.gz",
        "train_labels": "train-labels-idx1-ubyte.gz",
        "test_images": "t10k-images-idx3-ubyte.gz",
        "test_labels": "t10k-labels-idx1-ubyte.gz",
    }
    table = {}
    for role, array in arrays.items():
        path = write_gz(root / folder / names[role], idx_bytes(array))
        table[role] = record_for(path, f"{folder}/{names[role]}")
    return arrays, table


def record_for(path: Path, rel: str, url: str | None = None, algorithm: str = "sha256") -> RemoteFile:
    """A RemoteFile whose checksum and size are those of the file at ``path``."""
    return record_of(path.read_bytes(), rel, url, algorithm)


def record_of(data: bytes, rel: str, url: str | None = None, algorithm: str = "sha256") -> RemoteFile:
    """A RemoteFile whose checksum and size are those of ``data``."""
    return RemoteFile(rel, url, hashlib.new(algorithm, data).hexdigest(), algorithm, len(data))


# ---------------------------------------------------------------- CIFAR-10


def cifar_rows(images: np.ndarray) -> np.ndarray:
    """(N, 32, 32, 3) images -> CIFAR rows, written out plane by plane on purpose
    (not by reshape/transpose) so the test does not mirror the reader's code."""
    rows = np.empty((len(images), 3072), dtype=np.uint8)
    for c in range(3):
        for h in range(32):
            rows[:, c * 1024 + h * 32: c * 1024 + h * 32 + 32] = images[:, h, :, c]
    return rows


def cifar_batch(images: np.ndarray, labels, label: bytes) -> dict:
    """A batch dict with exactly the keys of CIFAR-10's python batches."""
    return {
        b"batch_label": label,
        b"labels": [int(v) for v in labels],
        b"data": cifar_rows(images),
        b"filenames": [f"img_{i}.png".encode() for i in range(len(labels))],
    }


CLASS_NAMES = [b"airplane", b"automobile", b"bird", b"cat", b"deer",
               b"dog", b"frog", b"horse", b"ship", b"truck"]


def cifar_members(rng: np.random.Generator, sizes=(3, 4), n_test=5, protocol: int = 2):
    """Pickled members of a small CIFAR-10 release; returns (bytes by name, expected arrays)."""
    members, xs, ys = {}, [], []
    for i, n in enumerate(sizes, start=1):
        x = rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)
        y = rng.integers(0, 10, n)
        members[f"data_batch_{i}"] = pickle.dumps(
            cifar_batch(x, y, f"training batch {i} of {len(sizes)}".encode()), protocol=protocol)
        xs.append(x)
        ys.append(y)
    x_test = rng.integers(0, 256, (n_test, 32, 32, 3), dtype=np.uint8)
    y_test = rng.integers(0, 10, n_test)
    members["test_batch"] = pickle.dumps(cifar_batch(x_test, y_test, b"testing batch 1 of 1"),
                                         protocol=protocol)
    meta = {b"num_cases_per_batch": 10000, b"label_names": CLASS_NAMES, b"num_vis": 3072}
    members["batches.meta"] = pickle.dumps(meta, protocol=protocol)
    expected = (np.concatenate(xs), np.concatenate(ys), x_test, y_test)
    return members, expected


def write_cifar_tar(path: Path, members: dict[str, bytes]) -> Path:
    """A .tar.gz laid out like cifar-10-python.tar.gz (folder entry, readme, batches)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w:gz") as tar:
        folder = tarfile.TarInfo("cifar-10-batches-py")
        folder.type = tarfile.DIRTYPE
        tar.addfile(folder)
        for name, data in {"readme.html": b"<html></html>", **members}.items():
            info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def write_cifar_folder(folder: Path, members: dict[str, bytes]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, data in members.items():
        (folder / name).write_bytes(data)
    return folder


# ---------------------------------------------------------------- local HTTP


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:  # keep pytest output clean
        pass


@contextlib.contextmanager
def serve(directory: Path):
    """Serve ``directory`` on 127.0.0.1; yields (base_url, list of requested paths)."""
    requests: list[str] = []

    class Handler(_QuietHandler):
        def do_GET(self):
            requests.append(self.path)
            super().do_GET()

    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), partial(Handler, directory=str(directory)))
    thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/", requests
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def closed_port_url(name: str = "file") -> str:
    """A URL on a local port that nothing listens on: any access fails at once."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/{name}"
