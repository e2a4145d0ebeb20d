"""Tansu on S3 storage against a local S3 server (moto_server, PyPI `moto[server]`), restartable on
the same bucket: the candidate durable dev broker that tests/integration/test_tansu_s3.py examines
(docs/decisions.md D230). Tansu 0.6.0 stores to `memory://` or `s3://` only."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from core_app.devstack import tansu_argv
from tests.support.processes import free_port, stop_process, wait_for_port

REGION = "eu-west-2"


def tansu_s3_env(endpoint: str) -> dict[str, str]:
    """Tansu's object-store settings for the local S3 at `endpoint` (which checks no credentials)."""
    return {
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "AWS_DEFAULT_REGION": REGION,
        "AWS_ENDPOINT": endpoint,
        "AWS_ALLOW_HTTP": "true",
    }


def create_bucket(endpoint: str, bucket: str) -> None:
    """Create `bucket` if it is missing."""
    location = f"<LocationConstraint>{REGION}</LocationConstraint>"
    body = f"<CreateBucketConfiguration>{location}</CreateBucketConfiguration>"
    request = urllib.request.Request(f"{endpoint}/{bucket}", data=body.encode(), method="PUT")
    try:
        with urllib.request.urlopen(request, timeout=10):
            return
    except urllib.error.HTTPError as exc:
        if exc.code != 409:  # 409: the bucket is already there
            raise


class S3Tansu:
    """Tansu storing to `s3://<bucket>/` on the S3 at `endpoint`, on one port for good."""

    def __init__(self, endpoint: str, bucket: str, log_path: Path) -> None:
        self.endpoint = endpoint
        self.bucket = bucket
        self.port = free_port()
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"kafka://127.0.0.1:{self.port}"

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> None:
        create_bucket(self.endpoint, self.bucket)
        env = {**os.environ, **tansu_s3_env(self.endpoint)}
        argv = [*tansu_argv(self.port), "--storage-engine", f"s3://{self.bucket}/"]
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT)
        wait_for_port(self.port)

    def stop(self, how: signal.Signals = signal.SIGTERM) -> None:
        """SIGTERM (with a deadline), or `how` (SIGKILL: a crash)."""
        if self.process is None:
            return
        if how == signal.SIGTERM:
            stop_process(self.process, timeout=5)
        else:
            self.process.send_signal(how)
            self.process.wait(10)
        self.process = None

    def restart(self, how: signal.Signals = signal.SIGKILL) -> None:
        """Stop the broker with `how` and start it again on the same bucket and port."""
        self.stop(how)
        self.start()


@contextmanager
def running_moto(log_path: Path) -> Iterator[str]:
    """A moto_server on a free port; yields its endpoint URL. It keeps objects in memory, for as
    long as it runs: enough to restart the broker on top of it."""
    binary = Path(sys.executable).with_name("moto_server")
    found = str(binary) if binary.exists() else shutil.which("moto_server")
    assert found, "moto_server is missing: pip install -e '.[dev]' (moto[server])"
    port = free_port()
    with open(log_path, "ab") as log:
        argv = [found, "-H", "127.0.0.1", "-p", str(port)]
        process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_for_port(port, timeout=30)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.kill()  # nothing of it is kept, and its server takes seconds over a SIGTERM
        process.wait()
