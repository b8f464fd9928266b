"""The runnable examples in docs/align.md must run as written."""

from __future__ import annotations

import re
from pathlib import Path

DOC = Path(__file__).resolve().parents[1] / "docs" / "align.md"


def test_docs_examples_run() -> None:
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), re.S)
    assert len(blocks) >= 7  # one per method section
    exec(compile("\n".join(blocks), str(DOC), "exec"), {})
