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


@pytest.fixture(scope="session")
def tiny_world(tmp_path_factory) -> Path:
    """A small synthetic world (GTA5/ and Cityscapes/ under the returned root), generated once per session.

    Its parameters equal datasets.synthetic's "tiny" preset, so step scripts run with --SYNTHETIC_WORLD=tiny reuse it.
    """
    from datasets.synthetic import generate

    root = tmp_path_factory.mktemp("synthetic") / "world"
    generate(root, seed=0, n_source=16, n_train=12, n_val=8, source_size=(64, 128), target_size=(64, 128),
             workers=1, progress=False)
    return root


@pytest.fixture(autouse=True)
def _messages_spell_library_arguments():
    """Messages name a setting as the running command spells it (``utils.errors.option``); a script's ``main`` run
    in this process by an earlier test must not leave its spelling to the next test."""
    from utils.errors import name_options

    name_options({})
    yield
