"""Where pretrained weights come from: a local path or an http(s) URL, optionally pinned by
``#sha256=``, downloaded once into a cache. Framework-neutral (no torch, no tensorflow), so
both trainers share it.

    >>> resolve_source("cifar10-resnet20.pt#sha256=9f86d0...")          # doctest: +SKIP
    PosixPath('cifar10-resnet20.pt')
    >>> resolve_source("https://example.org/w.npz", cache_dir="/tmp/c")  # doctest: +SKIP
    PosixPath('/tmp/c/url-3b1f...-w.npz')
"""

from __future__ import annotations

import hashlib
import http.client
import os
import re
import tempfile
import urllib.parse
from pathlib import Path

from gridrun.data._dataset import DataError
from gridrun.data._files import RemoteFile, _hash_file, _stream, fetch, is_url, split_source

__all__ = ["weights_cache_dir", "resolve_source", "split_source", "is_url"]


def weights_cache_dir() -> Path:
    """Where downloaded weights are kept: ``$GRIDRUN_CACHE`` if set, else
    ``$XDG_CACHE_HOME/gridrun/weights``, else ``~/.cache/gridrun/weights``."""
    explicit = os.environ.get("GRIDRUN_CACHE")
    if explicit:
        return Path(explicit).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    if xdg and Path(xdg).is_absolute():
        return Path(xdg) / "gridrun" / "weights"
    return Path.home() / ".cache" / "gridrun" / "weights"


def resolve_source(source: str | os.PathLike, *, cache_dir: str | os.PathLike | None = None
                   ) -> Path:
    """The verified local file of ``source``: a local path or an http(s) URL, either
    optionally ending in ``#sha256=<64 hex digits>``, which the file must match. A URL is
    downloaded into ``cache_dir`` (default :func:`weights_cache_dir`) unless it is there
    already.

    Raises ValueError for a bad hash or a failed download, FileNotFoundError for a missing
    local file."""
    location, digest = split_source(source)
    if is_url(location):
        return _cached_download(location, digest, cache_dir)
    if "://" in location:
        raise ValueError(f"{location}: only local paths and http(s) URLs are supported")
    path = Path(location).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"pretrained weights file {path} not found")
    if digest is not None:
        actual = _hash_file(path, "sha256")
        if actual != digest:
            raise ValueError(f"{path} has sha256 {actual}, expected {digest}: not the "
                             f"weights the #sha256= names")
    return path


def _cached_download(url: str, digest: str | None, cache_dir) -> Path:
    """Download ``url`` once into the cache. With a digest the file is named by it and
    verified (on download and on reuse); without one it is named by the URL and trusted
    once downloaded."""
    root = Path(cache_dir).expanduser() if cache_dir is not None else weights_cache_dir()
    stem = Path(urllib.parse.urlsplit(url).path).name or "weights"
    stem = re.sub(r"[^A-Za-z0-9._-]", "_", stem)[-80:]
    if digest is not None:
        name = f"sha256-{digest}-{stem}"
        try:
            return fetch(RemoteFile(name, url, digest), root)
        except DataError as e:
            raise ValueError(f"pretrained weights: {e}") from None
    name = f"url-{hashlib.sha256(url.encode()).hexdigest()[:32]}-{stem}"
    path = root / name
    if path.is_file():
        return path
    try:
        root.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=root, prefix=f".{name}.", suffix=".part")
    except OSError as e:
        raise ValueError(f"cannot write the weights cache {root} ({e.strerror or e}); set "
                         f"GRIDRUN_CACHE to a writable folder") from None
    try:
        with os.fdopen(fd, "wb") as out:
            _stream(url, out, "sha256")
        os.replace(tmp, path)
    except (OSError, http.client.HTTPException, ValueError) as e:  # URLError is an OSError
        raise ValueError(f"could not download pretrained weights {url} "
                         f"({getattr(e, 'reason', None) or e})") from None
    finally:
        Path(tmp).unlink(missing_ok=True)
    return path
