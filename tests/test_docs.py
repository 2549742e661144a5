"""The README and docs/ as a user reads them: every test they cite exists, every link they make leads to a file of
the repository, and they point at nothing outside it."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


def _ids(pages):
    return [str(p.relative_to(ROOT)) for p in pages]


@pytest.mark.parametrize("page", PAGES, ids=_ids(PAGES))
def test_every_cited_test_exists(page):
    missing = []
    for file, name in re.findall(r"(test_\w+\.py)::(test_\w+)", page.read_text()):
        source = ROOT / "tests" / file
        if not source.is_file() or not re.search(rf"^def {name}\b", source.read_text(), re.MULTILINE):
            missing.append(f"{file}::{name}")
    assert not missing, missing


@pytest.mark.parametrize("page", PAGES, ids=_ids(PAGES))
def test_every_link_leads_to_a_file_of_the_repository(page):
    broken = []
    for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", page.read_text()):
        if "://" in target or target.startswith("mailto:"):
            continue
        if not (page.parent / target).exists():
            broken.append(target)
    assert not broken, broken


@pytest.mark.parametrize("page", PAGES, ids=_ids(PAGES))
def test_nothing_points_outside_the_repository(page):
    """A user has the repository only: no ../shared, no specification sections, no issue numbers or notes."""
    found = re.findall(r"\.\./shared|SPEC\.md|SPEC \d|issue note|the issue\b|issue \d+", page.read_text())
    assert not found, found
