"""Two servers up at once, loaded in short alternating bursts: a ratio that a noisy machine
cannot move much.

    python bench/interleave.py --scenario get --bursts 20 --seconds 2 \
        --a 'python -m svc' --a-env DATABASE_URL=postgresql://… \
        --b 'python bench/ceilings/pg.py --port {port} --dsn postgresql://…' [--out FILE]

``pair.py`` runs each side on fresh processes for a 10 s round; on a shared machine whose
speed drifts by 2× over tens of seconds (seen here), three such rounds can disagree more
than the two servers do.  Here both sides stay up (A on 18080, B on 18081, or from
``BENCH_PORT``), each is seeded
once, and wrk (the same script as ``load.py``'s) loads them in bursts of ``--seconds``,
ordered A B B A A B … so a drift favours neither.  Per figure, it prints the median of the
per-burst values and the median of the ratios of each neighbouring A/B pair of bursts;
``cpu_us`` is the server's own CPU time per request over a burst (from ``/proc``; with
``WORKERS``, the parent's and its workers').
Both servers share the last CPU and wrk gets the others (:func:`pin`; ``--no-pin``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import time
from pathlib import Path
from types import SimpleNamespace

from load import WRK_GET, WRK_PUT, seed, wrk
from pair import add_server_options, start, stop

#: BENCH_PORT and the next: other ports when several people benchmark on one machine.
_FIRST_PORT = int(os.environ.get("BENCH_PORT", "18080"))
PORTS = {"a": _FIRST_PORT, "b": _FIRST_PORT + 1}


def cpu_seconds(pid: int) -> float:
    """The server's CPU time: the process's and, for ``WORKERS``, that of every process
    under it (its workers), alive now."""
    family = {pid}
    parents = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                parents[int(entry)] = int(_stat(int(entry))[1])
            except (OSError, IndexError, ValueError):  # gone as we looked
                continue
    grew = True
    while grew:
        children = {child for child, parent in parents.items() if parent in family}
        grew = not children <= family
        family |= children
    total = 0.0
    for member in family:
        try:
            fields = _stat(member)
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / 100  # utime + stime, in clock ticks
    return total


def _stat(pid: int) -> list[str]:
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def pin(servers) -> None:
    """Both servers on the last CPU, wrk (started from here) on the others.

    Left to the kernel, each server process settles on a core for its whole life, and the
    one that shares its core with wrk is slower throughout: the same svc against itself
    read 0.91 and 1.09 in two runs on a 2-core machine.  Pinned, both servers share the
    same core, and only Postgres (when in use) still runs wherever it is placed."""
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        return
    for proc in servers:
        for task in os.listdir(f"/proc/{proc.pid}/task"):  # every thread started so far
            os.sched_setaffinity(int(task), {cpus[-1]})
    os.sched_setaffinity(0, set(cpus[:-1]))  # this process, and the wrk it starts


def burst(side: str, pid: int, script: str, args) -> dict:
    before = cpu_seconds(pid)
    started = time.monotonic()
    result = wrk(f"http://127.0.0.1:{PORTS[side]}", script, args)
    elapsed = time.monotonic() - started
    requests = result["rps"] * args.duration
    result["cpu_us"] = round((cpu_seconds(pid) - before) * 1e6 / requests, 1) if requests else None
    result["elapsed_s"] = round(elapsed, 2)
    return result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--scenario", choices=("get", "put"), required=True)
    parser.add_argument("--bursts", type=int, default=20, help="bursts per side")
    parser.add_argument("--seconds", type=int, default=2)
    parser.add_argument("--users", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument(
        "--no-pin", dest="pin", action="store_false", help="let the kernel place the processes"
    )
    add_server_options(parser)
    args = parser.parse_args()
    load_args = SimpleNamespace(
        users=args.users, concurrency=args.concurrency, duration=args.seconds, warmup=0
    )
    script = WRK_GET if args.scenario == "get" else WRK_PUT
    procs = {
        "a": start(args.a, args.a_env, PORTS["a"]),
        "b": start(args.b, args.b_env, PORTS["b"]),
    }
    names = {"a": args.a_name, "b": args.b_name}
    if args.pin:
        pin(procs.values())
    try:
        for side in procs:
            asyncio.run(seed(f"http://127.0.0.1:{PORTS[side]}", args.users))
            burst(side, procs[side].pid, script, load_args)  # warm-up, not counted
        pairs = []
        for number in range(args.bursts):
            order = ("a", "b") if number % 2 == 0 else ("b", "a")
            got = {side: burst(side, procs[side].pid, script, load_args) for side in order}
            pairs.append((got["a"], got["b"]))
            print(f"burst {number + 1}: {names['a']} {json.dumps(got['a'])}")
            print(f"{'':>{len(str(number + 1)) + 7}} {names['b']} {json.dumps(got['b'])}")
    finally:
        for proc in procs.values():
            stop(proc)
    if args.out:
        with open(args.out, "a") as out:
            for a, b in pairs:
                line = {"a_name": args.a_name, "b_name": args.b_name, "a": a, "b": b}
                out.write(json.dumps(line) + "\n")
    print(f"\n{'figure':<10} {args.a_name + ' median':>16} {args.b_name + ' median':>16}   A/B")
    for key in ("rps", "p50_ms", "p99_ms", "cpu_us", "errors"):
        av = [a[key] for a, _ in pairs if a.get(key) is not None]
        bv = [b[key] for _, b in pairs if b.get(key) is not None]
        ratios = [a[key] / b[key] for a, b in pairs if a.get(key) and b.get(key)]
        ratio = f"{statistics.median(ratios):.3f}" if ratios else "-"
        a_median, b_median = statistics.median(av), statistics.median(bv)
        print(f"{key:<10} {a_median:>16,.1f} {b_median:>16,.1f}   {ratio}")


if __name__ == "__main__":
    main()
