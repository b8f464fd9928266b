"""CLIP weight interop against the libraries' own outputs.

The fixtures in ``tests/fixtures/interop`` are tiny random CLIPs made by
``transformers`` and by ``open_clip`` themselves (``make_fixtures.py``), saved
with their outputs on fixed inputs whose masks end at the EOS token. Loading
must reproduce those outputs (≤ 1e-5); exporting must give back the same
tensors bit for bit and, for HF, a directory ``CLIPModel.from_pretrained``
runs to the same outputs. open_clip cannot be imported here (it needs
torchvision), so the open_clip re-check runs only where ``CHORUS_OPENCLIP_PYTHON``
names the Python of an environment that has it (see ``docs/interop.md``).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file
from torch import Tensor

from chorus.contrastive.interop import (
    ClipTokenizerInfo,
    export_hf_clip,
    export_open_clip,
    load_hf_clip,
    load_open_clip,
)
from chorus.contrastive.model import ContrastiveModel
from chorus.encoders.factory import build_encoder
from chorus.errors import ConfigError, DataNotFoundError

FIXTURES = Path(__file__).parent / "fixtures" / "interop"
HF_DIR = FIXTURES / "hf_clip"
OC_WEIGHTS = FIXTURES / "open_clip" / "open_clip_model.safetensors"
OC_CONFIG = json.loads((FIXTURES / "open_clip" / "ViT-tiny-chorus.json").read_text())
# The Python of a separate environment with torchvision + open_clip (and Chorus) installed.
OPEN_CLIP_PYTHON = os.environ.get("CHORUS_OPENCLIP_PYTHON", "")


@pytest.fixture(scope="module")
def hf_ref() -> dict[str, Tensor]:
    return load_file(FIXTURES / "hf_reference.safetensors")


@pytest.fixture(scope="module")
def oc_ref() -> dict[str, Tensor]:
    return load_file(FIXTURES / "open_clip_reference.safetensors")


def chorus_outputs(model: ContrastiveModel, ref: dict[str, Tensor]) -> dict[str, Tensor]:
    with torch.no_grad():
        image = model.encode("image", ref["images"], normalize=False)
        text = model.encode("text", ref["ids"], ref["mask"], normalize=False)
        logits = (
            model.current_logit_scale()
            * model.encode("image", ref["images"])
            @ model.encode("text", ref["ids"], ref["mask"]).T
        )
    return {"image_features": image, "text_features": text, "logits_per_image": logits}


def hf_outputs(hf: torch.nn.Module, images: Tensor, ids: Tensor, mask: Tensor) -> dict[str, Tensor]:
    with torch.no_grad():
        image = hf.visual_projection(hf.vision_model(pixel_values=images).pooler_output)
        text = hf.text_projection(hf.text_model(input_ids=ids, attention_mask=mask.long()).pooler_output)
        logits = hf(input_ids=ids, pixel_values=images, attention_mask=mask.long()).logits_per_image
    return {"image_features": image, "text_features": text, "logits_per_image": logits}


def assert_outputs(outputs: dict[str, Tensor], ref: dict[str, Tensor]) -> None:
    for key, value in outputs.items():
        torch.testing.assert_close(value, ref[key], atol=1e-5, rtol=1e-5, msg=lambda m, k=key: f"{k}: {m}")


def assert_same_tensors(a: dict[str, Tensor], b: dict[str, Tensor]) -> None:
    assert sorted(a) == sorted(b)
    for key in a:
        assert a[key].shape == b[key].shape, key
        assert torch.equal(a[key], b[key]), key


# ---------------------------------------------------------------- Hugging Face transformers


def test_load_hf_clip_reproduces_transformers(hf_ref: dict[str, Tensor]) -> None:
    model, info = load_hf_clip(HF_DIR)
    assert not model.training
    assert_outputs(chorus_outputs(model, hf_ref), hf_ref)
    text_cfg = json.loads((HF_DIR / "config.json").read_text())["text_config"]
    assert info == ClipTokenizerInfo(
        vocab_size=text_cfg["vocab_size"],
        context_length=text_cfg["max_position_embeddings"],
        bos_token_id=text_cfg["bos_token_id"],
        eos_token_id=text_cfg["eos_token_id"],
        pad_token_id=text_cfg["pad_token_id"],
        files=None,
    )
    # Chorus pools at the mask's last real token; the fixture's masks end exactly at EOS.
    last_real = torch.tensor([int(row.nonzero().max()) for row in hf_ref["mask"]])
    at_last_real = hf_ref["ids"][torch.arange(len(last_real)), last_real]
    assert torch.equal(at_last_real, torch.full_like(last_real, info.eos_token_id))


def test_load_hf_clip_from_a_model_instance(hf_ref: dict[str, Tensor]) -> None:
    from transformers import CLIPModel

    model, info = load_hf_clip(CLIPModel.from_pretrained(HF_DIR))
    assert_outputs(chorus_outputs(model, hf_ref), hf_ref)
    assert info.files is None and info.eos_token_id == 99


def test_export_hf_clip_round_trips(tmp_path: Path, hf_ref: dict[str, Tensor]) -> None:
    from transformers import CLIPModel

    model, info = load_hf_clip(HF_DIR)
    export_hf_clip(model, tmp_path, info)
    hf = CLIPModel.from_pretrained(tmp_path).eval()
    assert_outputs(hf_outputs(hf, hf_ref["images"], hf_ref["ids"], hf_ref["mask"]), hf_ref)
    assert_same_tensors(load_file(tmp_path / "model.safetensors"), load_file(HF_DIR / "model.safetensors"))
    original, exported = (json.loads((d / "config.json").read_text()) for d in (HF_DIR, tmp_path))
    for section in ("text_config", "vision_config"):
        for key in (
            "hidden_size",
            "intermediate_size",
            "num_hidden_layers",
            "num_attention_heads",
            "hidden_act",
            "layer_norm_eps",
        ):
            assert exported[section][key] == original[section][key], (section, key)
    assert exported["projection_dim"] == original["projection_dim"]


def test_export_hf_clip_folds_a_tower_projection(tmp_path: Path) -> None:
    """A Chorus model whose towers carry their own ``proj`` exports with the projections multiplied in."""
    from transformers import CLIPModel

    torch.manual_seed(0)
    image = build_encoder("vit", "tiny", patch_size=8, image_size=16, output_dim=24)
    text = build_encoder("text_transformer", "tiny", vocab_size=50, context_length=10, output_dim=20)
    model = ContrastiveModel({"image": image, "text": text}, embed_dim=16).eval()
    export_hf_clip(model, tmp_path)
    hf = CLIPModel.from_pretrained(tmp_path).eval()
    images = torch.randn(3, 3, 16, 16)
    ids = torch.randint(1, 48, (3, 10))
    mask = torch.arange(10) < torch.tensor([[10], [6], [3]])
    ids[mask.flip(1).cumsum(1).flip(1) == 1] = 49  # the default export's EOS = vocab - 1, at each mask's end
    ids[~mask] = 0
    ref = hf_outputs(hf, images, ids, mask)
    ours = chorus_outputs(model, {"images": images, "ids": ids, "mask": mask})
    assert_outputs(ours, ref)


def test_hf_legacy_eos_config_means_argmax_pooling(tmp_path: Path, hf_ref: dict[str, Tensor]) -> None:
    """HF reads ``eos_token_id=2`` as "pool at argmax(ids)"; the tokenizer info then names CLIP's EOT (vocab - 1)."""
    from transformers import CLIPModel

    legacy = tmp_path / "legacy"
    shutil.copytree(HF_DIR, legacy)
    config = json.loads((legacy / "config.json").read_text())
    config["text_config"]["eos_token_id"] = 2
    (legacy / "config.json").write_text(json.dumps(config))
    model, info = load_hf_clip(legacy)
    assert info.eos_token_id == 99
    hf = CLIPModel.from_pretrained(legacy).eval()
    assert_outputs(chorus_outputs(model, hf_ref), hf_outputs(hf, hf_ref["images"], hf_ref["ids"], hf_ref["mask"]))
    with pytest.raises(ConfigError, match="eos_token_id=2"):
        export_hf_clip(model, tmp_path / "out", ClipTokenizerInfo(100, 16, 98, 2, 0))


