"""Run one Faust worker with a hard shutdown deadline.

Faust can hang at "Wait for streams..." on shutdown; after SHUTDOWN_TIMEOUT seconds the process exits
anyway. Committed offsets and the changelog make that safe: uncommitted work is redone on restart.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from typing import Any

import faust

from core_app.gc_tuning import tune_gc
from core_app.logs import configure_logging, logging_config
from core_app.settings import Settings
from core_app.tracing import configure_tracing

log = logging.getLogger(__name__)

EXIT_SHUTDOWN_DEADLINE = 70


class DeadlineWorker(faust.Worker):
    def __init__(self, *args: Any, shutdown_timeout: float, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.shutdown_timeout = shutdown_timeout
        self._deadline: threading.Timer | None = None

    def _arm_deadline(self) -> None:
        if self._deadline is None:
            self._deadline = threading.Timer(self.shutdown_timeout, self._give_up)
            self._deadline.daemon = True
            self._deadline.start()

    def _give_up(self) -> None:
        log.error("shutdown deadline passed; exiting", extra={"seconds": self.shutdown_timeout})
        logging.shutdown()
        os._exit(EXIT_SHUTDOWN_DEADLINE)

    def _schedule_shutdown(self, signal: signal.Signals) -> None:
        self._arm_deadline()
        super()._schedule_shutdown(signal)


def run_worker(settings: Settings) -> None:
    from core_app.app import discard_state_after_crash
    from core_app.main import build

    configure_logging(settings)
    tune_gc(settings)
    configure_tracing(settings)  # before build(): it wraps the web app
    app = build()
    discard_state_after_crash(settings)
    settings.worker_data_dir.mkdir(parents=True, exist_ok=True)
    worker = DeadlineWorker(
        app,
        loglevel=settings.log_level,
        logging_config=logging_config(settings),
        redirect_stdouts=False,
        quiet=True,
        shutdown_timeout=settings.shutdown_timeout,
    )
    worker.execute_from_commandline()
