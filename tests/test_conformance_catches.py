"""The storage conformance suite catches real mistakes (a mutation test).

Each mutant of tests/conformance_examples/mutants.py is the example JSON-file
backend with one mistake.  The suite runs once, in a pytest subprocess, against
the correct backend and every mutant; the correct one must pass, and each mutant
must fail with a message naming the rule it breaks.
"""

from __future__ import annotations

import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections import defaultdict
from pathlib import Path

import pytest
from conformance_examples.mutants import MUTANTS

TESTS = Path(__file__).parent

GENERATED = """
from conformance_examples.mutants import MUTANTS
from test_jsonfile_conformance import TestJsonFileStorage  # the control: must pass

for _name, (_backend, _rule) in MUTANTS.items():
    globals()[f"TestMutant_{_name}"] = type(
        f"TestMutant_{_name}", (TestJsonFileStorage,), {"backend": _backend}
    )
"""

INI = """
[pytest]
asyncio_mode = auto
asyncio_default_fixture_loop_scope = function
"""


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory) -> dict[str, dict[str, list[str]]]:
    """class name → {"passed": [test...], "failed": [failure text...]} of one suite run."""
    folder = tmp_path_factory.mktemp("mutants")
    (folder / "test_mutants.py").write_text(GENERATED)
    (folder / "pytest.ini").write_text(INI)
    report = folder / "report.xml"
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")]),
    }
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--junitxml={report}"],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert report.exists(), run.stdout + run.stderr
    results: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    for case in ET.parse(report).iter("testcase"):
        cls = case.get("classname", "").rsplit(".", 1)[-1]
        problems = [p for p in case if p.tag in ("failure", "error")]
        if problems:
            for problem in problems:
                text = f"{problem.get('message', '')}\n{problem.text or ''}"
                results[cls]["failed"].append(f"{case.get('name')}: {text}")
        elif not any(p.tag == "skipped" for p in case):
            results[cls]["passed"].append(case.get("name"))
    return results


def test_the_correct_backend_passes(outcomes):
    control = outcomes["TestJsonFileStorage"]
    assert control["passed"], "the control ran no test"
    assert not control["failed"], "\n".join(control["failed"])


@pytest.mark.parametrize("name", sorted(MUTANTS))
def test_the_suite_fails_the_mutant_naming_the_rule(outcomes, name):
    _, rule = MUTANTS[name]
    failures = outcomes[f"TestMutant_{name}"]["failed"]
    assert failures, f"the conformance suite passed the mutant {name!r}"
    assert any(f"rule: {rule}" in text for text in failures), (
        f"{name!r} failed, but no failure names the rule {rule!r}:\n"
        + "\n".join(text.splitlines()[0] for text in failures)
    )
