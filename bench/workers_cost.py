"""Where a PUT's CPU goes with ``WORKERS=2`` against ``WORKERS=1``: the counts behind the ratio.

    python bench/workers_cost.py --bursts 6 --database-url postgresql://…/svc_bench \
        --redis-url redis://127.0.0.1:6379/9 [--server 'python -m svc'] [--py-spy DIR]

Both servers up at once, as ``interleave.py`` runs them (Postgres storage, the Redis broker
with a prefix each), loaded by wrk's PUT script in bursts alternated A B B A …; per burst and
per PUT, over the whole process tree (parent and workers):

- ``cpu_us``: CPU time (``/proc``);
``--get`` loads GET instead (nothing published: what a second loop costs alone).

- ``syscalls``, ``epoll_waits``, ``epoll_pwaits`` (uvloop's), ``reads``, ``recvs``,
  ``writes``, ``sends``: system calls (``perf stat`` on the kernel's syscall tracepoints;
  counts, which a busy machine cannot move as it moves time).  An event-loop wake-up is
  one ``epoll_pwait``: fewer requests per wake-up show here;
- ``batches``, ``per_batch``: Redis publish pipelines per PUT and changes per pipeline
  (svc's own ``/metrics``, read outside the timed window);
- ``heard``: broker messages received per PUT over all workers (every worker is subscribed
  to the one channel and hears every change: 1 with one worker, 2 with two).

With ``--py-spy DIR``, one more burst per side is sampled by py-spy on every worker (raw
collapsed stacks in DIR, one file per worker: ``py-spy`` must be installed in the
environment running this script); those bursts are not counted.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from types import SimpleNamespace

from interleave import cpu_seconds
from load import WRK_GET, WRK_PUT, seed, wrk
from pair import start, stop

_FIRST_PORT = int(os.environ.get("BENCH_PORT", "18080"))
PORTS = {"a": _FIRST_PORT, "b": _FIRST_PORT + 1}
EVENTS = {
    "syscalls": "raw_syscalls:sys_enter",
    "epoll_waits": "syscalls:sys_enter_epoll_wait",
    "epoll_pwaits": "syscalls:sys_enter_epoll_pwait",
    "reads": "syscalls:sys_enter_read",
    "recvs": "syscalls:sys_enter_recvfrom",
    "writes": "syscalls:sys_enter_write",
    "sends": "syscalls:sys_enter_sendto",
}


def tree(pid: int) -> list[int]:
    """``pid`` and every process under it."""
    parents = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
                parents[int(entry)] = int(stat[1])
            except (OSError, IndexError, ValueError):
                continue
    family = {pid}
    grew = True
    while grew:
        children = {child for child, parent in parents.items() if parent in family}
        grew = not children <= family
        family |= children
    return sorted(family)


def metrics(port: int) -> dict[str, float]:
    """The Redis broker's publish counters and messages heard, summed over workers."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    sums: dict[str, float] = {}
    for name in ("publish_batches", "published"):
        values = re.findall(rf"^svc_broker_redis_{name}(?:{{[^}}]*}})? ([\d.e+]+)$", text, re.M)
        sums[name] = sum(float(v) for v in values)
    return sums


def burst(side: str, pid: int, args, load_args) -> dict:
    if side == "b" and args.b_concurrency:
        load_args = SimpleNamespace(**{**vars(load_args), "concurrency": args.b_concurrency})
    pids = tree(pid)
    counted = metrics(PORTS[side])
    perf = subprocess.Popen(
        ["perf", "stat", "-x,", "-p", ",".join(map(str, pids)), "-e", ",".join(EVENTS.values())],
        stderr=subprocess.PIPE,
        text=True,
    )
    time.sleep(0.2)  # perf attached
    before = cpu_seconds(pid)
    result = wrk(f"http://127.0.0.1:{PORTS[side]}", load_args.script, load_args)
    cpu = cpu_seconds(pid) - before
    perf.send_signal(2)
    counts = {}
    for line in perf.communicate()[1].splitlines():
        fields = line.split(",")
        if len(fields) > 2 and fields[2] in EVENTS.values() and fields[0].isdigit():
            counts[fields[2]] = int(fields[0])
    after = metrics(PORTS[side])
    puts = result["rps"] * load_args.duration
    per = {name: counts.get(event, 0) / puts for name, event in EVENTS.items()}
    batches = after["publish_batches"] - counted["publish_batches"]
    published = after["published"] - counted["published"]
    return {
        "rps": result["rps"],
        "p99_ms": result["p99_ms"],
        "cpu_us": round(cpu * 1e6 / puts, 1),
        **{name: round(value, 2) for name, value in per.items()},
        "batches": round(batches / puts, 3),
        "per_batch": round(published / batches, 2) if batches else None,
        # every worker is subscribed to the one channel, so each hears every change
        "heard": round(published * max(1, len(pids) - 1) / puts, 2),
    }


