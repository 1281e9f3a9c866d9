"""The docs prove their statements by naming tests: every test they name exists, in the file they name."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# docs/guarantees.md's short names for the files it cites most.
SHORT_NAMES = {
    "reach": "test_inbound_events_reach_the_business.py",
    "hardening": "test_webhook_intake_hardening.py",
    "sources": "test_attachment_sources.py",
}
# `*reach*`, `path/test_x.py` (optionally `::test_y`), `::test_y` (in the file named last), or a bare `test_y`.
_REFERENCE = re.compile(r"\*(reach|hardening|sources)\*|([\w/]*test_\w+\.py)(?:::(test_\w+))?|::(test_\w+)|(test_\w+)")


def defined_tests() -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for path in (ROOT / "tests").rglob("test_*.py"):
        found[path.name] = set(re.findall(r"^\s*(?:async )?def (test_\w+)", path.read_text(), re.MULTILINE))
    return found


def stale_references(text: str, tests: dict[str, set[str]]) -> list[str]:
    everywhere = set().union(*tests.values())
    stale: list[str] = []
    last_file: str | None = None
    for number, line in enumerate(text.splitlines(), 1):
        for short, file, in_file, continued, bare in _REFERENCE.findall(line):
            if short:
                last_file = SHORT_NAMES[short]
            elif file:
                last_file = Path(file).name
                if last_file not in tests:
                    stale.append(f"{number}: no test file {file}")
                elif in_file and in_file not in tests[last_file]:
                    stale.append(f"{number}: {in_file} is not in {file}")
            elif continued and continued not in tests.get(last_file or "", set()):
                stale.append(f"{number}: ::{continued} is not in {last_file}")
            elif bare and bare not in everywhere:
                stale.append(f"{number}: no test {bare}")
    return stale


@pytest.mark.parametrize("doc", sorted(p.name for p in (ROOT / "docs").glob("*.md")))
def test_every_test_a_doc_cites_exists_in_the_file_it_names(doc: str) -> None:
    assert stale_references((ROOT / "docs" / doc).read_text(), defined_tests()) == []
