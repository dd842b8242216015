"""A rolling restart through each shipped balancer configuration, as clients see it.

    python bench/rolling_restart.py --database-url URL [--rounds 3] [--clients 100]
        [--variants nginx,haproxy,nginx-max_fails-1-naive,...]  (names: VARIANTS below)

Each round runs every variant once, in an order that alternates between rounds: two
``python -m svc`` on Postgres (storage and broker), the balancer in front, a writer doing a
PUT every 50 ms and ``--clients`` WebSocket members that reconnect with jittered backoff
(tests/rolling_restart.py, the test's own code); then each process in turn gets SIGTERM,
starts again on its port, and the next waits until the balancer sends to it.  Printed per
variant, medians over rounds (and over the two restarts of a round):

- failed writes (5xx or connection errors) of all writes;
- drop: seconds from SIGTERM to the first client losing its socket (the drain);
- whole: seconds from SIGTERM until every client is connected again;
- back: whole - drop, the time clients were not whole;
- stale: clients not connected or not at the last version when the roll was over;
- behind welcome: `profile_updated` frames at or below the version the welcome had listed.

Variants: ``nginx`` and ``haproxy`` are deploy/ as shipped (DRAIN_SECONDS=5);
``nginx-max_fails-1`` is the shipped nginx file without ``max_fails=0`` (nginx's default
passive check, the trap docs/deploy.md warns of); ``*-drain-0`` are the shipped files with
``DRAIN_SECONDS=0``; ``*-naive`` restart the next process as soon as the last one is ready on
its own port, without waiting for the balancer to send to it (``whole`` is then measured
for the last restart only: the writer and clients are checked at the end).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from balancer_helpers import HAProxy, Nginx  # noqa: E402
from rolling_restart import RollResult, rolling_restart  # noqa: E402
from svc_process import SvcProcess  # noqa: E402


class NginxDefaultPassiveCheck(Nginx):
    """The shipped file less ``max_fails=0``: nginx's max_fails=1 fail_timeout=10s."""

    def write_config(self) -> None:
        super().write_config()
        site = self.directory / "svc.conf"
        site.write_text(site.read_text().replace(" max_fails=0", ""))


#: name: (balancer, DRAIN_SECONDS, wait for the balancer before the next restart)
VARIANTS = {
    "nginx": (Nginx, "5", True),
    "haproxy": (HAProxy, "5", True),
    "nginx-max_fails-1": (NginxDefaultPassiveCheck, "5", True),
    "nginx-drain-0": (Nginx, "0", True),
    "haproxy-drain-0": (HAProxy, "0", True),
    "nginx-naive": (Nginx, "5", False),
    "haproxy-naive": (HAProxy, "5", False),
    "haproxy-naive-drain-0": (HAProxy, "0", False),
    "nginx-max_fails-1-naive": (NginxDefaultPassiveCheck, "5", False),
    "nginx-max_fails-1-naive-drain-0": (NginxDefaultPassiveCheck, "0", False),
}


async def one(variant: str, database_url: str, clients: int, work: Path) -> dict:
    balancer_cls, drain, wait_for_balancer = VARIANTS[variant]
    env = {"DATABASE_URL": database_url, "DRAIN_SECONDS": drain}
    processes = [SvcProcess(env, work / f"svc{i}.log") for i in (1, 2)]
    await asyncio.gather(*(p.start() for p in processes))
    balancer = balancer_cls(work / variant, [p.port for p in processes])
    result = RollResult()
    error = None
    try:
        await balancer.start()
        await rolling_restart(
            balancer, processes, clients, result=result, wait_for_balancer=wait_for_balancer
        )
    except AssertionError as exc:  # a wait gave up: what was seen until then still counts
        error = str(exc).splitlines()[0]
    finally:
        await balancer.stop()
        await asyncio.gather(*(p.stop() for p in processes))
    restarts = [r for r in result.restarts if r.first_drop is not None and r.whole is not None]
    return {
        "variant": variant,
        "writes": result.writes,
        "failed_writes": len(result.failed_writes),
        "failure_sample": [f[:60] for f in result.failed_writes[:3]],
        "drop": [round(r.first_drop, 2) for r in restarts],
        "whole": [round(r.whole, 2) for r in restarts],
        "back": [round(r.whole - r.first_drop, 2) for r in restarts],
        "exited": [round(r.exited, 2) for r in result.restarts],
        "ready": [round(r.ready, 2) for r in result.restarts],
        "balanced": [round(r.balanced, 2) for r in result.restarts],
        "stale": len(result.stale()) if result.final_version else None,
        "problems": len(result.problems()),
        "problem_sample": result.problems()[:3],
        "behind_welcome": result.behind_welcome(),
        "gave_up": error,
    }


def median(values: list[float]) -> str:
    return f"{statistics.median(values):.2f}" if values else "-"


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--clients", type=int, default=100)
    parser.add_argument("--variants", default="nginx,haproxy")
    args = parser.parse_args()
    variants = args.variants.split(",")
    runs: dict[str, list[dict]] = {v: [] for v in variants}
    with tempfile.TemporaryDirectory() as tmp:
        for round_ in range(args.rounds):
            order = variants if round_ % 2 == 0 else variants[::-1]  # alternated
            for variant in order:
                work = Path(tmp) / f"{round_}-{variant}"
                work.mkdir()
                run = await one(variant, args.database_url, args.clients, work)
                print(json.dumps(run), flush=True)
                runs[variant].append(run)
    print()
    print("| variant | failed / writes | drop s | whole s | back s | stale | behind welcome |")
    print("|---|---|---|---|---|---|---|")
    for variant, rows in runs.items():
        failed = sum(r["failed_writes"] for r in rows)
        writes = sum(r["writes"] for r in rows)
        drop = [x for r in rows for x in r["drop"]]
        whole = [x for r in rows for x in r["whole"]]
        back = [x for r in rows for x in r["back"]]
        stale = [r["stale"] for r in rows]
        gave_up = sum(1 for r in rows if r["gave_up"])
        print(
            f"| {variant} | {failed} / {writes} | {median(drop)} | {median(whole)} | "
            f"{median(back)} | {stale}{f' ({gave_up} gave up)' if gave_up else ''} | "
            f"{sum(r['behind_welcome'] for r in rows)} |"
        )


if __name__ == "__main__":
    asyncio.run(main())
