"""PostgreSQL clusters of the tests' own, in temp dirs, so the shared server is never stopped:
a throwaway primary (outages), and a streaming replica of it made with `pg_basebackup`."""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path

from tests.support.processes import free_port


class ThrowawayPostgres:
    """A PostgreSQL cluster of our own in a temp dir (run as `postgres` when we are root)."""

    def __init__(self) -> None:
        self.bindir = next(Path("/usr/lib/postgresql").glob("*/bin"))
        self.root = Path(tempfile.mkdtemp(prefix="core-pg-"))
        self.data = self.root / "data"
        self.port = free_port()
        self.as_postgres = os.geteuid() == 0
        if self.as_postgres:
            user = pwd.getpwnam("postgres")
            os.chown(self.root, user.pw_uid, user.pw_gid)

    def _run(self, *argv: str) -> None:
        command = [str(self.bindir / argv[0]), *argv[1:]]
        if self.as_postgres:
            command = ["runuser", "-u", "postgres", "--", *command]
        subprocess.run(command, check=True, capture_output=True, timeout=120)

    def init(self) -> None:
        # initdb's pg_hba.conf with -A trust also trusts replication connections from 127.0.0.1.
        self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync")
        self.start()

    def replica_of(self, primary: ThrowawayPostgres) -> None:
        """Make this cluster a streaming replica of `primary` (hot standby) and start it."""
        self._run(
            "pg_basebackup", "-h", "127.0.0.1", "-p", str(primary.port), "-U", "postgres",
            "-D", str(self.data), "-X", "stream", "-R", "-c", "fast", "--no-sync",
        )  # fmt: skip
        self.start()

    def start(self) -> None:
        options = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run("pg_ctl", "-D", str(self.data), "-o", options, "-l", str(self.root / "log"), "-w", "start")

    def stop(self, mode: str = "immediate") -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop")

    def remove(self) -> None:
        try:
            self.stop("immediate")  # its data is thrown away next
        except subprocess.CalledProcessError:
            pass
        shutil.rmtree(self.root, ignore_errors=True)
