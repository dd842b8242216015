"""svc under a real Gunicorn (``aiohttp.GunicornWebWorker``): ``svc.app:app_from_env``
reads the environment as ``python -m svc`` does, and no entry point falls back to defaults."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
import pytest
from svc_process import free_port
from test_workers import answering_pids, fresh, metrics_until, summed

from svc.app import create_app
from svc.testing import unique_id

pytestmark = pytest.mark.topology  # what runs around svc: once per CI run, not per Python

CREATED = 'svc_http_request_duration_seconds_count{method="POST",route="/users",status="201"}'
GUNICORN = [sys.executable, "-m", "gunicorn", "--worker-class", "aiohttp.GunicornWebWorker"]


async def gunicorn(target: str, env: dict[str, str], log: Path, workers: int = 2):
    """Gunicorn serving ``target`` on a free port: (process, base URL)."""
    port = free_port()
    with open(log, "ab") as out:  # noqa: ASYNC230 - the child keeps it
        proc = await asyncio.create_subprocess_exec(
            *GUNICORN,
            "--workers",
            str(workers),
            "--bind",
            f"127.0.0.1:{port}",
            "--graceful-timeout",
            "10",
            target,
            # TMPDIR: the directory its workers share their metrics in goes with the test.
            env={**os.environ, "BCRYPT_ROUNDS": "4", "TMPDIR": str(log.parent), **env},
            stdout=out,
            stderr=out,
            cwd=log.parent,  # its control socket and any file it leaves: in tmp_path
            start_new_session=True,
        )
    return proc, f"http://127.0.0.1:{port}"


async def until_answering(proc, base: str, log: Path, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            status, _, _ = await fresh("GET", base + "/health/ready")
            if status == 200:
                return
        except aiohttp.ClientError:
            pass
        assert proc.returncode is None, log.read_text()  # noqa: ASYNC240
        assert time.monotonic() < deadline, log.read_text()  # noqa: ASYNC240
        await asyncio.sleep(0.2)


async def stop(proc) -> int:
    if proc.returncode is None:
        proc.send_signal(signal.SIGTERM)
    try:
        return await asyncio.wait_for(proc.wait(), 30)
    except asyncio.TimeoutError:
        os.killpg(proc.pid, signal.SIGKILL)
        return await proc.wait()


@pytest.mark.postgres
async def test_two_gunicorn_workers_serve_one_service_in_svc_s_log_format(postgres_url, tmp_path):
    log = tmp_path / "gunicorn.log"
    env = {"DATABASE_URL": postgres_url, "LOG_FORMAT": "json", "ACCESS_LOG": "true"}
    proc, base = await gunicorn("svc.app:app_from_env", env, log)
    try:
        await until_answering(proc, base, log)
        pids = await answering_pids(base, tries=400)  # both booted (a slow box: one first)
        assert len(pids) == 2, pids
        for _ in range(20):  # what one worker writes, the next reads: never memory storage
            user_id = unique_id()
            status, _, _ = await fresh(
                "POST", f"{base}/users", json={"id": user_id, "username": user_id}
            )
            assert status == 201
            status, _, body = await fresh("GET", f"{base}/users/{user_id}")
            assert status == 200 and body["id"] == user_id

        # /metrics answers for both workers: counters summed, gauges labelled by pid.
        text = await metrics_until(base, CREATED, 20)
        assert all(f'svc_websocket_connections{{worker="{pid}"}}' in text for pid in pids), text
        created = summed(text, CREATED)
        assert created == 20, text
    finally:
        assert await stop(proc) == 0, log.read_text()
    # svc's own lines (start-up, access log) are JSON objects, one a line; Gunicorn's
    # own lines keep Gunicorn's format.
    lines = [line for line in log.read_text().splitlines() if line.startswith("{")]
    records = [json.loads(line) for line in lines]
    messages = [r["message"] for r in records]
    assert sum(m == "storage: postgresql; broker: postgresql" for m in messages) == 2
    assert any(r.get("path") == "/users" and r.get("status") == 201 for r in records)
    assert "Traceback" not in log.read_text()


async def test_a_bad_setting_stops_gunicorn_with_the_one_line(tmp_path):
    log = tmp_path / "gunicorn.log"
    proc, _ = await gunicorn("svc.app:app_from_env", {"BCRYPT_ROUNDS": "99"}, log, workers=1)
    assert await asyncio.wait_for(proc.wait(), 30) != 0
    text = log.read_text()
    said = [line for line in text.splitlines() if line.startswith("svc: error:")]
    assert said == ["svc: error: BCRYPT_ROUNDS: must be a whole number from 4 to 31, got '99'"]
    assert "Traceback" not in text, text


async def test_create_app_with_no_settings_is_refused_pointing_to_app_from_env(tmp_path):
    with pytest.raises(TypeError, match="svc.app:app_from_env"):
        create_app()
    log = tmp_path / "gunicorn.log"
    proc, _ = await gunicorn("svc.app:create_app()", {}, log, workers=1)
    assert await asyncio.wait_for(proc.wait(), 30) != 0  # never serves memory in silence
    assert "use svc.app:app_from_env" in log.read_text()


def test_app_from_env_takes_svc_s_shutdown_timeout_and_collector(tmp_path):
    """What Gunicorn gets from the factory: a runner with SHUTDOWN_TIMEOUT (not Gunicorn's
    graceful timeout), and the app with python -m svc's collector settings."""
    probe = (
        "import asyncio\n"
        "from svc.app import app_from_env\n"
        "from svc.collector import collector_ctx\n"
        "runner = asyncio.run(app_from_env())\n"
        "print(runner._shutdown_timeout, collector_ctx in runner.app.cleanup_ctx)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe],
        env={**os.environ, "SHUTDOWN_TIMEOUT": "3.5", "TMPDIR": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.stdout == "3.5 True\n", done.stderr
