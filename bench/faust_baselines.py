"""Bare Faust agents, the baselines of bench/ingest.py: `count` only counts, `table` writes every
message into a RocksDB table. Prints one JSON line with the rate over the first `n` messages and exits.

Both use the worker's own transport settings (fetch wait, linger), so the comparison is like for like.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import uuid

import faust

from core_app.broker_watch import BrokerWatch
from core_app.kafka_transport import CoreTransport, set_fetch_max_wait_ms


class BenchApp(faust.App):
    def _new_transport(self) -> CoreTransport:
        return CoreTransport(self.conf.broker_consumer, self)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=["count", "table"])
    parser.add_argument("--broker", required=True)
    parser.add_argument("--topic", required=True)
    parser.add_argument("--n", type=int, required=True)
    parser.add_argument("--partitions", type=int, required=True)
    parser.add_argument("--datadir", required=True)
    parser.add_argument("--fetch-max-wait-ms", type=int, default=100)
    args = parser.parse_args()
    set_fetch_max_wait_ms(args.fetch_max_wait_ms)
    app = BenchApp(
        f"bench-{args.mode}-{uuid.uuid4().hex[:6]}",
        broker=args.broker,
        store="rocksdb://" if args.mode == "table" else "memory://",
        datadir=args.datadir,
        topic_partitions=args.partitions,
        web_enabled=False,
        consumer_auto_offset_reset="earliest",
        broker_session_timeout=10,
        broker_rebalance_timeout=5,
        broker_heartbeat_interval=1,
        producer_linger=0.005,
        table_standby_replicas=0,
    )
    # CoreTransport's consumer reports commits and committed reads to the app's broker watch.
    app.broker_watch = BrokerWatch(hold_seconds=60, membership_grace=60)  # type: ignore[attr-defined]
    topic = app.topic(args.topic, key_type=str, key_serializer="raw", value_serializer="raw")
    table = app.Table("bench", default=None, key_type=str, value_type=bytes) if args.mode == "table" else None
    seen = {"n": 0, "t0": 0.0, "cpu0": 0.0}

    def finish() -> None:
        elapsed = time.perf_counter() - seen["t0"]
        cpu = time.process_time() - seen["cpu0"]  # all threads of this process
        report = {"mode": args.mode, "messages": seen["n"], "seconds": elapsed, "cpu_seconds": cpu}
        print(json.dumps(report), flush=True)
        os._exit(0)

    @app.agent(topic)
    async def consume(stream: faust.StreamT) -> None:
        async for event in stream.events():
            if seen["n"] == 0:
                seen["t0"] = time.perf_counter()
                seen["cpu0"] = time.process_time()
            if table is not None:
                table[event.key] = event.value
            seen["n"] += 1
            if seen["n"] >= args.n:
                finish()

    sys.argv = [sys.argv[0], "worker", "-l", "warn", "--without-web"]
    app.main()


if __name__ == "__main__":
    main()
