"""The Docker image, checked without Docker (no engine runs here, nor in CI).

The fast tests read the Dockerfile for what a PaaS relies on.  The replay does what
``docker build`` and ``docker run`` would: it copies exactly what the Dockerfile copies
(minus .dockerignore) into an empty folder, runs its ``pip`` steps in a fresh venv with
none of this machine's pip settings, starts its ``CMD`` with ``PORT`` set, reads ``/``
and runs its ``HEALTHCHECK``.  It installs from PyPI, so it is slow: it runs in CI
(``CI=true``) or when asked (``SVC_TEST_IMAGE=1``), once a run.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from dockerfile import ROOT, DockerIgnore, copy, env_pairs, exec_form, instructions

pytestmark = pytest.mark.image

DOCKERFILE = instructions()

#: What a replay may not do on this machine, and need not: the USER test covers it.
SKIPPED = re.compile(r"^(useradd|groupadd|adduser) ")
#: How this machine reaches PyPI (its CA bundle, a proxy): not part of the build recipe.
NETWORK_VARIABLES = (
    "PIP_CERT",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
    "REQUESTS_CA_BUNDLE",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "NO_PROXY",
    "http_proxy",
    "https_proxy",
    "no_proxy",
)


def _all(keyword: str) -> list[str]:
    return [i.argument for i in DOCKERFILE if i.keyword == keyword]


def _index(predicate) -> int:
    return next(n for n, i in enumerate(DOCKERFILE) if predicate(i))


# -- what the Dockerfile promises (fast) -------------------------------------------


def test_dependencies_are_installed_from_the_lock_before_the_code():
    """A code edit rebuilds only the layers after the code: the dependencies stay cached."""
    lock_copy = _index(lambda i: i.keyword == "COPY")
    assert DOCKERFILE[lock_copy].argument.split() == ["requirements.lock", "./"]
    install = _index(lambda i: i.keyword == "RUN" and "requirements.lock" in i.argument)
    assert "--require-hashes" in DOCKERFILE[install].argument
    code = _index(lambda i: i.keyword == "COPY" and i.argument.startswith("svc "))
    assert lock_copy < install < code
    # Building svc must not resolve anything the lock did not pin.
    for run in _all("RUN")[1:]:
        if run.startswith("pip install"):
            assert "--no-deps" in run, run


def test_the_image_copies_every_package_setup_cfg_builds():
    copied = {source for arg in _all("COPY") for source in arg.split()[:-1]}
    setup_cfg = (ROOT / "setup.cfg").read_text()
    package_dirs = re.findall(r"^\s+\w+ = (plugins/\w+)$", setup_cfg, re.M)
    assert package_dirs and set(package_dirs) <= copied
    assert {"svc", "setup.cfg", "pyproject.toml", "requirements.lock"} <= copied


def test_the_lock_is_for_the_python_of_the_image():
    python = re.fullmatch(r"python:(\d+\.\d+)[-.\w]*", _all("FROM")[0]).group(1)
    assert f"--python-version {python} " in (ROOT / ".ci" / "lock").read_text()


def test_runs_as_a_user_that_is_not_root():
    user = _all("USER")[-1]
    assert user not in ("root", "0") and not user.startswith("0:")


def test_has_a_health_check_and_honours_port():
    assert _all("HEALTHCHECK") and "PORT" in _all("HEALTHCHECK")[-1]
    assert exec_form(_all("CMD")[-1]) == ["python", "-m", "svc"]  # svc reads PORT itself
    assert "PORT" in env_pairs(" ".join(_all("ENV")))


# -- the replay (slow) ----------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def image(tmp_path_factory):
    """(workdir, env): the Dockerfile's build done in a fresh venv."""
    if os.environ.get("CI", "").lower() != "true" and os.environ.get("SVC_TEST_IMAGE") != "1":
        pytest.skip("the image replay installs from PyPI: set SVC_TEST_IMAGE=1 (CI=true does)")
    image_python = re.fullmatch(r"python:(\d+\.\d+)[-.\w]*", _all("FROM")[0]).group(1)
    if f"{sys.version_info[0]}.{sys.version_info[1]}" != image_python:
        # The lock pins wheels for the image's Python; the run on that Python replays it.
        pytest.skip(f"the image runs Python {image_python}; replayed by the run on that Python")
    base = tmp_path_factory.mktemp("image")
    venv = base / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    env = {
        "PATH": f"{venv}/bin:/usr/local/bin:/usr/bin:/bin",
        "HOME": str(base),
        "PIP_CONFIG_FILE": os.devnull,  # no local index, find-links or constraint of ours
        **{k: os.environ[k] for k in NETWORK_VARIABLES if k in os.environ},
    }
    workdir = base
    ignore = DockerIgnore()
    for instruction in DOCKERFILE:
        keyword, argument = instruction.keyword, instruction.argument
        if keyword == "WORKDIR":
            workdir = base / argument.lstrip("/")
            workdir.mkdir(parents=True, exist_ok=True)
        elif keyword == "ENV":
            env.update(env_pairs(argument))
        elif keyword == "COPY":
            copy(argument, workdir, ignore)
        elif keyword == "RUN":
            if SKIPPED.match(argument):
                continue
            steps = [step.strip() for step in argument.split("&&")]
            assert all(step.startswith("pip ") for step in steps), f"cannot replay: {argument}"
            subprocess.run(["sh", "-c", argument], cwd=workdir, env=env, check=True)
        else:
            assert keyword in ("FROM", "USER", "EXPOSE", "HEALTHCHECK", "CMD"), keyword
    return workdir, env


