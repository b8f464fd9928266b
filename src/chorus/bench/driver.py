"""The one way to configure, run and report a benchmark.

A benchmark module ``chorus.bench.<name>`` is a thin driver over library calls. It defines

- ``Config``: a frozen dataclass holding every setting of the benchmark (sizes, steps, seeds, …);
- ``PRESETS``: ``{"full": Config(...), "quick": Config(...)}`` — the published run and a smoke run — and
  any further named runs a benchmark publishes (``--preset NAME``);
- ``run(cfg: Config, report: Report) -> None``: trains and evaluates side by side with the baseline,
  filling ``report`` with results, tables, plots and method cards.

``chorus bench NAME [--quick | --preset NAME] [--out DIR] [key=value ...]`` picks the preset, applies the overrides
with the same dotted ``key=value`` syntax as ``chorus train`` (validated by :mod:`chorus.config`, so a
typo is an error naming the key), runs the benchmark and writes ``results.json`` (results, the resolved
config, the environment and the command), ``results.md`` (every table) and the plots and method cards
under ``--out``. Why one driver: every benchmark is then re-run, overridden and read the same way, and
the config that produced a figure is always stored beside it.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import re
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from typing import Any

from chorus.config import load_config, to_dict
from chorus.errors import ConfigError
from chorus.eval.report import MethodCard, environment, invocation, markdown_table, write_json

__all__ = ["Report", "is_driver", "resolve_config", "run_driver", "driver_parser"]


class Report:
    """What a benchmark run produces, written under ``out``.

    ``results`` is a free-form dict (raw numbers, per-seed values, summaries); ``table`` adds a titled
    Markdown table to ``results.md``; ``figure`` yields a Matplotlib figure and saves it as ``NAME.png``;
    ``card`` writes ``method_card_<slug>.md`` and adds it to ``results.md``.
    """

    def __init__(self, out: str | os.PathLike, name: str, config: Any) -> None:
        self.out = Path(out)
        self.out.mkdir(parents=True, exist_ok=True)
        self.name = name
        self.config = config
        self.results: dict[str, Any] = {}
        self._sections: list[str] = []
        self._cards: list[MethodCard] = []
        self._started = time.perf_counter()

    def table(self, title: str, headers: Sequence[str], rows: Sequence[Sequence[Any]], note: str = "") -> str:
        """Add a Markdown table (with an optional note under it) to ``results.md``; returns the table text."""
        text = markdown_table(headers, rows)
        self._sections.append(f"## {title}\n\n{text}" + (f"\n{note}\n" if note else ""))
        return text

    def text(self, title: str, body: str) -> None:
        """Add a free-text section to ``results.md``."""
        self._sections.append(f"## {title}\n\n{body.strip()}\n")

    @contextmanager
    def figure(self, name: str, **subplots: Any) -> Iterator[Any]:
        """``with report.figure("curves", ncols=2) as (fig, axes): ...`` saves ``NAME.png`` under ``out``."""
        from chorus.eval.plots import figure

        with figure(self.out / f"{name}.png", **subplots) as fig_axes:
            yield fig_axes
        self._sections.append(f"![{name}]({name}.png)\n")

    def card(self, card: MethodCard) -> Path:
        """Write a method card beside the results and list it in ``results.md``."""
        slug = re.sub(r"[^a-z0-9]+", "_", card.method.lower()).strip("_")[:60]
        self._cards.append(card)
        return card.write(self.out / f"method_card_{slug}.md")

    def write(self) -> dict[str, Any]:
        """Write ``results.json`` and ``results.md``; returns the JSON record."""
        record = {
            "benchmark": self.name,
            "config": to_dict(self.config),
            "results": self.results,
            "environment": environment(),
            "command": invocation(),
            "seconds": round(time.perf_counter() - self._started, 1),
        }
        write_json(self.out / "results.json", record)
        parts = [f"# Benchmark `{self.name}`\n", f"Command: `{record['command']}` ({record['seconds']} s).\n"]
        parts += self._sections
        parts += [card.markdown().replace("# Method card", "## Method card", 1) for card in self._cards]
        (self.out / "results.md").write_text("\n".join(parts))
        return record


def is_driver(module: ModuleType) -> bool:
    """Whether ``module`` follows this driver's convention (``Config``, ``PRESETS``, ``run``)."""
    return all(hasattr(module, attr) for attr in ("Config", "PRESETS", "run"))


def resolve_config(module: ModuleType, preset: str = "full", overrides: Sequence[str] = ()) -> Any:
    """The preset's config with ``key=value`` overrides applied and validated."""
    presets: Mapping[str, Any] = module.PRESETS
    if preset not in presets:
        raise ConfigError(f"unknown preset {preset!r}; available: {', '.join(presets)}")
    base = presets[preset]
    if not dataclasses.is_dataclass(base) or isinstance(base, type):
        raise TypeError(f"{module.__name__}.PRESETS[{preset!r}] is not a dataclass instance")
    return load_config(type(base), to_dict(base), overrides)


def summary_line(doc: str | None) -> str | None:
    """A docstring's first line as plain text for ``--help``: no ``chorus bench NAME:`` prefix, no reST markup."""
    lines = (doc or "").strip().splitlines()
    if not lines:
        return None
    text = re.sub(r"^``chorus bench \w+``:\s*", "", lines[0]).replace("``", "")
    text = re.sub(r":\w+:`~?([^`]+)`", r"\1", text)
    return text[:1].upper() + text[1:]


def driver_parser(name: str, module: ModuleType) -> argparse.ArgumentParser:
    """``chorus bench NAME`` options: ``--quick`` / ``--preset``, ``--out`` and ``key=value`` overrides of ``Config``."""
    fields = ", ".join(f.name for f in dataclasses.fields(module.Config))
    parser = argparse.ArgumentParser(
        prog=f"chorus bench {name}",
        description=summary_line(module.__doc__),
        epilog=f"config keys (key=value): {fields}",
    )
    presets = ", ".join(module.PRESETS)
    parser.add_argument("--quick", action="store_true", help="the quick preset (a smoke run of minutes)")
    parser.add_argument("--preset", default=None, help=f"a named preset ({presets}; default full)")
    parser.add_argument("--out", default=None, help=f"output folder (default runs/bench/{name}[_PRESET])")
    parser.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides, e.g. seeds=[0,1]")
    return parser


def run_driver(
    name: str, module: ModuleType, argv: Sequence[str], progress: Callable[[str], None] = print
) -> dict[str, Any]:
    """Parse ``argv``, run benchmark ``name`` and write its report; returns the results.json record."""
    if not is_driver(module):
        raise TypeError(f"chorus.bench.{name} is not a benchmark driver: it needs Config, PRESETS and run(cfg, report)")
    args = driver_parser(name, module).parse_intermixed_args(list(argv))  # overrides may follow options
    if args.quick and args.preset not in (None, "quick"):
        raise ConfigError(f"--quick and --preset {args.preset} name two presets: give one")
    preset = "quick" if args.quick else args.preset or "full"
    cfg = resolve_config(module, preset, args.overrides)
    out = Path(args.out or f"runs/bench/{name}{'' if preset == 'full' else f'_{preset}'}")
    report = Report(out, name, cfg)
    module.run(cfg, report)
    record = report.write()
    progress(f"wrote {out / 'results.json'} and {out / 'results.md'}")
    return record
