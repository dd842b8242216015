"""Instructions per request, counted by callgrind: the figure a shared, noisy machine cannot
move (±0.1k per cached GET on memory), for changes too small for req/s to show.

    python bench/instructions.py [--path /users/u1] [--warm 500] [--count 2000] \
        [--put] [--clients 1] [--env PYTHONPATH=/a/snapshot/of/svc] \
        [--env BROKER_URL=redis://...] [--server SCRIPT ARGS] [--keep DIR] ...

Starts ``python -m svc`` (memory storage) under ``valgrind --tool=callgrind
--instr-atstart=no``, creates user ``u1``, sends ``--warm`` GETs of ``--path`` from one
keep-alive client, switches counting on (``callgrind_control -i on``), sends ``--count``
more, switches it off, and prints the server's instructions per request.  ``--put``
sends ``PUT /users/u1/profile`` instead (a bio that alternates, so each one is a change:
storage, broker and rooms all run; with ``--env BROKER_URL=redis://...`` the Redis broker's
publish and its own echo count too, Redis's own work does not).
``--clients N`` sends from N keep-alive connections at once (threads; with ``--put`` each
its own user ``u1``..``uN``), so the server batches as under load.  Compare two
commits by running it with ``--env PYTHONPATH=`` pointing at a ``git archive`` of each;
``--server 'bench/ceilings/bare.py --port {port} --uvloop'`` counts another server the
same way (a script path, run by this Python), and ``--keep DIR`` keeps callgrind's output
for ``callgrind_annotate``.
"""

from __future__ import annotations

import argparse
import http.client
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_up(port: int, proc: subprocess.Popen, seconds: float = 180) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            sys.exit("the server exited under valgrind")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            conn.request("GET", "/")
            if conn.getresponse().status == 200:
                return
        except OSError:
            time.sleep(0.5)
    sys.exit("svc did not start under valgrind")


def requests(
    conn: http.client.HTTPConnection, path: str, count: int, put: bool = False, user: int = 1
) -> None:
    for n in range(count):
        if put:
            body = b'{"bio": "%d"}' % (n % 2)
            headers = {"Content-Type": "application/json"}
            conn.request("PUT", f"/users/u{user}/profile", body=body, headers=headers)
        else:
            conn.request("GET", path)
        response = conn.getresponse()
        response.read()
        assert response.status < 500, response.status  # a 404 is a figure too


def server_command(server: str, port: int) -> list[str]:
    """``--server``'s script and arguments; the script's path is made absolute, as the server
    runs in a folder of its own."""
    script, *rest = shlex.split(server.replace("{port}", str(port)))
    return [str(Path(script).resolve()), *rest]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--path", default="/users/u1")
    parser.add_argument("--warm", type=int, default=500)
    parser.add_argument("--count", type=int, default=2000)
    parser.add_argument("--put", action="store_true", help="PUT /users/u1/profile, not GET")
    parser.add_argument("--clients", type=int, default=1, help="connections sending at once")
    parser.add_argument("--env", action="append", default=[], help="NAME=VALUE for svc")
    parser.add_argument("--server", help="a script and its args instead of -m svc; {port}")
    parser.add_argument("--keep", help="copy callgrind's output to this directory")
    args = parser.parse_args()
    port = free_port()
    # vgdb (callgrind_control) names its pipes after the user: give it one where none is set.
    env = {**os.environ, "USER": os.environ.get("USER") or "svc", "PORT": str(port)}
    env.update({"HOST": "127.0.0.1", "DATABASE_URL": "memory://", "DRAIN_SECONDS": "0"})
    env.update(item.split("=", 1) for item in args.env)
    with tempfile.TemporaryDirectory() as work:
        out = Path(work) / "callgrind.out"
        proc = subprocess.Popen(
            [
                "valgrind",
                "--tool=callgrind",
                "--instr-atstart=no",
                f"--callgrind-out-file={out}",
                sys.executable,
                *(server_command(args.server, port) if args.server else ["-m", "svc"]),
            ],
            env=env,
            cwd=work,  # not the checkout: svc is imported from where PYTHONPATH says
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        try:
            wait_up(port, proc)
            conns = [
                http.client.HTTPConnection("127.0.0.1", port, timeout=120)
                for _ in range(args.clients)
            ]
            for user, conn in enumerate(conns, 1):
                conn.request(
                    "PUT",
                    f"/users/u{user}/profile",
                    body=b'{"username": "user%d"}' % user,
                    headers={"Content-Type": "application/json"},
                )
                conn.getresponse().read()

            def send(count: int) -> None:
                share = count // args.clients
                with ThreadPoolExecutor(args.clients) as pool:
                    futures = [
                        pool.submit(requests, conn, args.path, share, args.put, user)
                        for user, conn in enumerate(conns, 1)
                    ]
                for future in futures:
                    future.result()  # a failed request fails the run

            send(args.warm)
            subprocess.run(["callgrind_control", "-i", "on", str(proc.pid)], check=True, env=env)
            send(args.count)
            subprocess.run(["callgrind_control", "-i", "off", str(proc.pid)], check=True, env=env)
            for conn in conns:
                conn.close()
        finally:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(120)
        if args.keep:
            for name in Path(work).glob("callgrind.out*"):
                shutil.copy(name, args.keep)
        total = 0
        for name in Path(work).glob("callgrind.out*"):
            for line in name.read_text().splitlines():
                if line.startswith("totals:"):  # "summary:" is 0 with --instr-atstart=no
                    total += int(line.split()[1])
                    break
    what = "PUT /users/u1/profile" if args.put else args.path
    counted = args.count // args.clients * args.clients
    print(f"{what}: {total / counted / 1000:.1f}k instructions per request")


if __name__ == "__main__":
    main()
