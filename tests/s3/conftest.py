"""The S3 endpoint of these tests: one moto server on 127.0.0.1 for the whole session
(started on first use, stopped at the end), reached through a proxy that a test can cut.
Every test gets its own run prefix and its own spool folder."""

from __future__ import annotations

import importlib.util
import os
import sys
import uuid
from pathlib import Path

import pytest

# the helpers of the local tests: processes (tests/run: start, gridrun, wait_for, tree, ...)
# and the claim race (tests/store)
for _folder in ("run", "store"):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / _folder))


def _need_moto() -> None:
    missing = [m for m in ("moto", "boto3", "flask") if importlib.util.find_spec(m) is None]
    if missing:
        reason = (f"the S3 tests need {', '.join(missing)} (pip install -c constraints.txt "
                  "-e '.[dev]')")
        if os.environ.get("CI"):
            pytest.fail(reason + "; CI must run them")
        pytest.skip(reason)


@pytest.fixture(scope="session")
def s3(tmp_path_factory):
    """The running server (``s3server.S3Server``)."""
    _need_moto()
    from s3server import S3Server

    server = S3Server(tmp_path_factory.mktemp("moto"))
    yield server
    server.stop()


@pytest.fixture
def s3env(s3, tmp_path):
    """A gridrun process's environment for ``s3`` (through the proxy), with this test's own
    spool folder; the proxy is restored after the test whatever it did."""
    env = {**s3.env(), "GRIDRUN_SPOOL": str(tmp_path / "spool"),
           "GRIDRUN_CHECKPOINT_SECONDS": "0"}
    yield env
    if s3.proxy.cut_off:
        s3.proxy.restore()


@pytest.fixture
def prefix():
    """A fresh folder in the bucket for this test."""
    return f"t-{uuid.uuid4().hex[:8]}"