def test_load_hf_clip_errors(tmp_path: Path) -> None:
    with pytest.raises(DataNotFoundError, match="config.json"):
        load_hf_clip(tmp_path / "nowhere")
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "siglip"}))
    with pytest.raises(ConfigError, match="siglip"):
        load_hf_clip(tmp_path)
    shutil.copy(HF_DIR / "config.json", tmp_path / "config.json")
    with pytest.raises(DataNotFoundError, match="model.safetensors"):
        load_hf_clip(tmp_path)
    weights = load_file(HF_DIR / "model.safetensors")
    del weights["vision_model.pre_layrnorm.bias"]
    save_file(weights, tmp_path / "model.safetensors")
    with pytest.raises(ConfigError, match=r"missing keys: \[vision_model\.pre_layrnorm\.bias\]"):
        load_hf_clip(tmp_path)


# ---------------------------------------------------------------- OpenCLIP


def test_load_open_clip_reproduces_open_clip(oc_ref: dict[str, Tensor]) -> None:
    model = load_open_clip(OC_WEIGHTS, OC_CONFIG)
    assert_outputs(chorus_outputs(model, oc_ref), oc_ref)
    assert model.encoders["image"].transformer.resblocks[0].attn.heads == 64 // 16  # width // head_width
    assert model.encoders["image"].ln_pre.eps == 1e-6 and model.encoders["text"].ln_final.eps == 1e-5


