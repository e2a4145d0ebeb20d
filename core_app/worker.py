"""Run one Faust worker with a hard shutdown deadline.

Faust can hang at "Wait for streams..." on shutdown; after SHUTDOWN_TIMEOUT seconds the process exits
anyway. Committed offsets and the changelog make that safe: uncommitted work is redone on restart.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import threading
from typing import Any, NoReturn

import faust
from mode.utils.futures import maybe_cancel

from core_app.gc_tuning import tune_gc
from core_app.logs import configure_logging, logging_config, one_line
from core_app.malloc_tuning import tune_malloc
from core_app.settings import Settings
from core_app.tracing import configure_tracing

log = logging.getLogger(__name__)

EXIT_SHUTDOWN_DEADLINE = 70
EXIT_FATAL = 72  # a service crashed: the reason is the last line of the log


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

    def execute_from_commandline(self) -> NoReturn:  # type: ignore[misc]
        """mode's, but a failure ends the process with EXIT_FATAL and, last in the log, one line saying
        why (mode re-raised the crash after closing the loop, buried under shutdown noise)."""
        failure: BaseException | None = None
        self._starting_fut = None
        try:
            self._starting_fut = asyncio.ensure_future(self.start(), loop=self.loop)
            self.loop.run_until_complete(self._starting_fut)
        except asyncio.CancelledError:
            pass
        except Exception as exc:
            failure = exc
        finally:
            maybe_cancel(self._starting_fut)
            self.on_worker_shutdown()
            try:
                self.stop_and_shutdown()
            except BaseException as exc:
                failure = failure or exc
        reason = self.crash_reason or failure
        if reason is None:
            raise SystemExit(0)
        log.critical("fatal, exiting: %s", one_line(reason), extra={"exit_code": EXIT_FATAL})
        logging.shutdown()
        os._exit(EXIT_FATAL)

    def _schedule_shutdown(self, signal: signal.Signals) -> None:
        self._arm_deadline()
        super()._schedule_shutdown(signal)


def run_worker(settings: Settings) -> None:
    from core_app.app import discard_state_after_crash
    from core_app.bootstrap import build
    from core_app.topic_repair import forbid_auto_creation

    configure_logging(settings)
    tune_gc(settings)
    tune_malloc(settings)  # before any thread starts (D258)
    forbid_auto_creation()  # the broker never makes our topics with its defaults (D208)
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
