"""The short chaos run (issue 20), in `make test` and so in CI (D251): three workers and the sink as
its own process under a light keyed load, with one nemesis of each kind in an order drawn from a
printed seed (CHAOS_SEED repeats it), then the independent verifier. About two minutes alone on 2 cores, under
three beside the rest of `make test`; its report closes the run's output (tests/conftest.py).

The run is tests/chaos/run.py's, shared with the long one (bench/chaos.py); what "lost" means
across a broker wipe is docs/decisions.md D246.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from core_app.events.codec import EventCodec
from core_app.settings import Settings
from tests.chaos.nemesis import KINDS
from tests.chaos.run import Config, run_chaos
from tests.chaos.stack import Stack

pytestmark = [pytest.mark.integration, pytest.mark.chaos]

# 3 merchants x 300 customers (the long run has 10,000 over 4 merchants), 120 events/s, 5 reads/s per
# worker: light, as the rest of `make test` runs beside it on the same 2 cores.
SHORT = {"merchants": 3, "customers_per_merchant": 300, "rate": 120.0, "read_rate": 5.0, "gap": 3.0}


@pytest.mark.timeout(290)
async def test_short_chaos_run_delivers_every_record(
    worker_env: dict[str, str],
    settings: Settings,
    codec: EventCodec,
    data_root: Path,
    record_property: Callable[[str, object], None],
) -> None:
    config = Config(seed=Config.seed_from_env(), counts=dict.fromkeys(KINDS, 1), **SHORT)  # type: ignore[arg-type]
    stack = Stack(data_root / "chaos", worker_env, settings)
    try:
        report = await run_chaos(config, stack, codec)
    finally:
        stack.stop()
    record_property("chaos_report", "\n".join(report.lines))
    verdict = report.verdict
    assert len(report.outcomes) >= 5 and {o.kind for o in report.outcomes} == set(KINDS), report.outcomes
    assert (verdict.count("lost"), verdict.count("regressed"), verdict.count("diverged")) == (0, 0, 0), (
        f"seed {report.seed}: {verdict.line()}\n" + "\n".join(report.lines)
    )
