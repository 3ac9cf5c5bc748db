"""The README is part of the contract: its example runs and prints what it says, and CI runs
exactly its test command."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")


def test_readme_example_runs_and_prints_what_it_says():
    blocks = re.findall(r"^```python\n(.*?)^```", README, flags=re.MULTILINE | re.DOTALL)
    assert blocks, "the README has no top-level python example"
    for code in blocks:
        expected = [
            line.split("#", 1)[1].strip()
            for line in code.splitlines()
            if line.lstrip().startswith("print(") and "#" in line
        ]
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            exec(compile(code, "README.md", "exec"), {})
        assert out.getvalue().splitlines() == expected


def test_ci_runs_the_readme_test_command():
    match = re.search(r"## Tests\n\n```bash\n(.+?)\n```", README)
    assert match, "the README has no test command under '## Tests'"
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert match.group(1) in ci.splitlines()
