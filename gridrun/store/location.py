"""Where a run lives: a local folder or a URI (``file://``, ``s3://``, ``gs://``, ``hdfs://``,
any filesystem pyarrow resolves), read and written through ``pyarrow.fs`` so a run made on a
cluster can be reported on a laptop.

Every write replaces one whole file: locally through a temporary sibling and a rename, on an
object store with one upload (objects appear whole). A reader therefore never sees half a
file; ``store.write_run`` orders its writes so run.json, written last, says a run is whole.

    >>> loc = Location("file:///tmp/gridrun-doc/run")
    >>> loc.child("run.json").name
    'run.json'
"""

from __future__ import annotations

import os
import posixpath
import re
import tempfile
import uuid
from pathlib import Path

__all__ = ["Location", "StorageError"]


class StorageError(ValueError):
    """A storage path or URI that cannot be resolved, read or written."""


def _is_uri(text: str) -> bool:
    head, sep, _ = text.partition("://")
    return bool(sep) and head.isalnum() and len(head) > 1  # not a Windows drive letter


_AWS = re.compile(r"AWS Error (\w+) during (\w+) operation: (.*?)(?: \(Request ID: [^)]*\))?$")
_CURL = re.compile(r"curlCode: (\d+), ([^;]*)")


def _why(e: BaseException) -> str:
    """An error of the storage in one short line: for S3, its message and code (``The
    specified bucket does not exist (NO_SUCH_BUCKET)``, ``Could not connect to server
    (NETWORK_CONNECTION)``) without the request id and the client's details."""
    text = " ".join(str(e).split()) or type(e).__name__
    m = _AWS.search(text)
    code, message = (m.group(1), m.group(3).strip()) if m else (None, text)
    curl = _CURL.search(message)
    if curl:
        message = curl.group(2).strip()
    message = message.rstrip(".")
    if code is None:
        return message
    if not message or message == "No response body":
        message = code.replace("_", " ").lower()
    return f"{message} ({code})"


# Object stores, where a file needs no folder made first (one request less per write)
_NO_FOLDERS = ("s3", "gcs")


