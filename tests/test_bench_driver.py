"""The benchmark driver: presets, validated key=value overrides, and the report files it writes."""

from __future__ import annotations

import dataclasses
import json
import types
from dataclasses import dataclass

import pytest

from chorus.bench import BENCHMARKS, load_benchmark
from chorus.bench.driver import driver_parser, is_driver, resolve_config, run_driver
from chorus.errors import ConfigError
from chorus.eval.report import MethodCard


@dataclass(frozen=True)
class _Config:
    steps: int = 100
    seeds: tuple[int, ...] = (0, 1, 2)
    lr: float = 1e-3


def _run(cfg: _Config, report) -> None:
    report.results["score"] = cfg.steps * len(cfg.seeds)
    report.table("scores", ["steps", "seeds"], [[cfg.steps, len(cfg.seeds)]])
    with report.figure("curve", figsize=(2, 2)) as (_, ax):
        ax.plot([0, 1], [0, cfg.steps])
    report.card(MethodCard("Toy method", "why", "backbone", "baseline", "result", "reference"))


_MODULE = types.SimpleNamespace(
    __name__="toy",
    __doc__="A toy benchmark.\n\nMore text.",
    Config=_Config,
    PRESETS={"full": _Config(), "quick": _Config(steps=5, seeds=(0,)), "long": _Config(steps=1000)},
    run=_run,
)


def test_presets_and_overrides_are_validated() -> None:
    assert is_driver(_MODULE)  # type: ignore[arg-type]
    assert resolve_config(_MODULE, "quick").steps == 5  # type: ignore[arg-type]
    cfg = resolve_config(_MODULE, "full", ["steps=7", "seeds=[3, 4]"])  # type: ignore[arg-type]
    assert (cfg.steps, cfg.seeds, cfg.lr) == (7, (3, 4), 1e-3)
    with pytest.raises(ConfigError, match="stpes"):
        resolve_config(_MODULE, "full", ["stpes=7"])  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="steps"):
        resolve_config(_MODULE, "full", ["steps=many"])  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="preset"):
        resolve_config(_MODULE, "huge")  # type: ignore[arg-type]


def test_run_writes_results_config_table_plot_and_card(tmp_path) -> None:
    record = run_driver(
        "toy",
        _MODULE,
        ["--quick", "--out", str(tmp_path), "steps=9"],  # type: ignore[arg-type]
        progress=lambda _: None,
    )
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved["results"] == {"score": 9} == record["results"]
    assert saved["config"] == {"steps": 9, "seeds": [0], "lr": 1e-3}
    assert "torch" in saved["environment"]
    md = (tmp_path / "results.md").read_text()
    assert "| 9 | 1 |" in md and "curve.png" in md and "Toy method" in md
    assert (tmp_path / "curve.png").stat().st_size > 1000
    assert (tmp_path / "method_card_toy_method.md").exists()


def test_named_preset_and_its_default_folder(tmp_path, monkeypatch) -> None:
    """``--preset NAME`` runs a further published preset into ``runs/bench/NAME_PRESET``; naming two is an error."""
    monkeypatch.chdir(tmp_path)
    record = run_driver("toy", _MODULE, ["--preset", "long", "seeds=[0]"], progress=lambda _: None)  # type: ignore[arg-type]
    assert record["results"] == {"score": 1000}
    assert (tmp_path / "runs" / "bench" / "toy_long" / "results.json").is_file()
    with pytest.raises(ConfigError, match="two presets"):
        run_driver("toy", _MODULE, ["--quick", "--preset", "long"], progress=lambda _: None)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="available: full, quick, long"):
        run_driver("toy", _MODULE, ["--preset", "huge"], progress=lambda _: None)  # type: ignore[arg-type]


@pytest.mark.parametrize("name", sorted(BENCHMARKS))
def test_every_benchmark_is_a_driver_with_valid_presets(name: str) -> None:
    """Every registered benchmark has a frozen Config, full and quick presets that load through chorus.config,
    and a one-line ``--help`` description."""
    module = load_benchmark(name)
    assert is_driver(module), name
    assert dataclasses.is_dataclass(module.Config) and module.Config.__dataclass_params__.frozen
    assert {"full", "quick"} <= set(module.PRESETS)
    for preset in module.PRESETS:
        assert resolve_config(module, preset) == module.PRESETS[preset]
    assert module.PRESETS["quick"] != module.PRESETS["full"]
    parser = driver_parser(name, module)
    assert parser.description and "\n" not in parser.description and "``" not in parser.description
