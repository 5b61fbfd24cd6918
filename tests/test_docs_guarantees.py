"""docs/GUARANTEES.md names, for each guarantee, the tests that prove it: every test it
names must exist, so that a renamed or removed test cannot leave a guarantee unproved
on paper."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_every_test_the_guarantees_name_exists() -> None:
    text = (ROOT / "docs" / "GUARANTEES.md").read_text(encoding="utf-8")
    defined = {
        name
        for path in (ROOT / "tests").rglob("*.py")
        for name in re.findall(r"^(?:async )?def (test_\w+)\(", path.read_text("utf-8"), re.M)
    }
    named = re.findall(r"`(?:tests/[\w/]+\.py)?(?:::)?(test_\w+)`", text)
    assert len(named) > 20  # the page is read as it is written
    assert sorted(set(named) - defined) == []
    # a file named with a test must be that test's file
    for path, name in re.findall(r"`(tests/[\w/]+\.py)::(test_\w+)`", text):
        assert re.search(rf"^(?:async )?def {name}\(", (ROOT / path).read_text("utf-8"), re.M), (
            path,
            name,
        )
