"""The import agent: `core.import.jobs` -> an import run in the background of the owning worker.

The agent takes a job, records it in the `import_logs` table (keyed by import_id, co-partitioned
with the jobs topic) and hands it to the worker's ImportRunner. It does not run the import inline:
an agent busy for minutes would hold every rebalance of the group in Faust's `wait_empty` (see
docs/decisions.md D52). A job survives a worker restart or a rebalance through the table: when a
worker recovers an `import_logs` partition, every import there that is still `pending` or
`processing` is sent to the jobs topic again and resumes (idempotently) on that worker.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

from aiokafka import AIOKafkaProducer
from faust.types import EventT, StreamT
from mode import Service

from agents.dead_letter import send_to_dead_letter
from core_app import log_context, topics
from core_app import stream_topics as faust_topics
from core_app.app import app
from core_app.components import Components
from core_app.customer_import.admission import admit
from core_app.customer_import.fetch import Download, open_file
from core_app.customer_import.job import ImportJob
from core_app.customer_import.run import ImportRun
from core_app.customer_import.shopify_source import open_shopify
from core_app.customer_import.store import PostgresCustomerRows
from core_app.domain.customer_import import FINAL_STATUSES, SHOPIFY_API
from core_app.kafka_security import client_options
from core_app.routing import key_partition
from core_app.security.flags import CUSTOMER_IMPORT
from core_app.settings import Settings
from tables.context import processing
from tables.customer_import_logs import import_logs_table

log = logging.getLogger(__name__)


class FaustJobIO:
    """ImportRun's view of the worker: the log table (in the job event's partition), topics, Redis."""

    def __init__(self, components: Components, event: EventT, producer: AIOKafkaProducer) -> None:
        runtime = components.runtime
        self.components = components
        self.event = event
        self.producer = producer
        self.runtime = runtime
        self.settings = runtime.settings
        self.rows = PostgresCustomerRows(runtime.pool)
        self.partitions = app.conf.topic_partitions

    def open_source(self, job: ImportJob) -> AbstractAsyncContextManager[Download]:
        if job.source == SHOPIFY_API:  # pulled from the Admin API, not downloaded
            return open_shopify(job, self.components.shopify)
        return open_file(job.file_url, self.settings)

    def save_log(self, state: dict[str, Any]) -> None:
        with processing(self.event):
            import_logs_table[state["import_id"]] = state

    async def publish_progress(self, message: dict[str, Any]) -> None:
        await faust_topics.updates.send(key=message["merchant_id"], value=json.dumps(message).encode())

    async def publish_created(self, records: list[dict[str, Any]]) -> None:
        """customer.created for a batch, appended to one Kafka batch per partition (see D53)."""
        codec, topic = self.runtime.codec, topics.CUSTOMER_CREATED
        partitions = len(await self.producer.partitions_for(topic))
        batches: dict[int, Any] = {}
        sent: list[asyncio.Future[Any]] = []
        for record in records:
            key = f"{record['merchant_id']}:{record['customer_id']}".encode()
            value = await codec.encode(topic, record)
            partition = key_partition(key.decode(), partitions)
            batch = batches.get(partition) or batches.setdefault(partition, self.producer.create_batch())
            if batch.append(key=key, value=value, timestamp=None) is None:  # full: send it, start another
                sent.append(await self.producer.send_batch(batch, topic, partition=partition))
                batch = batches[partition] = self.producer.create_batch()
                batch.append(key=key, value=value, timestamp=None)
        for partition, batch in batches.items():
            sent.append(await self.producer.send_batch(batch, topic, partition=partition))
        await asyncio.gather(*sent)

    async def seal_emails(self, merchant_id: str, pairs: list[tuple[str, str]]) -> dict[str, str | None]:
        return await self.components.security.data_keys.encrypt_emails(merchant_id, pairs)

    async def send_update(self, partition: int, command: dict[str, Any]) -> None:
        await faust_topics.import_commands.send(
            key=command["command_id"], value=json.dumps(command).encode(), partition=partition
        )

    async def import_enabled(self, merchant_id: str) -> bool:
        return await self.components.feature_flags.enabled(merchant_id, CUSTOMER_IMPORT)

    def reply_channel(self, import_id: str) -> str:
        return self.runtime.redis_key(f"reply:import:{import_id}")

    @asynccontextmanager
    async def replies(self, channel: str) -> AsyncIterator[AsyncIterator[dict[str, Any]]]:
        pubsub = self.runtime.redis.pubsub()
        await pubsub.subscribe(channel)

        async def messages() -> AsyncIterator[dict[str, Any]]:
            while True:
                message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
                if message is not None:
                    yield json.loads(message["data"])

        try:
            yield messages()
        finally:
            try:
                await pubsub.unsubscribe(channel)
            finally:
                await pubsub.aclose()


class ImportRunner(Service):
    """Runs import jobs as tasks, at most IMPORT_MAX_CONCURRENT at once; the rest wait `pending`."""

    def __init__(self, settings: Settings, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.settings = settings
        self.tasks: dict[str, tuple[asyncio.Task[None], int]] = {}
        self._slots: asyncio.Semaphore | None = None
        self.producer: AIOKafkaProducer | None = None
        self._producer_lock = asyncio.Lock()

    async def on_start(self) -> None:
        await self._ensure_producer()

    async def _ensure_producer(self) -> AIOKafkaProducer:
        # Bulk customer.created: Faust's per-message send costs ~180 us a message here (D53).
        async with self._producer_lock:
            if self.producer is None:
                producer = AIOKafkaProducer(
                    **client_options(self.settings),
                    client_id=f"{self.settings.worker_id}-imports",
                    acks="all",
                    linger_ms=5,
                    max_batch_size=1024 * 1024,
                )
                await producer.start()
                self.producer = producer
            return self.producer

    def running(self, import_id: str) -> bool:
        return import_id in self.tasks

    def submit(self, job: ImportJob, state: dict[str, Any], event: EventT) -> None:
        task = asyncio.create_task(self._run(job, state, event), name=f"import-{job.import_id}")
        self.tasks[job.import_id] = (task, event.message.partition)
        task.add_done_callback(lambda _task: self.tasks.pop(job.import_id, None))

    async def _run(self, job: ImportJob, state: dict[str, Any], event: EventT) -> None:
        log_context.bind(merchant_id=job.merchant_id)  # the run's own task: its lines only (D149)
        if self._slots is None:
            self._slots = asyncio.Semaphore(self.settings.import_max_concurrent)
        async with self._slots:
            try:
                producer = await self._ensure_producer()
                await ImportRun(job, state, FaustJobIO(app.components, event, producer)).run()
            except asyncio.CancelledError:
                log.info(
                    "import run stopped; it resumes where its partition goes",
                    extra={"import_id": job.import_id},
                )
                raise
            except Exception:
                log.exception("import run crashed", extra={"import_id": job.import_id})

    def revoke(self, partitions: set[int]) -> None:
        for import_id, (task, partition) in list(self.tasks.items()):
            if partition in partitions:
                log.info("import partition revoked; stopping the run", extra={"import_id": import_id})
                task.cancel()

    async def on_stop(self) -> None:
        tasks = [task for task, _ in self.tasks.values()]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=5)
        if self.producer is not None:
            await self.producer.stop()


runner = ImportRunner(app.core_settings)


async def on_partitions_revoked(_sender: Any, revoked: set[Any], **_kwargs: Any) -> None:
    runner.revoke({tp.partition for tp in revoked if tp.topic == topics.IMPORT_JOBS})


app.on_partitions_revoked.connect(on_partitions_revoked)


@import_logs_table.on_recover
async def resume_interrupted_imports() -> None:
    """Imports of this worker's partitions that were pending or running when they were interrupted."""
    for import_id, state in list(import_logs_table.items()):
        if (
            isinstance(state, dict)
            and state.get("status") not in FINAL_STATUSES
            and not runner.running(import_id)
        ):
            log.info("resuming an interrupted import", extra={"import_id": import_id})
            await faust_topics.import_jobs.send(key=import_id, value=ImportJob.from_state(state).to_json())


async def accept(event: EventT) -> None:
    try:
        job = ImportJob.from_json(event.value)
    except (ValueError, KeyError, TypeError) as exc:
        await send_to_dead_letter(event, "invalid", f"not an import job: {exc}")
        return
    with processing(event):
        state = import_logs_table.get(job.import_id)
    admitted = admit(job, state, runner.running(job.import_id))
    if admitted is None:
        return  # a replayed job, or one resumed and re-delivered at once
    if admitted is not state:
        with processing(event):
            import_logs_table[job.import_id] = admitted
    runner.submit(job, dict(admitted), event)


@app.agent(faust_topics.import_jobs, name="import-jobs")
async def import_jobs_agent(stream: StreamT) -> None:
    async for event in stream.events():
        await accept(event)
