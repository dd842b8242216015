"""bcrypt runs in threads below the event loop's priority (Linux), so hashing cannot delay it."""

from __future__ import annotations

import os
import sys
import threading

import pytest

from svc.passwords import WORKER_NICENESS, Passwords

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="per-thread nice is Linux's")


def nice_of(native_id: int) -> int:
    with open(f"/proc/self/task/{native_id}/stat") as stat:
        return int(stat.read().rsplit(")", 1)[1].split()[16])  # field 19: nice


async def test_hashing_threads_are_niced_and_the_loop_is_not():
    passwords = Passwords(rounds=4)
    loop_nice = nice_of(threading.get_native_id())
    try:
        assert (await passwords.verify("secret-1", await passwords.hash("secret-1")))[0]
        workers = [t for t in threading.enumerate() if t.name.startswith("bcrypt")]
        assert workers
        for worker in workers:
            assert nice_of(worker.native_id) == max(loop_nice, WORKER_NICENESS)
        assert nice_of(threading.get_native_id()) == loop_nice
        assert os.getpriority(os.PRIO_PROCESS, 0) == loop_nice
    finally:
        passwords.close()
