"""The README's examples run as written (so the README stays true)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), re.S)


def test_readme_has_examples():
    assert len(BLOCKS) >= 2


@pytest.mark.parametrize("k", range(len(BLOCKS)))
def test_readme_example_runs(k):
    code = BLOCKS[k]
    if "cuda" in code:
        pytest.skip("GPU example: needs a CUDA device")
    exec(compile(code, f"README.md example {k}", "exec"), {"__name__": "readme"})
