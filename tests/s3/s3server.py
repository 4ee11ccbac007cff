"""A real S3 API on this machine for the tests: moto's server on 127.0.0.1 (HTTP, SigV4
signatures checked against IAM keys, multipart uploads, listings), and a TCP proxy in front
of it that a test can cut and restore to take the endpoint away for a few seconds.

Why a proxy and not the server itself: moto keeps its buckets in memory, so a stopped and
restarted moto comes back empty; and a server paused with SIGSTOP still completes TCP
handshakes in the kernel, so clients see slow timeouts, not an endpoint that went away.
Cutting the proxy is what a restarting endpoint looks like to the client: connections in
flight are closed mid-request and new ones are refused, while the data behind it stays.
Nothing here reaches beyond 127.0.0.1.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

__all__ = ["S3Server", "Proxy", "free_port"]

REGION = "us-east-1"
_ALLOW_ALL = {"Version": "2012-10-17",
              "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}
_READ_ONLY = {"Version": "2012-10-17",
              "Statement": [{"Effect": "Allow", "Resource": "*",
                             "Action": ["s3:GetObject", "s3:ListBucket",
                                        "s3:GetBucketLocation"]}]}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_listening(port: int, timeout: float, proc=None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"the S3 server exited with {proc.returncode}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
            return
        time.sleep(0.1)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {timeout:.0f} s")


class Proxy:
    """127.0.0.1:<port> forwarded to 127.0.0.1:<target>; ``cut`` closes every connection
    and refuses new ones until ``restore``."""

    def __init__(self, target: int):
        self.target, self.port = target, free_port()
        self._lock = threading.Lock()
        self._socks: set[socket.socket] = set()
        self._listener: socket.socket | None = None
        self.restore()

    @property
    def cut_off(self) -> bool:
        return self._listener is None

    def restore(self) -> None:
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", self.port))
        s.listen(128)
        self._listener = s
        threading.Thread(target=self._accept, args=(s,), daemon=True).start()

    def cut(self) -> None:
        s, self._listener = self._listener, None
        if s is not None:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)  # wakes accept()
            s.close()
        with self._lock:
            socks, self._socks = list(self._socks), set()
        for c in socks:
            with contextlib.suppress(OSError):
                c.shutdown(socket.SHUT_RDWR)

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target))
            except OSError:
                client.close()
                continue
            with self._lock:
                self._socks |= {client, upstream}
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(1 << 16):
                dst.sendall(data)
        except OSError:
            pass
        for s in (src, dst):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
        with self._lock:
            self._socks -= {src, dst}

    def close(self) -> None:
        self.cut()


class S3Server:
    """moto's S3 server with authentication on, a bucket, an admin key (may do anything) and
    a read-only key; ``proxy`` stands in front of it. ``env(...)`` is what a gridrun process
    needs to use it through the standard AWS variables that Arrow's S3 client reads."""

    def __init__(self, workdir: Path, bucket: str = "gridrun"):
        self.port, self.bucket = free_port(), bucket
        self.log = workdir / "moto.log"
        # The first three requests may go unsigned: they make the admin user and its key;
        # everything after is checked against IAM, so wrong keys are refused.
        env = {**os.environ, "INITIAL_NO_AUTH_ACTION_COUNT": "3"}
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-c", "from moto.server import main; main()",
                 "-H", "127.0.0.1", "-p", str(self.port)],
                stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        try:
            _wait_listening(self.port, 60, self.proc)
            self.endpoint = f"http://127.0.0.1:{self.port}"
            self.admin = self._key("admin", _ALLOW_ALL, signed=False)
            self._client("s3", self.admin).create_bucket(Bucket=bucket)
            self.reader = self._key("reader", _READ_ONLY, signed=True)
            self.proxy = Proxy(self.port)
        except BaseException:
            self.stop()
            raise

    def _client(self, service: str, key=None):
        import boto3

        key = key or ("unsigned", "unsigned")
        return boto3.client(service, endpoint_url=self.endpoint, region_name=REGION,
                            aws_access_key_id=key[0], aws_secret_access_key=key[1])

    def _key(self, user: str, policy: dict, signed: bool) -> tuple[str, str]:
        iam = self._client("iam", self.admin if signed else None)
        iam.create_user(UserName=user)
        iam.put_user_policy(UserName=user, PolicyName=f"{user}-policy",
                            PolicyDocument=json.dumps(policy))
        k = iam.create_access_key(UserName=user)["AccessKey"]
        return k["AccessKeyId"], k["SecretAccessKey"]

    def env(self, key=None, *, direct: bool = False) -> dict[str, str]:
        """The environment of a process using this S3 (through the proxy unless
        ``direct``), with ``key`` (default: admin); nothing else of AWS leaks in."""
        key = key or self.admin
        port = self.port if direct else self.proxy.port
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        return {**env, "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}",
                "AWS_ACCESS_KEY_ID": key[0], "AWS_SECRET_ACCESS_KEY": key[1],
                "AWS_DEFAULT_REGION": REGION, "AWS_EC2_METADATA_DISABLED": "true",
                "AWS_CONFIG_FILE": os.devnull, "AWS_SHARED_CREDENTIALS_FILE": os.devnull}

    def fs(self):
        """A pyarrow S3FileSystem straight to the server (not through the proxy), admin key:
        what the tests look into the bucket with."""
        import pyarrow.fs as pafs

        return pafs.S3FileSystem(endpoint_override=self.endpoint, scheme="http",
                                 access_key=self.admin[0], secret_key=self.admin[1],
                                 region=REGION)

    def uri(self, *parts: str) -> str:
        return "s3://" + "/".join((self.bucket, *parts))

    def stop(self) -> None:
        if getattr(self, "proxy", None) is not None:
            self.proxy.close()
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