def test_export_open_clip_round_trips_exactly(tmp_path: Path, oc_ref: dict[str, Tensor]) -> None:
    model = load_open_clip(OC_WEIGHTS, OC_CONFIG)
    model_cfg = export_open_clip(model, tmp_path)
    assert model_cfg == OC_CONFIG
    assert json.loads((tmp_path / "open_clip_config.json").read_text()) == {"model_cfg": OC_CONFIG}
    assert_same_tensors(load_file(tmp_path / "open_clip_model.safetensors"), load_file(OC_WEIGHTS))
    reloaded = chorus_outputs(load_open_clip(tmp_path), oc_ref)
    original = chorus_outputs(model, oc_ref)
    for key in original:
        assert torch.equal(reloaded[key], original[key]), key


@pytest.mark.skipif(not OPEN_CLIP_PYTHON, reason="set CHORUS_OPENCLIP_PYTHON to a Python that has open_clip")
def test_export_open_clip_is_read_by_open_clip(tmp_path: Path) -> None:
    export_open_clip(load_open_clip(OC_WEIGHTS, OC_CONFIG), tmp_path)
    result = subprocess.run(
        [
            OPEN_CLIP_PYTHON,
            str(FIXTURES / "verify_open_clip.py"),
            str(tmp_path),
            str(FIXTURES / "open_clip_reference.safetensors"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_load_open_clip_custom_text_layout_and_torch_checkpoint(tmp_path: Path, oc_ref: dict[str, Tensor]) -> None:
    """CustomTextCLIP keeps the text tower under ``text.``; training checkpoints nest ``state_dict``/``module.``."""
    weights = load_file(OC_WEIGHTS)
    custom = {k if k.startswith(("visual.", "logit_")) else f"text.{k}": v for k, v in weights.items()}
    torch.save({"epoch": 3, "state_dict": {f"module.{k}": v for k, v in custom.items()}}, tmp_path / "epoch_3.pt")
    model = load_open_clip(tmp_path / "epoch_3.pt", {**OC_CONFIG, "custom_text": True})
    assert_outputs(chorus_outputs(model, oc_ref), oc_ref)


def test_export_open_clip_with_an_eos_id_pools_there(tmp_path: Path, oc_ref: dict[str, Tensor]) -> None:
    """Tokenisers whose EOT is not the largest id (Chorus' BPE: <eot> = 2) export with ``pool_type="eos"``."""
    model = load_open_clip(OC_WEIGHTS, OC_CONFIG)
    text_cfg = export_open_clip(model, tmp_path, eos_token_id=2)["text_cfg"]
    assert (text_cfg["pool_type"], text_cfg["eos_id"]) == ("eos", 2)
    ours = chorus_outputs(load_open_clip(tmp_path), oc_ref)
    assert_outputs(ours, oc_ref)


def test_open_clip_logit_bias_round_trips(tmp_path: Path) -> None:
    weights = {**load_file(OC_WEIGHTS), "logit_bias": torch.tensor(-7.5)}
    model = load_open_clip(weights, {**OC_CONFIG, "init_logit_bias": -10.0})
    assert model.logit_bias is not None and model.logit_bias.item() == -7.5
    assert export_open_clip(model, tmp_path)["init_logit_bias"] == -7.5
    assert_same_tensors(load_file(tmp_path / "open_clip_model.safetensors"), weights)
    with pytest.raises(ConfigError, match="logit_bias"):
        export_hf_clip(model, tmp_path / "hf")


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"vision_cfg": {**OC_CONFIG["vision_cfg"], "layers": [3, 4, 6, 3]}}, "ModifiedResNet"),
        ({"vision_cfg": {**OC_CONFIG["vision_cfg"], "timm_model_name": "vit_tiny"}}, "timm_model_name"),
        ({"text_cfg": {**OC_CONFIG["text_cfg"], "hf_model_name": "bert-base"}}, "hf_model_name"),
        ({"text_cfg": {**OC_CONFIG["text_cfg"], "pool_type": "last"}}, "pool_type"),
        ({"vision_cfg": {**OC_CONFIG["vision_cfg"], "warp": 2}}, "unknown keys.*warp"),
        ({"multimodal_cfg": {}}, "multimodal_cfg"),
    ],
)
def test_load_open_clip_rejects_unsupported_configs(change: dict, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        load_open_clip(OC_WEIGHTS, {**OC_CONFIG, **change})


def test_load_open_clip_names_mismatched_keys_and_shapes() -> None:
    weights = load_file(OC_WEIGHTS)
    del weights["visual.ln_pre.weight"]
    weights["visual.extra"] = torch.zeros(1)
    named = r"missing keys: \[visual\.ln_pre\.weight\]; unexpected keys: \[visual\.extra\]"
    with pytest.raises(ConfigError, match=named):
        load_open_clip(weights, OC_CONFIG)
    narrow = {**OC_CONFIG, "text_cfg": {**OC_CONFIG["text_cfg"], "context_length": 8}}
    with pytest.raises(ConfigError, match=r"positional_embedding \(16, 64\) \(config implies \(8, 64\)\)"):
        load_open_clip(OC_WEIGHTS, narrow)
    with pytest.raises(ConfigError, match="needs the model config"):
        load_open_clip(OC_WEIGHTS)


def test_export_rejects_non_clip_models(tmp_path: Path) -> None:
    image = build_encoder("vit", "tiny", image_size=16)
    other = build_encoder("text_transformer", "tiny", vocab_size=50, context_length=10)
    with pytest.raises(ConfigError, match="'image' and 'text'"):
        export_open_clip(ContrastiveModel({"image": image, "audio": other}, embed_dim=8), tmp_path)
    bidirectional = build_encoder("text_transformer", "tiny", vocab_size=50, context_length=10, causal=False)
    with pytest.raises(ConfigError, match="causal"):
        export_hf_clip(ContrastiveModel({"image": image, "text": bidirectional}, embed_dim=8), tmp_path)
    quick = build_encoder("text_transformer", "tiny", vocab_size=50, context_length=10, act="quick_gelu")
    with pytest.raises(ConfigError, match="one activation"):
        export_open_clip(ContrastiveModel({"image": image, "text": quick}, embed_dim=8), tmp_path)
