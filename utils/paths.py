"""Where the repository lives, so that defaults such as ``data/synthetic`` do not depend on the current folder."""
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
