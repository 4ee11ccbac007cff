"""Getting one data file onto disk, verified: use it if present, else download it.

A file that is present is never re-downloaded and causes no network access, but it is
still checked (size, then checksum) before use, so a truncated or wrong file is an error
instead of a silently bad run. A download goes to a temporary file next to the target,
is verified, and only then renamed into place, so a half-written file never has the
final name.
"""

from __future__ import annotations

import hashlib
import http.client
import logging
import os
import re
import tempfile
import urllib.parse
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from gridrun.data._dataset import DataError

# "location#sha256=<hex>": a weights source (a path or an http(s) URL) with a pinned hash
_FRAGMENT = re.compile(r"#sha256=([^#]*)$")
_HEX64 = re.compile(r"[0-9a-fA-F]{64}")

__all__ = ["RemoteFile", "fetch", "verify"]

log = logging.getLogger(__name__)

_CHUNK = 1 << 20
_TIMEOUT_S = 60
_ALGORITHMS = ("sha256", "md5")

# Files verified in this process, keyed by what would change if the file were replaced.
# A run loads its data once, but tests and notebooks load repeatedly; hashing 200 MB
# each time would be wasted work. Deliberately not persisted: nothing is written to the
# data folder (it may be read-only or shared) except downloaded files.
_verified: set[tuple] = set()


@dataclass(frozen=True)
class RemoteFile:
    """One file of a dataset: where it lives under the data folder and how to check it.

    >>> RemoteFile("mnist/t10k-labels-idx1-ubyte.gz",
    ...            "https://ossci-datasets.s3.amazonaws.com/mnist/t10k-labels-idx1-ubyte.gz",
    ...            "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
    ...            size=4542).algorithm
    'sha256'
    """

    path: str  # relative to the data folder, with "/" separators
    url: str | None  # None: no canonical download (e.g. files only found extracted)
    digest: str  # lowercase hex
    algorithm: str = "sha256"
    size: int | None = None  # bytes; checked before hashing because it is free

    def __post_init__(self) -> None:
        if self.algorithm not in _ALGORITHMS:
            raise ValueError(f"{self.path}: algorithm {self.algorithm!r} not in {_ALGORITHMS}")
        object.__setattr__(self, "digest", self.digest.lower())

    @property
    def filename(self) -> str:
        return self.path.rsplit("/", 1)[-1]


def fetch(file: RemoteFile, root: Path, *, download: bool = True) -> Path:
    """Return the verified local path of ``file`` under ``root``, downloading it if missing.

    >>> fetch(MNIST_FILES["test_labels"], Path("/data"))          # doctest: +SKIP
    PosixPath('/data/mnist/t10k-labels-idx1-ubyte.gz')
    """
    path = Path(root) / file.path
    if path.exists():
        verify(path, file)
        return path
    if not download or file.url is None:
        source = f" (from {file.url})" if file.url else ""
        hint = " or load with download=True" if file.url and not download else ""
        raise DataError(f"{path} not found: put {file.filename}{source} there{hint}")
    _download(file, path)
    return path


def verify(path: Path, file: RemoteFile) -> None:
    """Raise ``DataError`` unless ``path`` has the size and checksum ``file`` records."""
    key = _cache_key(path, file)
    if key in _verified:
        return
    size = key[1]
    if file.size is not None and size != file.size:
        raise DataError(
            f"{path} is {size} bytes, expected {file.size} (truncated or wrong file); "
            f"delete it to download it again"
        )
    try:
        actual = _hash_file(path, file.algorithm)
    except OSError as e:
        raise DataError(f"cannot read {path} ({e.strerror or e}); check that it is a readable "
                        f"file") from None
    if actual != file.digest:
        raise DataError(
            f"{path} has {file.algorithm} {actual}, expected {file.digest} "
            f"(corrupt or wrong file); delete it to download it again"
        )
    _verified.add(key)


def _hash_file(path: Path, algorithm: str) -> str:
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def _download(file: RemoteFile, dest: Path) -> None:
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
    except OSError as e:
        raise DataError(f"cannot write {dest} ({e.strerror or e}); set GRIDRUN_DATA_DIR to a "
                        f"writable folder or put the file there by hand") from None
    tmp = Path(tmp_name)
    log.info("downloading %s to %s", file.url, dest)
    try:
        with os.fdopen(fd, "wb") as out:
            size, actual = _stream(file.url, out, file.algorithm)
        if file.size is not None and size != file.size:
            raise DataError(f"download of {file.url} gave {size} bytes, expected {file.size}; "
                            f"nothing was kept at {dest}, try again later")
        if actual != file.digest:
            raise DataError(f"download of {file.url} has {file.algorithm} {actual}, expected "
                            f"{file.digest}; nothing was kept at {dest}")
        os.replace(tmp, dest)
    except (OSError, http.client.HTTPException, ValueError) as e:
        if isinstance(e, DataError):
            raise
        plain_url_error = isinstance(e, urllib.error.URLError) and not isinstance(
            e, urllib.error.HTTPError
        )
        reason = e.reason if plain_url_error else e
        raise DataError(f"could not download {file.url} to {dest} ({reason}); "
                        f"check the network or put the file there by hand") from None
    finally:
        tmp.unlink(missing_ok=True)
    _verified.add(_cache_key(dest, file))


def _cache_key(path: Path, file: RemoteFile) -> tuple:
    # Replacing or rewriting the file changes at least one of these, forcing a re-check.
    stat = path.stat()
    return str(path.resolve()), stat.st_size, stat.st_mtime_ns, stat.st_ino, file.digest


def _stream(url: str, out, algorithm: str) -> tuple[int, str]:
    """Copy ``url`` into ``out``, hashing on the way, so a big file is read only once."""
    h = hashlib.new(algorithm)
    size = 0
    request = urllib.request.Request(url, headers={"User-Agent": "gridrun"})
    with urllib.request.urlopen(request, timeout=_TIMEOUT_S) as response:
        while chunk := response.read(_CHUNK):
            out.write(chunk)
            h.update(chunk)
            size += len(chunk)
    return size, h.hexdigest()


def split_source(source: str) -> tuple[str, str | None]:
    """``(location, sha256 or None)`` of ``"location[#sha256=<hex>]"``."""
    if not isinstance(source, (str, os.PathLike)):
        raise ValueError(f"pretrained weights must be a path or an http(s) URL, got "
                         f"{source!r}")
    source = os.fspath(source)
    match = _FRAGMENT.search(source)
    if not match:
        return source, None
    digest = match.group(1)
    if not _HEX64.fullmatch(digest):
        raise ValueError(f"{source}: #sha256= must be followed by 64 hex digits, got "
                         f"{digest!r}")
    return source[:match.start()], digest.lower()


def is_url(location: str) -> bool:
    return urllib.parse.urlsplit(location).scheme.lower() in ("http", "https")
