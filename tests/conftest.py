"""Shared test fixtures: the real sample files in ../shared/fixtures and a tiny synthetic world."""
from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
FIXTURES = ROOT.parent / "shared" / "fixtures"

# Tests run on 2 cores next to other work: keep torch from oversubscribing.
os.environ.setdefault("OMP_NUM_THREADS", "2")


@pytest.fixture(scope="session")
def fixtures_dir() -> Path:
    """The real sample files; absent in a user's clone, where tests that need them skip."""
    if not (FIXTURES / "cityscapes_sample").is_dir():
        pytest.skip(f"real sample files not found at {FIXTURES} (only present in the project's workspace)")
    return FIXTURES
