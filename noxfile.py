"""``nox -s tests``: the suite on the oldest and newest Python svc claims (less DEFAULT_SELECTION).

setup.cfg says ``python_requires = >=3.10`` and svc is tested up to 3.13, so both
ends run.  Each session builds its own virtualenv under ``.nox/`` from scratch
and installs svc with its test extra there: nothing comes from ``.venv``.
Arguments after ``--`` go to pytest instead of ``DEFAULT_SELECTION``
(``nox -s tests-3.10 -- -x tests/test_settings.py``).
The environment passes through (``SVC_TEST_POSTGRES_URL``, ``CI``).
"""

from __future__ import annotations

import glob
import os

import nox

PYTHONS = ["3.10", "3.13"]

# What each Python adds to the main run: the topology tests (nginx, HAProxy, PgBouncer, workers,
# gunicorn, broker restarts) test the processes around svc, not the interpreter, the browser
# tests run the pages' JavaScript in Chromium, and the image test replays the Dockerfile, whose
# Python is its own; the main run of .ci/run runs them all.
DEFAULT_SELECTION = ["-m", "not topology and not image and not browser"]

nox.options.sessions = ["tests"]
nox.options.error_on_missing_interpreters = True  # a version that cannot run is a failure
nox.options.download_python = "never"  # use the interpreters installed here, fetch none


def _add_pyenv_interpreters() -> None:
    """Put pyenv's builds of PYTHONS on PATH: its shims only answer for selected versions."""
    root = os.environ.get("PYENV_ROOT", os.path.expanduser("~/.pyenv"))
    found = []
    for version in PYTHONS:
        builds = sorted(glob.glob(os.path.join(root, "versions", f"{version}.*", "bin")))
        if builds:
            found.append(builds[-1])
    if found:
        os.environ["PATH"] = os.pathsep.join([*found, os.environ.get("PATH", "")])


_add_pyenv_interpreters()


@nox.session(python=PYTHONS)
def tests(session: nox.Session) -> None:
    session.install("-e", ".[test]")
    session.run("python", "-m", "pytest", *(session.posargs or DEFAULT_SELECTION))
