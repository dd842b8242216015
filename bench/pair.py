"""Two servers, alternated A B A B … on fresh processes, one scenario each round.

    python bench/pair.py --scenario get --rounds 3 \
        --a 'python -m svc' --a-env DATABASE_URL=memory:// \
        --b 'python bench/ceilings/bare.py --port {port}' [--out results.jsonl] [-- LOAD ARGS]

Each command runs with PORT={port} in its environment and ``{port}`` replaced in its text.
``--b-load ARG`` (or ``--a-load``) passes ARG to load.py for that side alone (a peer's
``--protocol socketio``).  ``--require FIGURE=MAX`` makes it a guard: exit status 1 when
the median ratio A/B of FIGURE is above MAX (or missing).
Prints each round, then per figure: the median and min–max of each side and the median of
the per-round ratios A/B (the figure to quote: absolute numbers move between runs on a
shared machine, a ratio measured side by side does not).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import signal
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

LOAD = Path(__file__).with_name("load.py")
#: BENCH_PORT: another free port when several people benchmark on one machine.
PORT = int(os.environ.get("BENCH_PORT", "18080"))


def start(command: str, env: list[str], port: int) -> subprocess.Popen:
    environ = {**os.environ, "PORT": str(port), "HOST": "127.0.0.1"}
    environ.update(item.split("=", 1) for item in env)
    proc = subprocess.Popen(
        shlex.split(command.replace("{port}", str(port))),
        env=environ,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=1) as response:
                if response.status == 200:
                    return proc
        except OSError:
            time.sleep(0.1)
    proc.kill()
    sys.exit(f"{command!r} did not start")


def stop(proc: subprocess.Popen) -> None:
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(20)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def run(side: str, command: str, env: list[str], args, extra: list[str]) -> dict:
    proc = start(command, env, PORT)
    try:
        out = subprocess.run(
            [
                sys.executable,
                str(LOAD),
                args.scenario,
                "--base",
                f"http://127.0.0.1:{PORT}",
                "--pid",
                str(proc.pid),
                *extra,
            ],
            capture_output=True,
            text=True,
            timeout=600,
        )
    finally:
        stop(proc)
    if out.returncode != 0:
        sys.exit(f"load.py failed against {side}:\n{out.stderr}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def num(value: float) -> str:
    return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.3g}"


def add_server_options(parser: argparse.ArgumentParser) -> None:
    """The two servers (command, name, environment) and the results file: pair.py's and
    interleave.py's."""
    for side in ("a", "b"):
        parser.add_argument(f"--{side}", required=True, help="command; {port} is its port")
        parser.add_argument(f"--{side}-name", default=side.upper())
        parser.add_argument(f"--{side}-env", action="append", default=[], help="NAME=VALUE")
    parser.add_argument("--out")


def main() -> None:
    argv = sys.argv[1:]
    extra = argv[argv.index("--") + 1 :] if "--" in argv else []
    argv = argv[: argv.index("--")] if "--" in argv else argv
    parser = argparse.ArgumentParser()
    parser.add_argument("--scenario", required=True)
    parser.add_argument("--rounds", type=int, default=3)
    add_server_options(parser)
    for side in ("a", "b"):
        parser.add_argument(f"--{side}-load", action="append", default=[], help="a load.py arg")
    parser.add_argument("--require", action="append", default=[], help="FIGURE=MAX ratio A/B")
    args = parser.parse_args(argv)
    rounds = []
    for number in range(1, args.rounds + 1):
        a = run(args.a_name, args.a, args.a_env, args, [*args.a_load, *extra])
        b = run(args.b_name, args.b, args.b_env, args, [*args.b_load, *extra])
        rounds.append((a, b))
        print(
            f"round {number}: {args.a_name} {json.dumps(a)}\n         {args.b_name} {json.dumps(b)}"
        )
        if args.out:
            with open(args.out, "a") as out:
                out.write(
                    json.dumps(
                        {
                            "round": number,
                            "a": a,
                            "b": b,
                            "a_name": args.a_name,
                            "b_name": args.b_name,
                        }
                    )
                    + "\n"
                )
    keys = [
        k for k, v in rounds[0][0].items() if isinstance(v, (int, float)) and k != "server_cpu_s"
    ]
    a_head, b_head = f"{args.a_name} median [min-max]", f"{args.b_name} median [min-max]"
    print(f"\n{'figure':<16} {a_head:<30} {b_head:<30} A/B")
    medians: dict[str, float] = {}
    for key in keys:
        av = [a[key] for a, _ in rounds if a.get(key) is not None]
        bv = [b[key] for _, b in rounds if b.get(key) is not None]
        ratios = [a[key] / b[key] for a, b in rounds if a.get(key) and b.get(key)]
        if not av or not bv:
            continue
        fmt = lambda v: f"{num(statistics.median(v))} [{num(min(v))}-{num(max(v))}]"  # noqa: E731
        ratio = f"{statistics.median(ratios):.3f}" if ratios else "-"
        print(f"{key:<16} {fmt(av):<30} {fmt(bv):<30} {ratio}")
        if ratios:
            medians[key] = statistics.median(ratios)
    failed = []
    for rule in args.require:
        key, limit = rule.split("=")
        verdict = "ok" if medians.get(key, float("inf")) <= float(limit) else "FAILED"
        print(f"require {key} A/B <= {limit}: {medians.get(key, 'missing')} {verdict}")
        if verdict != "ok":
            failed.append(key)
    if failed:
        sys.exit(1)


if __name__ == "__main__":
    main()
