"""The Faust application: broker, RocksDB store, partitions, and the services it owns."""

from __future__ import annotations

import gc
import logging
import shutil
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import faust
from mode import ServiceT

from core_app import watchdog
from core_app.broker_watch import BrokerWatch
from core_app.kafka_security import faust_credentials
from core_app.kafka_transport import CoreTransport, group_stable, in_group, set_fetch_max_wait_ms
from core_app.recovery import CoreTableManager
from core_app.settings import Settings, get_settings
from core_app.topics import ensure_topics
from tables.rocksdb import STORE_URL

if TYPE_CHECKING:
    from core_app.components import Components

log = logging.getLogger(__name__)


class CoreApp(faust.App):
    """faust.App plus: tuned consumer transport, our HTTP/gRPC servers, and the shared runtime."""

    core_settings: Settings
    extra_services: list[ServiceT]
    broker_watch: BrokerWatch  # evidence that the broker lost our data, for /health
    components: Components  # set by core_app.bootstrap.build()

    def _new_transport(self) -> Any:
        return CoreTransport(self.conf.broker_consumer, self)

    def _new_producer_transport(self) -> Any:
        return CoreTransport(self.conf.broker_producer, self)

    def on_init_dependencies(self) -> Iterable[ServiceT]:
        return [*super().on_init_dependencies(), *self.extra_services]

    async def on_start(self) -> None:
        await super().on_start()
        # Before any child starts: agents and views rely on the runtime being open.
        await ensure_topics(self.core_settings)
        await self.components.open()

    async def on_started(self) -> None:
        await super().on_started()
        runtime = self.components.runtime
        runtime.tables_recovered = True
        runtime.partition_checks = self.partition_checks
        runtime.health.local_checks["kafka_data"] = self.broker_data_check
        watchdog.install(self)  # stalled partitions: /ready, /health, /live and gauges (D225)
        # `faust worker` leaves the root logger at DEBUG via its spinner handler; that costs 10-20%.
        logging.getLogger().setLevel(self.core_settings.log_level)
        # Everything allocated so far lives as long as the worker: keep it out of the cyclic GC, whose
        # full collections otherwise paused the event loop 80-220 ms every few seconds under load.
        gc.freeze()

    def partition_checks(self) -> dict[str, bool]:
        """For `/ready`: every assigned partition recovered, and the group stable (D112, D116)."""
        recovered = bool(self.tables.recovery.serving)  # type: ignore[attr-defined]
        return {"partitions_recovered": recovered, "group_stable": group_stable(self)}

    def broker_data_check(self) -> str:
        """For `/health`: UP, or DOWN while the broker is found to have lost our data (D115)."""
        self.broker_watch.on_membership(in_group(self))
        return self.broker_watch.status()

    async def on_shutdown(self) -> None:
        await super().on_shutdown()
        await self.components.close()
        # Tables are closed by now: the local state matches what the changelogs hold.
        mark_clean_shutdown(self.core_settings)


CLEAN_MARKER = "CLEAN_SHUTDOWN"
CONSUMER_METADATA_MAX_AGE_MS = 10_000


def mark_clean_shutdown(settings: Settings) -> None:
    settings.worker_data_dir.mkdir(parents=True, exist_ok=True)
    (settings.worker_data_dir / CLEAN_MARKER).touch()


def discard_state_after_crash(settings: Settings) -> bool:
    """Wipe local table state unless the last run shut down cleanly; True if it was wiped.

    After a crash RocksDB can hold writes whose changelog records were never sent. Re-processed
    events would then be skipped as already applied and never reach the changelog or PostgreSQL.
    Rebuilding from the changelogs, which Faust flushes before it commits source offsets, is safe.
    """
    state_dir = settings.worker_data_dir
    marker = state_dir / CLEAN_MARKER
    dirty = state_dir.exists() and not marker.exists() and any(state_dir.iterdir())
    if dirty:
        log.warning("last run did not shut down cleanly; rebuilding tables from changelogs")
        shutil.rmtree(state_dir)
    marker.unlink(missing_ok=True)
    return dirty


def create_app(settings: Settings) -> CoreApp:
    set_fetch_max_wait_ms(settings.kafka_fetch_max_wait_ms)
    core = CoreApp(
        settings.service_name,
        broker=settings.kafka_broker,
        broker_credentials=faust_credentials(settings),
        store=STORE_URL,  # Faust's RocksDB store, one memory budget for all instances (D260)
        datadir=str(settings.worker_data_dir),
        topic_partitions=settings.kafka_topic_partitions,
        topic_replication_factor=settings.kafka_replication_factor,
        table_standby_replicas=settings.table_standby_replicas,
        broker_session_timeout=settings.kafka_session_timeout,
        broker_rebalance_timeout=settings.kafka_rebalance_timeout,
        broker_heartbeat_interval=settings.kafka_heartbeat_interval,
        broker_request_timeout=settings.kafka_request_timeout,
        broker_max_poll_records=settings.kafka_max_poll_records,
        consumer_max_fetch_size=settings.kafka_max_partition_fetch_bytes,
        producer_linger=settings.kafka_producer_linger,
        consumer_auto_offset_reset="earliest",
        # A topic the broker lost and a worker made again (D208) changes the group's subscription
        # metadata; the group rebalances onto it at the next refresh: 10 s, not aiokafka's 5 min.
        consumer_metadata_max_age_ms=CONSUMER_METADATA_MAX_AGE_MS,
        consumer_group_instance_id=settings.kafka_group_instance_id or None,
        web_enabled=False,
        canonical_url=settings.web_url,
        autodiscover=False,
        TableManager=CoreTableManager,
    )
    core.core_settings = settings
    core.extra_services = []
    core.broker_watch = BrokerWatch(
        hold_seconds=settings.broker_reset_hold_seconds,
        # As long as a member may take to rejoin: a session timeout then a rebalance, twice.
        membership_grace=2 * (settings.kafka_session_timeout + settings.kafka_rebalance_timeout),
    )
    return core


app = create_app(get_settings())