def test_the_image_installs_exactly_the_lock(image):
    workdir, env = image
    listed = subprocess.run(
        ["pip", "list", "--format=json"], cwd=workdir, env=env, check=True, capture_output=True
    )
    installed = {_name(p["name"]): p["version"] for p in json.loads(listed.stdout)}
    lock = (ROOT / "requirements.lock").read_text()
    pinned = {_name(n): v for n, v in re.findall(r"^([\w.-]+)==([^ ;\\]+)", lock, re.M)}
    assert installed.pop("svc") == "0.1.0"
    installed.pop("pip")  # the venv's own, as the base image has its own
    assert installed == pinned


def _name(distribution: str) -> str:
    return re.sub(r"[-_.]+", "-", distribution).lower()  # PEP 503


def test_the_image_serves_on_port_and_is_healthy(image):
    workdir, env = image
    port = _free_port()
    # HOST: the image listens on 0.0.0.0; here only loopback is ours to use.
    run_env = {**env, "PORT": str(port), "HOST": "127.0.0.1", "BCRYPT_ROUNDS": "4"}
    proc = subprocess.Popen(
        exec_form(_all("CMD")[-1]),
        cwd=workdir,
        env=run_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2) as response:
                    assert response.status == 200
                    assert json.load(response)["status"] == "ok"
                    break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(
                        f"the image's CMD did not serve:\n{_output(proc)}"
                    ) from None
                time.sleep(0.2)
        healthcheck = _all("HEALTHCHECK")[-1].split(" CMD ", 1)[1]
        probe = subprocess.run(exec_form(healthcheck), cwd=workdir, env=run_env, timeout=30)
        assert probe.returncode == 0
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, _output(proc)


def _output(proc: subprocess.Popen) -> str:
    if proc.poll() is None:
        proc.kill()
    return proc.stdout.read() if proc.stdout else ""


def test_the_workdir_is_what_the_dockerfile_copied(image):
    workdir, _ = image
    top = sorted(p.name for p in Path(workdir).iterdir() if not p.name.endswith(".egg-info"))
    assert "tests" not in top and ".git" not in top and ".venv" not in top
    assert not list(Path(workdir).rglob("__pycache__/*.pyc"))  # PYTHONDONTWRITEBYTECODE
