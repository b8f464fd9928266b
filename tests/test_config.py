"""Strict config loading: types, dotted error keys, overrides, round trips."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from chorus.config import load_config, parse_overrides, require_path, save_config, to_dict
from chorus.errors import ConfigError
from chorus.train import TrainConfig


@dataclass
class Optim:
    lr: float
    betas: tuple[float, float] = (0.9, 0.999)
    kind: Literal["adamw", "sgd"] = "adamw"


@dataclass
class Experiment:
    name: str
    optim: Optim
    steps: int | None = None
    tags: list[str] = field(default_factory=list)
    dims: tuple[int, ...] = (64,)
    weights: dict[str, float] = field(default_factory=dict)
    data: Path = Path("data")
    verbose: bool = False


def test_load_from_yaml_file_with_nested_dataclasses(tmp_path):
    path = tmp_path / "exp.yaml"
    path.write_text(
        "name: run1\noptim:\n  lr: 1e-3\n  betas: [0.8, 0.9]\nsteps: 10\ntags: [a, b]\n"
        "dims: [8, 16]\nweights: {img: 1, txt: 0.5}\ndata: /tmp\n"
    )
    cfg = load_config(Experiment, path)
    assert cfg == Experiment(
        name="run1",
        optim=Optim(lr=0.001, betas=(0.8, 0.9)),
        steps=10,
        tags=["a", "b"],
        dims=(8, 16),
        weights={"img": 1.0, "txt": 0.5},
        data=Path("/tmp"),
    )
    assert isinstance(cfg.optim.lr, float) and isinstance(cfg.weights["img"], float)


@pytest.mark.parametrize(
    "data,message",
    [
        ({"name": "x", "optim": {"lr": 1.0, "lrr": 2}}, r"unknown key optim\.lrr in .*exp\.yaml"),
        ({"name": "x", "optim": {}}, r"missing required key optim\.lr in .*exp\.yaml"),
        ({"optim": {"lr": 1.0}}, r"missing required key name"),
        ({"name": "x", "optim": {"lr": "fast"}}, r"optim\.lr .*expected float, got str 'fast'"),
        ({"name": "x", "optim": {"lr": 1.0}, "steps": 2.5}, r"steps .*expected int \| None"),
        ({"name": "x", "optim": {"lr": 1.0}, "steps": True}, r"steps .*expected int \| None"),
        ({"name": "x", "optim": {"lr": 1.0, "kind": "adam"}}, r"optim\.kind .*one of \['adamw', 'sgd'\]"),
        ({"name": "x", "optim": {"lr": 1.0, "betas": [0.9]}}, r"optim\.betas .*expected 2 items, got 1"),
        ({"name": "x", "optim": {"lr": 1.0}, "tags": ["a", 3]}, r"tags\[1\] .*expected str, got int 3"),
        ({"name": "x", "optim": {"lr": 1.0}, "weights": {"a": "b"}}, r"weights\.a .*expected float"),
        ({"name": "x", "optim": 3}, r"optim in .*expected a mapping for Optim"),
        ({"name": "x", "optim": {"lr": 1.0}, "verbose": "yes"}, r"verbose .*expected bool"),
    ],
)
def test_bad_configs_name_the_dotted_key_and_file(tmp_path, data, message):
    path = tmp_path / "exp.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError, match=message):
        load_config(Experiment, path)


def test_file_errors(tmp_path):
    with pytest.raises(ConfigError, match="not found: .*missing.yaml"):
        load_config(Experiment, tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [unclosed\n")
    with pytest.raises(ConfigError, match="invalid YAML in .*bad.yaml"):
        load_config(Experiment, bad)
    listy = tmp_path / "list.yaml"
    listy.write_text("- 1\n")
    with pytest.raises(ConfigError, match="top level must be a mapping"):
        load_config(Experiment, listy)


def test_overrides_are_yaml_scalars_applied_before_validation():
    base = {"name": "x", "optim": {"lr": 1.0}}
    cfg = load_config(Experiment, base, ["optim.lr=3e-4", "steps=null", "dims=[1, 2]", "optim.kind=sgd", "name=7b"])
    assert cfg.optim == Optim(lr=3e-4, kind="sgd") and cfg.steps is None and cfg.dims == (1, 2)
    assert cfg.name == "7b"
    assert base == {"name": "x", "optim": {"lr": 1.0}}  # the input mapping is not mutated
    with pytest.raises(ConfigError, match=r"unknown key optim\.momentum"):
        load_config(Experiment, base, ["optim.momentum=0.9"])
    with pytest.raises(ConfigError, match="not of the form"):
        parse_overrides(["steps"])
    with pytest.raises(ConfigError, match=r"name in <mapping> is a str"):
        load_config(Experiment, base, ["name.first=1"])


def test_post_init_checks_become_config_errors():
    with pytest.raises(ConfigError, match="max_steps or epochs"):
        load_config(TrainConfig, {"lr": 0.1})
    with pytest.raises(ConfigError, match=r"precision .*one of \['auto', 'fp32', 'bf16'\]"):
        load_config(TrainConfig, {"max_steps": 1, "precision": "fp16"})


def test_require_path(tmp_path):
    (tmp_path / "f.txt").write_text("x")
    assert require_path(tmp_path / "f.txt", "data.file", kind="file") == tmp_path / "f.txt"
    with pytest.raises(ConfigError, match=r"data\.root: directory does not exist: .*nope"):
        require_path(tmp_path / "nope", "data.root", kind="dir")
    with pytest.raises(ConfigError, match="file does not exist"):
        require_path(tmp_path, "data.file", kind="file")


finite = st.floats(allow_nan=False, allow_infinity=True, width=64)
names = st.text(min_size=0, max_size=12)


@settings(max_examples=60, deadline=None)
@given(
    name=names,
    lr=finite,
    b1=finite,
    b2=finite,
    kind=st.sampled_from(["adamw", "sgd"]),
    steps=st.none() | st.integers(),
    tags=st.lists(names, max_size=3),
    dims=st.lists(st.integers(), max_size=4).map(tuple),
    weights=st.dictionaries(names, finite, max_size=3),
    verbose=st.booleans(),
)
def test_round_trip_through_yaml_is_exact(
    tmp_path_factory, name, lr, b1, b2, kind, steps, tags, dims, weights, verbose
):
    cfg = Experiment(
        name=name,
        optim=Optim(lr=lr, betas=(b1, b2), kind=kind),
        steps=steps,
        tags=tags,
        dims=dims,
        weights=weights,
        verbose=verbose,
        data=Path("/data/x"),
    )
    assert load_config(Experiment, to_dict(cfg)) == cfg
    path = tmp_path_factory.mktemp("rt") / "config.yaml"
    save_config(cfg, path)
    assert load_config(Experiment, path) == cfg


def test_strings_that_look_like_numbers_stay_strings(tmp_path):
    cfg = Experiment(name="1e5", optim=Optim(lr=1e5), tags=["2E-3", "1.5", "null", "yes"])
    save_config(cfg, tmp_path / "c.yaml")
    assert load_config(Experiment, tmp_path / "c.yaml") == cfg


def test_train_config_round_trip(tmp_path):
    cfg = TrainConfig(max_steps=100, betas=(0.8, 0.95), clip_grad_norm=None, precision="bf16", lr=3e-4)
    save_config(cfg, tmp_path / "c.yaml")
    assert load_config(TrainConfig, tmp_path / "c.yaml") == cfg
    assert to_dict(cfg)["betas"] == [0.8, 0.95]
