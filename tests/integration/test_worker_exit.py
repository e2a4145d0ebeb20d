"""A worker that cannot go on exits with EXIT_FATAL and, last in its log, one line saying why."""

from __future__ import annotations

import subprocess

from core_app.worker import EXIT_FATAL
from tests.support.processes import free_port, start_worker


def test_fatal_error_exits_with_its_code_and_a_one_line_reason(worker_env: dict[str, str]) -> None:
    env = worker_env | {"KAFKA_BROKER": f"kafka://127.0.0.1:{free_port()}"}  # nothing listens there
    worker = start_worker("worker-fatal", env)
    try:
        code = worker.process.wait(90)
    except subprocess.TimeoutExpired:
        worker.process.kill()
        raise
    last = worker.log_path.read_text().strip().splitlines()[-1]
    assert code == EXIT_FATAL, worker.log_tail()
    assert "fatal, exiting: KafkaConnectionError" in last, last
    assert "Event loop is closed" not in last
