"""Every Python block of README.md and docs/**/*.md runs as written, unless it is marked as an excerpt.

The convention, for whoever writes docs: a fenced ```` ```python ```` block is executed by this test;
blocks of one page run in order in one namespace (so a page can build on its earlier blocks), in a
fresh temporary working directory, with the real data root (``CHORUS_DATA``) and no network. A block
that is not meant to run as written — an API outline with placeholder names, a call that needs a
downloaded checkpoint, or one that is genuinely long-running (minutes) — gets the line
``<!-- excerpt: why -->`` directly above its fence; Markdown renders nothing for it. Other languages
(```` ```bash ````, ```` ```yaml ````) are never run.
"""

from __future__ import annotations

import re
import sys
import types
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PAGES = [REPO / "README.md", *sorted((REPO / "docs").rglob("*.md"))]
EXCERPT = re.compile(r"^<!--\s*excerpt\b", re.I)


def runnable_blocks(text: str) -> list[str]:
    """The page's Python blocks that are not marked ``<!-- excerpt ... -->`` on the line above."""
    blocks = []
    for match in re.finditer(r"^```python\n(.*?)^```", text, re.M | re.S):
        above = text[: match.start()].rstrip("\n").rsplit("\n", 1)[-1]
        if not EXCERPT.match(above.strip()):
            blocks.append(match.group(1))
    return blocks


def test_the_excerpt_marker_is_recognised():
    page = "x\n<!-- excerpt: outline -->\n```python\nundefined_name\n```\n\n```python\nx = 1\n```\n"
    assert runnable_blocks(page) == ["x = 1\n"]


@pytest.mark.parametrize(
    "page", [p for p in PAGES if runnable_blocks(p.read_text())], ids=lambda p: str(p.relative_to(REPO))
)
def test_page_examples_run(page: Path, tmp_path, monkeypatch, real_data_root) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CHORUS_DATA", str(real_data_root))
    module = types.ModuleType("__docs__")  # a registered module, so dataclasses defined in a block work
    monkeypatch.setitem(sys.modules, module.__name__, module)
    for i, code in enumerate(runnable_blocks(page.read_text())):
        exec(compile(code, f"{page.relative_to(REPO)} (python block {i + 1})", "exec"), module.__dict__)
