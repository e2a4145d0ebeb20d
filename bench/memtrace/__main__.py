"""Compare a bench worker's memtrace snapshots: `python -m bench.memtrace DIR [FIRST] [LAST]`.

Prints the RSS and RocksDB samples, then what grew between two snapshots (the second and the last
by default), by line and by traceback.
"""

from __future__ import annotations

import json
import sys
import tracemalloc
from pathlib import Path


def main() -> None:
    directory = Path(sys.argv[1])
    for line in (directory / "samples.jsonl").read_text().splitlines():
        sample = json.loads(line)
        rocks = {
            name: {k.removeprefix("rocksdb."): v // 1024 for k, v in props.items() if v}
            for name, props in sample["rocksdb"].items()
        }
        print(sample["n"], sample["status"], "rocksdb KiB:", rocks)
    snaps = sorted(directory.glob("snap-*.pickle"))
    first = Path(sys.argv[2]) if len(sys.argv) > 2 else snaps[min(1, len(snaps) - 1)]
    last = Path(sys.argv[3]) if len(sys.argv) > 3 else snaps[-1]
    old, new = (tracemalloc.Snapshot.load(str(p)) for p in (first, last))
    print(f"\ntraced: {old_total(old) / 2**20:.1f} MiB -> {old_total(new) / 2**20:.1f} MiB")
    print(f"\n== top growth by line, {first.name} -> {last.name}")
    for stat in new.compare_to(old, "lineno")[:25]:
        print(stat)
    print("\n== top growth by traceback")
    for stat in new.compare_to(old, "traceback")[:8]:
        print(f"\n{stat.size_diff / 2**20:+.1f} MiB, {stat.count_diff:+} blocks")
        for frame in stat.traceback.format()[-16:]:
            print("   ", frame)
    print("\n== largest now by line")
    for stat in new.statistics("lineno")[:15]:
        print(stat)


def old_total(snapshot: tracemalloc.Snapshot) -> int:
    return sum(stat.size for stat in snapshot.statistics("filename"))


if __name__ == "__main__":
    main()
