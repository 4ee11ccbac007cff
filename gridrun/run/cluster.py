"""Joining a Ray cluster, before Ray is imported: which auth mode to join with, failing fast
on an address where nothing listens, and the environment that keeps Ray quiet. Pure
functions over addresses and environment variables; ``launch`` calls them.
"""

from __future__ import annotations

import logging
import os
import socket
from pathlib import Path

__all__ = ["ClusterError", "join_auth_mode", "check_reachable", "quiet_environment"]


class ClusterError(ValueError):
    """The Ray cluster at the given address could not be joined."""


def quiet_environment(verbose: bool) -> None:
    # Set before ray.init so the local raylet and workers inherit them.
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")  # we keep our own
    if not verbose:
        # Tune's new output engine prints its header at every verbosity; the legacy
        # reporter honours verbose=0, and our own progress line replaces both.
        os.environ["RAY_AIR_NEW_OUTPUT"] = "0"
        os.environ.setdefault("PYTHONWARNINGS", "ignore")
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        for name in ("ray", "ray.tune", "ray.train", "ray.data"):
            logging.getLogger(name).setLevel(logging.ERROR)


def join_auth_mode(address: str | None, environ=os.environ, home: Path | None = None):
    """The RAY_AUTH_MODE to join ``address`` with, or None to leave Ray's choice alone.

    ``ray start`` and a local ``ray.init()`` turn token authentication on by default, but
    a driver joining an existing cluster does not, so it is refused even when the token
    sits in ~/.ray/auth_token. When no mode is set and a token is available (RAY_AUTH_TOKEN,
    RAY_AUTH_TOKEN_PATH or the default file), join in token mode, as ``ray start`` would.
    """
    if not address or "RAY_AUTH_MODE" in environ:
        return None
    path = environ.get("RAY_AUTH_TOKEN_PATH") or (home or Path.home()) / ".ray" / "auth_token"
    return "token" if environ.get("RAY_AUTH_TOKEN") or Path(path).is_file() else None


def check_reachable(address: str | None, timeout: float = 5.0) -> None:
    """Fail fast on an address nothing listens at: Ray itself retries for many minutes."""
    if not address or address == "auto" or address.startswith("local"):
        return
    hostport = address.split("://", 1)[-1].rstrip("/")
    host, _, port = hostport.rpartition(":")
    if not host or not port.isdigit():
        raise ClusterError(f"cannot join Ray at {address}: expected host:port, "
                           "ray://host:port or auto")
    try:
        socket.create_connection((host, int(port)), timeout=timeout).close()
    except OSError as e:
        raise ClusterError(f"cannot join Ray at {address}: nothing answers there "
                           f"({e.strerror or e}); is the cluster's head running?") from None
