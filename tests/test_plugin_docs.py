"""What docs/plugins.md and the storage interface say about themselves stays true: a count
written in prose goes stale unless something checks it."""

from __future__ import annotations

import re
from pathlib import Path

from svc.storage import Storage

ROOT = Path(__file__).parent.parent
#: Where the number of the storage interface's coroutines is written, and how.
COUNTS = {
    "docs/plugins.md": r"\b(\d+) coroutines\b",
    "docs/api.md": r"svc\.storage\.Storage` \((\d+) coroutines",
    "svc/storage/base.py": r"\b(\d+) coroutines\b",
}


def test_the_number_of_storage_coroutines_said_is_the_interfaces():
    methods = Storage.__abstractmethods__
    said = [
        (place, int(number))
        for place, pattern in COUNTS.items()
        for number in re.findall(pattern, (ROOT / place).read_text())
    ]
    assert {place for place, _ in said} == set(COUNTS), f"a count went missing: {said}"
    wrong = [f"{place}: {number}" for place, number in said if number != len(methods)]
    assert not wrong, f"the interface has {len(methods)} coroutines ({sorted(methods)}): {wrong}"
