"""Brokers behind TLS (stunnel) and SASL (tests/support/sasl_front.py), each with a Tansu of its own.

Tansu advertises the front's address, so every connection a client makes, the bootstrap one and
those to the advertised broker, goes through TLS and/or SASL (docs/decisions.md D216, D217).
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

from core_app.devstack import tansu_argv
from core_app.devtools.tls import TlsFiles, stunnel_argv, write_dev_ca
from tests.support.processes import free_port, stop_process, wait_for_port
from tests.support.sasl_front import SaslFront, run_in_thread


@dataclass(frozen=True)
class SecureBroker:
    url: str  # KAFKA_BROKER of the front clients must use
    tls: TlsFiles | None
    sasl: SaslFront | None
    plaintext_port: int  # Tansu's own port, behind the fronts


@contextmanager
def _process(argv: list[str], port: int, log_path: Path) -> Iterator[None]:
    with open(log_path, "ab") as log:
        process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_for_port(port)
        yield
    finally:
        stop_process(process, timeout=5)


@contextmanager
def running_secure_tansu(
    workdir: Path, tls: bool = True, sasl_users: dict[str, str] | None = None
) -> Iterator[SecureBroker]:
    """Tansu behind stunnel (`tls`), behind the SASL front (`sasl_users`), or both: then clients
    speak TLS to stunnel, which hands the stream to the SASL front, which pipes it to Tansu."""
    workdir.mkdir(parents=True, exist_ok=True)
    backend, outer = free_port(), free_port()
    with ExitStack() as stack:
        stack.enter_context(
            _process(tansu_argv(backend, advertised_port=outer), backend, workdir / "tansu.log")
        )
        front: SaslFront | None = None
        inner = backend
        if sasl_users is not None:
            inner = free_port() if tls else outer
            front = SaslFront(inner, backend, sasl_users)
            stack.callback(run_in_thread(front))
        files: TlsFiles | None = None
        if tls:
            files = write_dev_ca(workdir / "ca")
            stack.enter_context(
                _process(stunnel_argv(files, outer, inner, workdir), outer, workdir / "stunnel.log")
            )
        yield SecureBroker(f"kafka://127.0.0.1:{outer}", files, front, backend)
