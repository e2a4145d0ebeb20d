"""A real Redis Cluster of three masters, started by the test on free ports (no replicas: the test is
about which slot each key lands in, not failover). About a second to start."""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import redis

from tests.support.processes import free_port, stop_process, wait_for_port


class RedisClusterProcesses:
    def __init__(self, workdir: Path, masters: int = 3) -> None:
        self.workdir = workdir
        # Each node gets a client port and a bus port of its own (the default bus port, +10000,
        # may be taken or out of range for an ephemeral port).
        self.ports = [(free_port(), free_port()) for _ in range(masters)]
        self.processes: list[subprocess.Popen[bytes]] = []

    @property
    def url(self) -> str:
        """A startup node; the client discovers the others (REDIS_URL with REDIS_CLUSTER=true)."""
        return f"redis://127.0.0.1:{self.ports[0][0]}/0"

    def start(self) -> None:
        server = shutil.which("redis-server") or "/usr/bin/redis-server"
        for port, bus in self.ports:
            node_dir = self.workdir / f"node-{port}"
            node_dir.mkdir(parents=True, exist_ok=True)
            argv = [server, "--port", str(port), "--cluster-port", str(bus), "--bind", "127.0.0.1"]
            argv += ["--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf"]
            argv += ["--save", "", "--appendonly", "no", "--dir", str(node_dir)]
            log = open(node_dir / "redis.log", "wb")
            self.processes.append(subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT))
        for port, _ in self.ports:
            wait_for_port(port)
        cli = shutil.which("redis-cli") or "/usr/bin/redis-cli"
        nodes = [f"127.0.0.1:{port}" for port, _ in self.ports]
        result = subprocess.run(
            [cli, "--cluster", "create", *nodes, "--cluster-replicas", "0", "--cluster-yes"],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 0, result.stdout + result.stderr
        self._wait_ok()

    def _wait_ok(self, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            states = []
            for port, _ in self.ports:
                with redis.Redis(port=port) as node:
                    info = node.cluster("INFO")
                states.append(info.get("cluster_state") == "ok")
            if all(states):
                return
            time.sleep(0.1)
        raise TimeoutError("the Redis Cluster did not reach cluster_state:ok")

    def stop(self) -> None:
        for process in self.processes:
            stop_process(process, timeout=10)
        self.processes = []
