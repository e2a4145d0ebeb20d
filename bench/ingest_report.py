"""The ratios of bench/ingest.py, printed last: per round, then the range (issue 21's targets)."""

from __future__ import annotations

from bench.ingest import section

B2 = "b'"
C_B2, C_B = 2.0, 1.0  # issue 21: (c)/(b') and (c)/(b)
CATCH_UP_S = 1.0
RSS_MIB = 256


def verdict(value: float, target: float, *, at_most: bool = False) -> str:
    met = value <= target if at_most else value >= target
    return "met" if met else "MISSED"


def ranged(values: list[float], digits: int = 2) -> str:
    """`last (rounds a b c)`: the latest round first, every round after it."""
    rounds = " ".join(f"{v:.{digits}f}" for v in values)
    return (
        f"{values[-1]:.{digits}f} (rounds {rounds}; range {min(values):.{digits}f}-{max(values):.{digits}f})"
    )


def report(rounds: list[dict[str, float]], *, baselines: bool) -> None:
    section("ratios (same run, same Tansu; each round's baselines against its own (c))")
    last = rounds[-1]
    if baselines:
        c_b2 = [r["c"] / r["b'"] for r in rounds]
        c_b = [r["c"] / r["b"] for r in rounds]
        cpu = [r["cpu b'"] / r["cpu c"] for r in rounds]
        cpu_b = [r["cpu b"] / r["cpu c"] for r in rounds]
        print(f"(b)  bare Faust count / raw aiokafka = {ranged([r['b'] / r['a'] for r in rounds], 3)}")
        print(f"(c)  pipeline / (b')  = {ranged(c_b2)}  target >= {C_B2}: {verdict(min(c_b2), C_B2)}")
        print(f"(c)  pipeline / (b)   = {ranged(c_b)}  target >= {C_B}: {verdict(min(c_b), C_B)}")
        # CPU time per event is far less sensitive to other load on the machine than the rates.
        print(f"(c)  CPU per event, (b') / worker = {ranged(cpu)}; (b) / worker = {ranged(cpu_b)}")
    else:
        print(f"(c)  pipeline = {ranged([r['c'] for r in rounds], 0)} events/s")
        print(f"(c)  worker CPU per event = {ranged([r['cpu c'] for r in rounds], 0)} us")
    if "c0" in last:
        c0 = [r["c"] / r["c0"] for r in rounds]
        print(f"(c)  batched / (c0) the agents' path = {ranged(c0)}")
        print(f"(c)  CPU per event, (c0) / (c) = {ranged([r['cpu c0'] / r['cpu c'] for r in rounds])}")
        if baselines:
            print(f"(c0) agents' path / (b') = {ranged([r['c0'] / r[B2] for r in rounds])}")
    catch_up = [r["d"] for r in rounds]
    d_verdict = verdict(max(catch_up), CATCH_UP_S, at_most=True)
    print(f"(d)  sink catch-up = {ranged(catch_up, 1)} s  target < {CATCH_UP_S:.0f} s: {d_verdict}")
    if "c'" in last:
        from bench.ingest_crc32 import report_crc32

        report_crc32(last)
    if "e" in last:
        e_verdict = verdict(last["e"], RSS_MIB, at_most=True)
        print(f"(e)  peak RSS = {last['e']:.0f} MiB  target <= {RSS_MIB} MiB: {e_verdict}")
