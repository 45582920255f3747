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


def test_ci_runs_the_two_readme_commands_as_written():
    """``.ci/run`` runs the Quick start's main-job and test commands literally,
    in a virtual environment of its own."""
    text = README.read_text(encoding="utf-8")
    quick_start = text[text.index("## Quick start") : text.index("## Example")]
    commands = re.findall(r"```bash\n(.*?)\n```", quick_start)
    assert commands == [
        'pip install -e ".[compare]" && fastgd compare',
        'pip install -e ".[test]" && pytest',
    ]
    ci = (README.parent / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    for command in commands:
        assert command in ci
    assert any(line.startswith("python3 -m venv") for line in ci)
    venv = next(i for i, line in enumerate(ci) if line.startswith("python3 -m venv"))
    assert all(ci.index(command) > venv for command in commands)