class Location:
    """A file or folder on local disk or on a pyarrow filesystem."""

    def __init__(self, where: str | os.PathLike, _fs=None, _path: str | None = None):
        self.text = str(where)
        if _fs is not None:
            self.fs, self.path = _fs, _path
        elif _is_uri(self.text):
            import pyarrow.fs as pafs

            try:
                self.fs, self.path = pafs.FileSystem.from_uri(self.text)
            except Exception as e:  # pyarrow raises several types for bad URIs
                first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
                raise StorageError(f"{self.text}: cannot open this storage ({first})") \
                    from None
        else:
            import pyarrow.fs as pafs

            self.fs, self.path = pafs.LocalFileSystem(), str(Path(self.text).absolute())

    # -- naming ---------------------------------------------------------------------------
    @property
    def is_local(self) -> bool:
        import pyarrow.fs as pafs

        return isinstance(self.fs, pafs.LocalFileSystem)

    @property
    def local_path(self) -> Path:
        """The folder on this machine (local storage only)."""
        if not self.is_local:
            raise StorageError(f"{self.text} is not on this machine's disk")
        return Path(self.path)

    @property
    def full(self) -> str:
        """The URI, or the absolute path of local storage: what another process (a Ray
        worker, with its own working directory, maybe on another node) can open."""
        return self.path if self.is_local else self.text

    @property
    def name(self) -> str:
        return posixpath.basename(self.path.rstrip("/"))

    def child(self, *parts: str) -> "Location":
        # a URI's query (s3://b/p?endpoint_override=...) stays at its end: workers and
        # later commands open the child's text with the same options
        base, q, query = self.text.partition("?")
        text = base.rstrip("/") + "/" + "/".join(parts) + q + query
        if not _is_uri(self.text):
            text = str(Path(self.text, *parts))
        return Location(text, self.fs, posixpath.join(self.path, *parts))

    def __str__(self) -> str:
        return self.text

    def __repr__(self) -> str:
        return f"Location({self.text!r})"

    def __eq__(self, other) -> bool:
        return isinstance(other, Location) and (type(self.fs), self.path) == (
            type(other.fs), other.path)

    def __hash__(self) -> int:
        return hash(self.path)

    # -- queries --------------------------------------------------------------------------
    def _info(self):
        try:
            return self.fs.get_file_info(self.path)
        except OSError as e:
            raise StorageError(f"{self.text}: cannot read ({_why(e)})") from None

    def exists(self) -> bool:
        import pyarrow.fs as pafs

        return self._info().type != pafs.FileType.NotFound

    def is_file(self) -> bool:
        import pyarrow.fs as pafs

        return self._info().type == pafs.FileType.File

    def is_dir(self) -> bool:
        import pyarrow.fs as pafs

        return self._info().type == pafs.FileType.Directory

    def mtime(self) -> float | None:
        info = self._info()
        return info.mtime.timestamp() if info.mtime is not None else None

    def list(self) -> list[str]:
        """Names directly inside this folder (empty when it does not exist)."""
        import pyarrow.fs as pafs

        if not self.is_dir():
            return []
        sel = pafs.FileSelector(self.path, allow_not_found=True)
        return sorted(posixpath.basename(i.path) for i in self.fs.get_file_info(sel))

    def files(self) -> dict[str, float | None]:
        """{name: modification time} of the files directly inside this folder, from one
        listing (on an object store, the times are the store's own clock)."""
        import pyarrow.fs as pafs

        try:
            infos = self.fs.get_file_info(pafs.FileSelector(self.path, allow_not_found=True))
        except OSError as e:
            raise StorageError(f"{self.text}: cannot list ({_why(e)})") from None
        return {posixpath.basename(i.path): i.mtime.timestamp() if i.mtime else None
                for i in infos if i.type == pafs.FileType.File}

    # -- reading and writing --------------------------------------------------------------
    def read_bytes(self) -> bytes:
        try:
            with self.fs.open_input_stream(self.path) as f:
                return f.read()
        except (OSError, FileNotFoundError) as e:
            raise StorageError(f"{self.text}: cannot read ({_why(e)})") from None

    def read_text(self) -> str:
        return self.read_bytes().decode()

    def write_bytes(self, data: bytes) -> None:
        """Replace this file with ``data`` in one step."""
        try:
            if self.is_local:
                path = Path(self.path)
                path.parent.mkdir(parents=True, exist_ok=True)
                fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
                try:
                    with os.fdopen(fd, "wb") as f:
                        f.write(data)
                    os.replace(tmp, path)
                except BaseException:
                    Path(tmp).unlink(missing_ok=True)
                    raise
                return
            if self.fs.type_name not in _NO_FOLDERS:
                self.fs.create_dir(posixpath.dirname(self.path), recursive=True)
            with self.fs.open_output_stream(self.path) as f:
                f.write(data)
        except OSError as e:
            raise StorageError(f"{self.text}: cannot write ({_why(e)})") from None

    def write_text(self, text: str) -> None:
        self.write_bytes(text.encode())

    def check_writable(self) -> None:
        """Write and delete a small object in this folder: a bucket that does not exist,
        refuses writes or cannot be reached fails here, in one line, before a run starts."""
        probe = self.child(f".gridrun-probe-{uuid.uuid4().hex[:12]}")
        try:
            probe.write_bytes(b"gridrun")
            probe.delete()
        except StorageError as e:
            why = str(e).split(": cannot write (", 1)[-1].removesuffix(")")
            raise StorageError(f"{self.text}: cannot write there ({why})") from None

    def make_dir(self) -> None:
        try:
            self.fs.create_dir(self.path, recursive=True)
        except OSError as e:
            raise StorageError(f"{self.text}: cannot create ({_why(e)})") from None

    def delete_file(self) -> None:
        """Remove this file, if it is there: one request on an object store, where
        ``delete`` first asks what the path is (a HEAD and a LIST for a missing key)."""
        try:
            self.fs.delete_file(self.path)
        except FileNotFoundError:
            pass
        except OSError as e:
            if "does not exist" in str(e) or "not found" in str(e).lower():
                return
            raise StorageError(f"{self.text}: cannot delete ({_why(e)})") from None

    def delete(self) -> None:
        """Remove this file or folder (and its contents); nothing when it is absent."""
        import pyarrow.fs as pafs

        kind = self._info().type
        try:
            if kind == pafs.FileType.Directory:
                self.fs.delete_dir(self.path)
            elif kind == pafs.FileType.File:
                self.fs.delete_file(self.path)
        except OSError as e:
            raise StorageError(f"{self.text}: cannot delete ({_why(e)})") from None
