"""The README's detector table is generated from the registry and must not go stale."""

import importlib.util
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_readme_detector_table_is_current():
    spec = importlib.util.spec_from_file_location("detector_table", REPO / "scripts" / "detector_table.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    assert mod.block() in (REPO / "README.md").read_text(), "run: python scripts/detector_table.py --write"