def profile(side: str, name: str, pid: int, args, load_args) -> None:
    """One burst with py-spy on every worker (or the one process)."""
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    workers = [p for p in tree(pid) if p != pid] or [pid]
    samplers = [
        subprocess.Popen(
            [
                py_spy,
                "record",
                "--nonblocking",
                "-r",
                "250",
                "-f",
                "raw",
                "-d",
                str(load_args.duration + 1),
                "-p",
                str(worker),
                "-o",
                str(Path(args.py_spy) / f"{name}-{worker}.txt"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for worker in workers
    ]
    time.sleep(0.5)
    wrk(f"http://127.0.0.1:{PORTS[side]}", load_args.script, load_args)
    for sampler in samplers:
        sampler.wait(30)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--bursts", type=int, default=6, help="bursts per side")
    parser.add_argument("--seconds", type=int, default=4)
    parser.add_argument("--users", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--server", default=f"{sys.executable} -m svc")
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--redis-url", required=True, help="without ?prefix: each side adds one")
    parser.add_argument(
        "--b-concurrency",
        type=int,
        help="wrk's connections against B alone (default --concurrency): B with one worker at "
        "half the connections loads its loop as each of A's two workers is loaded",
    )
    parser.add_argument("--a-workers", type=int, default=2)
    parser.add_argument("--b-workers", type=int, default=1)
    parser.add_argument("--env", action="append", default=[], help="NAME=VALUE for both sides")
    parser.add_argument("--get", action="store_true", help="GET instead of PUT (no broker)")
    parser.add_argument("--py-spy", metavar="DIR")
    parser.add_argument("--out")
    args = parser.parse_args()
    load_args = SimpleNamespace(
        users=args.users,
        concurrency=args.concurrency,
        duration=args.seconds,
        warmup=0,
        script=WRK_GET if args.get else WRK_PUT,
    )
    stamp = int(time.time())
    names = {"a": f"workers-{args.a_workers}", "b": f"workers-{args.b_workers}"}
    if args.b_concurrency:
        names = {
            "a": f"{names['a']}-c{args.concurrency}",
            "b": f"{names['b']}-c{args.b_concurrency}",
        }
    procs = {}
    for side, workers in (("a", args.a_workers), ("b", args.b_workers)):
        env = [
            f"WORKERS={workers}",
            "BCRYPT_ROUNDS=12",
            f"DATABASE_URL={args.database_url}",
            f"BROKER_URL={args.redis_url}?prefix=wcost{stamp}{side}",
            *args.env,
        ]
        procs[side] = start(args.server, env, PORTS[side])
    pairs = []
    try:
        for side in procs:
            asyncio.run(seed(f"http://127.0.0.1:{PORTS[side]}", args.users))
            wrk(f"http://127.0.0.1:{PORTS[side]}", load_args.script, load_args)  # warm-up
        if args.py_spy:
            os.makedirs(args.py_spy, exist_ok=True)
            for side in procs:
                profile(side, names[side], procs[side].pid, args, load_args)
        for number in range(args.bursts):
            order = ("a", "b") if number % 2 == 0 else ("b", "a")
            got = {side: burst(side, procs[side].pid, args, load_args) for side in order}
            pairs.append((got["a"], got["b"]))
            for side in ("a", "b"):
                print(f"burst {number + 1} {names[side]:>10} {json.dumps(got[side])}", flush=True)
    finally:
        for proc in procs.values():
            stop(proc)
    if args.out:
        with open(args.out, "a") as out:
            for a, b in pairs:
                out.write(json.dumps({"a_name": names["a"], "b_name": names["b"], "a": a, "b": b}))
                out.write("\n")
    print(f"\n{'per request':<12} {names['a'] + ' median':>18} {names['b'] + ' median':>18}   A/B")
    for key in ("rps", "p99_ms", "cpu_us", *EVENTS, "batches", "per_batch", "heard"):
        av = [a[key] for a, _ in pairs if a.get(key) is not None]
        bv = [b[key] for _, b in pairs if b.get(key) is not None]
        ratios = [a[key] / b[key] for a, b in pairs if a.get(key) and b.get(key)]
        if not av or not bv:
            continue
        ratio = f"{statistics.median(ratios):.3f}" if ratios else "-"
        print(f"{key:<12} {statistics.median(av):>18.2f} {statistics.median(bv):>18.2f}   {ratio}")


if __name__ == "__main__":
    main()
