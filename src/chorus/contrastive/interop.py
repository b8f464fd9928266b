"""CLIP weight interop: OpenCLIP and Hugging Face ``transformers`` checkpoints in and out of Chorus.

What: :func:`load_hf_clip` / :func:`export_hf_clip` convert between a Chorus
:class:`~chorus.contrastive.model.ContrastiveModel` (``"image"`` = ``vit``,
``"text"`` = ``text_transformer``) and a ``transformers`` ``CLIPModel``
directory (``config.json`` + ``model.safetensors``, as ``save_pretrained``
writes it); :func:`load_open_clip` / :func:`export_open_clip` do the same for
OpenCLIP's ``CLIP`` (a state dict + its model config, as in open_clip's
``model_configs/*.json``; Ilharco et al. 2021, github.com/mlfoundations/open_clip).
All three implement CLIP (Radford et al. 2021, "Learning Transferable Visual
Models From Natural Language Supervision").

Why the conversion is exact: Chorus' towers use OpenCLIP's parameter names and
shapes, so every tensor is copied unchanged except for three reshapes, each
driven by one table (:func:`_hf_rule`, :func:`_open_clip_rule`) that serves
both directions:

- HF keeps separate ``q_proj``/``k_proj``/``v_proj``; Chorus (like
  ``nn.MultiheadAttention``) fuses them into ``in_proj_weight`` [3D, D]:
  concatenated on import, split on export.
- CLIP's projection lives inside each tower, while ``ContrastiveModel`` always
  adds its own ``projections``. Imported towers are built with
  ``output_dim=None`` and CLIP's projection becomes ``projections[m]``: one
  projection, no identity layer, and LiT-style freezing (frozen tower,
  trainable projection) means what it means in CLIP. HF's
  ``visual_projection``/``text_projection`` are ``nn.Linear`` weights
  [embed, width], exactly ``projections[m].weight``; OpenCLIP's ``proj`` /
  ``text_projection`` are [width, embed] matrices used as ``x @ proj``, i.e. the
  transpose. On export a tower that has its own ``proj`` (a Chorus model built
  with ``output_dim``) is folded into the projection, ``(h P) W^T = h (P W^T)``,
  exact up to float rounding.
- ``logit_scale`` is ``log(1/τ)`` in all three and is copied as is.

Text pooling: OpenCLIP pools the text tower at ``argmax(ids)`` (CLIP's
end-of-text token has the largest id) or, with ``pool_type="eos"``, at the
first ``eos_id``; HF pools at the first ``eos_token_id`` (at ``argmax(ids)``
for legacy configs that say ``eos_token_id=2``). Chorus pools at the last real
token of the mask. They pick the same position whenever each row's mask ends
at its end-of-text token — which is what CLIP tokenisers produce (EOT, then
padding) — and the pooled embedding does not depend on what follows, because
the text attention is causal. So feed Chorus masks that end at EOT.

Baseline: this is a conversion, not a method; the bar is equality with the
source library's own outputs (≤ 1e-5 on the fixtures in
``tests/fixtures/interop``) and bit-exact weight round trips.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, cast

import torch
from safetensors.torch import load_file, save_file
from torch import Tensor, nn

from chorus.contrastive.model import ContrastiveModel
from chorus.encoders.text_transformer import TextTransformer
from chorus.encoders.transformer import Activation, QuickGELU, ResidualAttentionBlock
from chorus.encoders.vit import VisionTransformer
from chorus.errors import ConfigError, DataError, DataNotFoundError

__all__ = [
    "ClipTokenizerInfo",
    "clip_encoder_options",
    "export_hf_clip",
    "export_open_clip",
    "load_hf_clip",
    "load_open_clip",
]

PathLike = str | os.PathLike[str]
How = Literal["copy", "transpose", "qkv"]
Rule = tuple[tuple[str, ...], How]  # the foreign key(s) of one Chorus tensor, and how they relate

# Buffers some checkpoints saved that are recomputed from the config, never learned.
_DERIVED_BUFFERS = ("position_ids", "attn_mask")
OPEN_CLIP_CONFIG = "open_clip_config.json"
OPEN_CLIP_WEIGHTS = "open_clip_model.safetensors"
OPEN_CLIP_HUB_WEIGHTS = "open_clip_pytorch_model.bin"  # what older OpenCLIP uploads to the HF hub hold


@dataclass(frozen=True)
class ClipTokenizerInfo:
    """What a tokeniser must produce for the text tower of an imported HF CLIP.

    ``eos_token_id`` is where each row's mask must end (Chorus pools there).
    For legacy HF configs (``eos_token_id=2``, which HF reads as "pool at
    argmax") it is ``vocab_size - 1``, CLIP's ``<|endoftext|>``.
    ``files`` is the checkpoint directory when it holds tokenizer files
    (``tokenizer.json`` or ``vocab.json``), else None.
    """

    vocab_size: int
    context_length: int
    bos_token_id: int | None
    eos_token_id: int
    pad_token_id: int | None
    files: Path | None = None


# ---------------------------------------------------------------- shared: key tables and tensor moves


def _preview(items: list[str], limit: int = 12) -> str:
    shown = ", ".join(items[:limit])
    return f"[{shown}{f', … ({len(items) - limit} more)' if len(items) > limit else ''}]"


def _foreign_shape(shape: torch.Size, how: How) -> tuple[int, ...]:
    if how == "transpose":
        return tuple(reversed(shape))
    if how == "qkv":
        return (shape[0] // 3, *shape[1:])
    return tuple(shape)


def _load_mapped(model: nn.Module, plan: Mapping[str, Rule], foreign: Mapping[str, Tensor], source: str) -> None:
    """Fill ``model`` from ``foreign`` through ``plan``; any missing/unexpected key or shape is a ConfigError."""
    foreign = {k: v for k, v in foreign.items() if k.rsplit(".", 1)[-1] not in _DERIVED_BUFFERS}
    wanted = {name for names, _ in plan.values() for name in names}
    missing, unexpected = sorted(wanted - set(foreign)), sorted(set(foreign) - wanted)
    if missing or unexpected:
        raise ConfigError(
            f"{source}: the weights do not match the architecture the config describes; "
            f"missing keys: {_preview(missing)}; unexpected keys: {_preview(unexpected)}"
        )
    expected = model.state_dict()
    wrong = [
        f"{name} {tuple(foreign[name].shape)} (config implies {_foreign_shape(expected[key].shape, how)})"
        for key, (names, how) in plan.items()
        for name in names
        if tuple(foreign[name].shape) != _foreign_shape(expected[key].shape, how)
    ]
    if wrong:
        raise ConfigError(f"{source}: tensor shapes do not match the config: {_preview(wrong)}")
    state = {}
    for key, (names, how) in plan.items():
        parts = [foreign[name] for name in names]
        state[key] = torch.cat(parts) if how == "qkv" else parts[0].T if how == "transpose" else parts[0]
    model.load_state_dict(state, strict=True)


def _export_mapped(state: Mapping[str, Tensor], plan: Mapping[str, Rule]) -> dict[str, Tensor]:
    """The foreign state dict: CPU tensors, contiguous and unshared (as safetensors requires)."""
    out = {}
    for key, value in state.items():
        names, how = plan[key]
        value = value.detach()
        parts = value.chunk(3) if how == "qkv" else (value.T,) if how == "transpose" else (value,)
        out.update(
            {name: part.to("cpu", copy=True, memory_format=torch.contiguous_format) for name, part in zip(names, parts)}
        )
    return out


def _clip_towers(model: nn.Module, target: str) -> tuple[VisionTransformer, TextTransformer]:
    """The ``vit`` image tower and causal ``text_transformer`` text tower a CLIP export needs."""
    if not isinstance(model, ContrastiveModel) or set(model.encoders) != {"image", "text"}:
        names = sorted(model.encoders) if isinstance(model, ContrastiveModel) else type(model).__name__
        raise ConfigError(f"{target} export needs a ContrastiveModel with encoders 'image' and 'text', got {names}")
    image, text = model.encoders["image"], model.encoders["text"]
    if not isinstance(image, VisionTransformer) or not isinstance(text, TextTransformer):
        raise ConfigError(
            f"{target} export needs image='vit' and text='text_transformer' encoders, "
            f"got image={type(image).__name__}, text={type(text).__name__}"
        )
    if not text.transformer.causal:
        raise ConfigError(f"{target} export needs a causal text tower; this text_transformer has causal=False")
    return image, text


def _export_state(model: ContrastiveModel) -> dict[str, Tensor]:
    """``model.state_dict()`` with any tower ``proj`` folded into ``projections[m]`` (``W' = W P^T``)."""
    state = dict(model.state_dict())
    for modality in model.encoders:
        proj = state.pop(f"encoders.{modality}.proj", None)
        if proj is not None:
            key = f"projections.{modality}.weight"
            state[key] = state[key] @ proj.T
    return state


@dataclass(frozen=True)
class _Shape:
    """The hyper-parameters of one tower's transformer, read back from its modules."""

    width: int
    layers: int
    heads: int
    hidden: int
    act: Activation
    eps: float


def _shape(tower: VisionTransformer | TextTransformer, name: str) -> _Shape:
    blocks = tower.transformer.resblocks
    if not len(blocks):
        raise ConfigError(f"the {name} tower has no transformer layers; CLIP checkpoints need at least one")
    block = cast(ResidualAttentionBlock, blocks[0])
    return _Shape(
        width=tower.transformer.width,
        layers=len(blocks),
        heads=block.attn.heads,
        hidden=block.mlp.c_fc.out_features,
        act="quick_gelu" if isinstance(block.mlp.act, QuickGELU) else "gelu",
        eps=block.ln_1.eps,
    )


def clip_encoder_options(model: ContrastiveModel) -> dict[str, dict[str, Any]]:
    """The ``build_encoder`` options (``vit`` / ``text_transformer``) that rebuild each tower of ``model``.

    What a run folder's config needs to recreate a loaded CLIP. Sizes the
    config states elsewhere are left out: the image size and channels
    (``data.image_size`` / ``image_channels``) and the text context length
    (``data.context_length``). The vocabulary size is kept, because a
    checkpoint's embedding table may be larger than its tokenizer's vocabulary.
    """
    image, text = _clip_towers(model, "CLIP")
    v, t = _shape(image, "image"), _shape(text, "text")
    return {
        "image": {
            "patch_size": image.conv1.kernel_size[0],
            "width": v.width,
            "layers": v.layers,
            "heads": v.heads,
            "mlp_ratio": v.hidden / v.width,
            "act": v.act,
            "ln_eps": v.eps,
            "output_dim": None if image.proj is None else image.proj.shape[1],
        },
        "text": {
            "width": t.width,
            "layers": t.layers,
            "heads": t.heads,
            "vocab_size": text.vocab_size,
            "mlp_ratio": t.hidden / t.width,
            "act": t.act,
            "ln_eps": t.eps,
            "output_dim": None if text.proj is None else text.proj.shape[1],
        },
    }


# ---------------------------------------------------------------- Hugging Face transformers


_HF_TOWER = {"image": "vision_model.", "text": "text_model."}
_HF_TOWER_NAMES = (  # Chorus name inside a tower -> HF name inside the tower
    ("conv1.", "embeddings.patch_embedding."),
    ("class_embedding", "embeddings.class_embedding"),
    ("positional_embedding", "embeddings.position_embedding.weight"),
    ("token_embedding.", "embeddings.token_embedding."),
    ("ln_pre.", "pre_layrnorm."),
    ("ln_post.", "post_layernorm."),
    ("ln_final.", "final_layer_norm."),
)
_HF_BLOCK_NAMES = (  # Chorus name inside a block -> HF name inside an encoder layer
    ("ln_1.", "layer_norm1."),
    ("ln_2.", "layer_norm2."),
    ("attn.out_proj.", "self_attn.out_proj."),
    ("mlp.c_fc.", "mlp.fc1."),
    ("mlp.c_proj.", "mlp.fc2."),
)
_HF_TOP = {
    "projections.image.weight": "visual_projection.weight",
    "projections.text.weight": "text_projection.weight",
    "logit_scale": "logit_scale",
}
_HF_ACTIVATIONS: dict[str, Activation] = {"quick_gelu": "quick_gelu", "gelu": "gelu"}


def _rename(name: str, table: tuple[tuple[str, str], ...]) -> str | None:
    for ours, theirs in table:
        if name.startswith(ours):
            return theirs + name[len(ours) :]
    return None


def _hf_rule(key: str) -> Rule:
    """The HF ``CLIPModel`` key(s) of one Chorus ``ContrastiveModel`` tensor."""
    if key in _HF_TOP:
        return (_HF_TOP[key],), "copy"
    _, modality, name = key.split(".", 2)
    prefix = _HF_TOWER[modality]
    if name.startswith("transformer.resblocks."):
        layer, inner = name.removeprefix("transformer.resblocks.").split(".", 1)
        block = f"{prefix}encoder.layers.{layer}."
        if inner.startswith("attn.in_proj_"):
            kind = inner.removeprefix("attn.in_proj_")
            return tuple(f"{block}self_attn.{p}_proj.{kind}" for p in "qkv"), "qkv"
        base, renamed = block, _rename(inner, _HF_BLOCK_NAMES)
    else:
        base, renamed = prefix, _rename(name, _HF_TOWER_NAMES)
    if renamed is None:
        raise ConfigError(f"Chorus parameter {key!r} has no counterpart in HF CLIPModel")
    return (base + renamed,), "copy"


def _hf_activation(value: str, key: str) -> Activation:
    if value not in _HF_ACTIVATIONS:
        raise ConfigError(f"HF CLIP {key}={value!r} is not supported; supported: {sorted(_HF_ACTIVATIONS)}")
    return _HF_ACTIVATIONS[value]


def _hf_weights(directory: Path) -> dict[str, Tensor]:
    """All tensors of a ``save_pretrained`` directory (single or sharded safetensors, or older ``pytorch_model.bin``)."""
    single, index = directory / "model.safetensors", directory / "model.safetensors.index.json"
    if single.is_file():
        return load_file(single)
    if index.is_file():
        shards = sorted(set(json.loads(index.read_text())["weight_map"].values()))
        return {k: v for shard in shards for k, v in load_file(directory / shard).items()}
    if (directory / "pytorch_model.bin").is_file():
        return _read_state_dict(directory / "pytorch_model.bin")
    raise DataNotFoundError(
        f"{directory} holds neither model.safetensors, model.safetensors.index.json nor pytorch_model.bin"
    )


def _model_from_hf_config(config: Any) -> ContrastiveModel:
    if getattr(config, "model_type", None) != "clip":
        raise ConfigError(
            f"HF model_type {getattr(config, 'model_type', None)!r} is not supported; only 'clip' (CLIPModel)"
        )
    v, t = config.vision_config, config.text_config
    image = VisionTransformer(
        patch_size=v.patch_size,
        width=v.hidden_size,
        layers=v.num_hidden_layers,
        heads=v.num_attention_heads,
        in_channels=v.num_channels,
        image_size=v.image_size,
        mlp_ratio=v.intermediate_size / v.hidden_size,
        act=_hf_activation(v.hidden_act, "vision_config.hidden_act"),
        ln_eps=v.layer_norm_eps,
    )
    text = TextTransformer(
        width=t.hidden_size,
        layers=t.num_hidden_layers,
        heads=t.num_attention_heads,
        vocab_size=t.vocab_size,
        context_length=t.max_position_embeddings,
        mlp_ratio=t.intermediate_size / t.hidden_size,
        act=_hf_activation(t.hidden_act, "text_config.hidden_act"),
        ln_eps=t.layer_norm_eps,
    )
    return ContrastiveModel({"image": image, "text": text}, embed_dim=config.projection_dim)


def load_hf_clip(path_or_model: PathLike | nn.Module) -> tuple[ContrastiveModel, ClipTokenizerInfo]:
    """A ``transformers`` CLIP (a ``save_pretrained`` directory, or a ``CLIPModel``) → Chorus, in eval mode.

    Needs ``transformers`` (the ``text`` extra) to read the config. Weights are
    copied into float32 parameters. Raises DataNotFoundError for a missing
    directory/weights and ConfigError for non-CLIP configs, unsupported
    activations, or weights that do not match the config (naming the keys).
    """
    if isinstance(path_or_model, (str, os.PathLike)):
        from transformers import AutoConfig

        directory = Path(path_or_model)
        if not (directory / "config.json").is_file():
            raise DataNotFoundError(f"no HF checkpoint at {directory}: config.json is missing")
        config = AutoConfig.from_pretrained(directory)
        model = _model_from_hf_config(config)
        weights = _hf_weights(directory)
        tokenizer_files = [f for f in ("tokenizer.json", "vocab.json") if (directory / f).is_file()]
        files = directory if tokenizer_files else None
        source = str(directory)
    else:
        if not hasattr(path_or_model, "config"):
            raise ConfigError(
                f"expected a CLIP checkpoint directory or a transformers CLIPModel, got {type(path_or_model).__name__}"
            )
        config, weights, files = path_or_model.config, path_or_model.state_dict(), None
        source = type(path_or_model).__name__
        model = _model_from_hf_config(config)
    _load_mapped(model, {key: _hf_rule(key) for key in model.state_dict()}, weights, source)
    t = config.text_config
    legacy = t.eos_token_id == 2  # HF's marker for argmax pooling; the EOT is then CLIP's largest id
    info = ClipTokenizerInfo(
        vocab_size=t.vocab_size,
        context_length=t.max_position_embeddings,
        bos_token_id=t.bos_token_id,
        eos_token_id=t.vocab_size - 1 if legacy else t.eos_token_id,
        pad_token_id=t.pad_token_id,
        files=files,
    )
    return model.eval(), info


def export_hf_clip(model: ContrastiveModel, out_dir: PathLike, tokenizer: ClipTokenizerInfo | None = None) -> None:
    """Write ``model`` as a ``transformers.CLIPModel`` directory (``config.json`` + ``model.safetensors``).

    ``tokenizer`` sets the special-token ids in the config (default: CLIP's
    layout, ``bos = vocab - 2``, ``eos = vocab - 1``, ``pad = 0``). HF pools at
    the first ``eos_token_id``, so it must be the id each row's mask ends at;
    ``eos_token_id=2`` is refused because HF reads it as legacy argmax pooling.
    Tokenizer files are not written. Needs ``transformers``.
    """
    from transformers import CLIPConfig, CLIPModel

    image, text = _clip_towers(model, "HF CLIP")
    if model.logit_bias is not None:
        raise ConfigError("HF CLIPModel has no logit_bias: a SigLIP-style model (bias=...) cannot be exported as CLIP")
    if tokenizer is None:
        tokenizer = ClipTokenizerInfo(text.vocab_size, text.context_length, text.vocab_size - 2, text.vocab_size - 1, 0)
    if (tokenizer.vocab_size, tokenizer.context_length) != (text.vocab_size, text.context_length):
        raise ConfigError(
            f"tokenizer (vocab_size={tokenizer.vocab_size}, context_length={tokenizer.context_length}) does not match "
            f"the text tower (vocab_size={text.vocab_size}, context_length={text.context_length})"
        )
    if tokenizer.eos_token_id == 2:
        raise ConfigError(
            "eos_token_id=2 makes HF CLIP pool at argmax(ids) (a legacy rule), not at the end-of-text token; "
            "re-tokenise with another end-of-text id to export to HF"
        )
    v, t = _shape(image, "image"), _shape(text, "text")
    config = CLIPConfig(
        projection_dim=model.embed_dim,
        logit_scale_init_value=model.logit_scale.detach().item(),
        vision_config={
            "hidden_size": v.width,
            "intermediate_size": v.hidden,
            "num_hidden_layers": v.layers,
            "num_attention_heads": v.heads,
            "num_channels": image.in_channels,
            "image_size": image.image_size,
            "patch_size": image.conv1.kernel_size[0],
            "hidden_act": v.act,
            "layer_norm_eps": v.eps,
            "projection_dim": model.embed_dim,
        },
        text_config={
            "vocab_size": text.vocab_size,
            "hidden_size": t.width,
            "intermediate_size": t.hidden,
            "num_hidden_layers": t.layers,
            "num_attention_heads": t.heads,
            "max_position_embeddings": text.context_length,
            "hidden_act": t.act,
            "layer_norm_eps": t.eps,
            "projection_dim": model.embed_dim,
            "bos_token_id": tokenizer.bos_token_id,
            "eos_token_id": tokenizer.eos_token_id,
            "pad_token_id": tokenizer.pad_token_id,
        },
    )
    state = _export_state(model)
    hf = CLIPModel(config)
    hf.load_state_dict(_export_mapped(state, {key: _hf_rule(key) for key in state}), strict=True)
    hf.save_pretrained(out_dir)


# ---------------------------------------------------------------- OpenCLIP

# open_clip's CLIPVisionCfg / CLIPTextCfg defaults for the keys Chorus reads (configs omit defaults).
_OC_VISION_DEFAULTS = {
    "layers": 12,
    "width": 768,
    "head_width": 64,
    "mlp_ratio": 4.0,
    "patch_size": 16,
    "image_size": 224,
}
_OC_TEXT_DEFAULTS = {
    "context_length": 77,
    "vocab_size": 49408,
    "width": 512,
    "heads": 8,
    "layers": 12,
    "mlp_ratio": 4.0,
}
# init_logit_scale only initialises a parameter the weights then overwrite.
_OC_TOP_KEYS = {
    "embed_dim",
    "vision_cfg",
    "text_cfg",
    "quick_gelu",
    "custom_text",
    "init_logit_scale",
    "init_logit_bias",
}
_OC_BLOCK_FIXED = {  # options of open_clip's transformer blocks that Chorus does not have: must stay at the default
    "ls_init_value": (None,),
    "act_kwargs": (None,),
    "block_type": (None, "default"),
    "qk_norm": (False,),
    "scaled_cosine_attn": (False,),
    "scale_heads": (False,),
    "scale_attn_inner": (False,),
    "scale_attn": (False,),
    "scale_fc": (False,),
    "final_ln_after_pool": (False,),
}
_OC_VISION_FIXED = {
    **_OC_BLOCK_FIXED,
    "attentional_pool": (False,),
    "no_ln_pre": (False,),
    "pos_embed_type": ("learnable",),
    "pool_type": ("tok",),
    "timm_model_name": (None,),
}
_OC_TEXT_FIXED = {
    **_OC_BLOCK_FIXED,
    "embed_cls": (False,),
    "no_causal_mask": (False,),
    "pool_type": ("argmax", "eos"),
    "proj_bias": (False,),
    "proj_type": ("linear",),
    "hf_model_name": (None,),
}
# Options that do not change eval-mode outputs (training-time dropout, tokenizer choice, unused branches).
_OC_VISION_IGNORED = {
    "patch_dropout",
    "output_tokens",
    "attn_pooler_queries",
    "attn_pooler_heads",
    "timm_model_pretrained",
    "timm_pool",
    "timm_proj",
    "timm_proj_bias",
    "timm_drop",
    "timm_drop_path",
}
_OC_TEXT_IGNORED = {
    "hf_tokenizer_name",
    "tokenizer_mode",
    "tokenizer_kwargs",
    "pad_id",
    "eos_id",
    "output_tokens",
    "hf_model_pretrained",
    "hf_proj_type",
    "hf_pooler_type",
}


def _check_section(
    cfg: Mapping[str, Any], name: str, used: set[str], fixed: Mapping[str, tuple[Any, ...]], ignored: set[str]
) -> None:
    """Unknown keys and options Chorus lacks (set away from open_clip's default) are ConfigErrors."""
    unknown = sorted(set(cfg) - used - set(fixed) - ignored)
    if unknown:
        raise ConfigError(f"OpenCLIP {name} has unknown keys {unknown}; known: {sorted(used | set(fixed) | ignored)}")
    for key, allowed in fixed.items():
        if cfg.get(key, allowed[0]) not in allowed:
            raise ConfigError(
                f"OpenCLIP {name}.{key}={cfg[key]!r} is not supported by Chorus (supported: {list(allowed)})"
            )


def _square(value: int | list[int] | tuple[int, ...], key: str) -> int:
    if isinstance(value, int):
        return value
    if len(set(value)) != 1:
        raise ConfigError(f"OpenCLIP {key}={list(value)} is not square; Chorus' vit needs one size")
    return int(value[0])


def _ln_eps(cfg: Mapping[str, Any], name: str) -> float:
    norm = cfg.get("norm_kwargs") or {}
    if set(norm) - {"eps"}:
        raise ConfigError(f"OpenCLIP {name}.norm_kwargs {sorted(norm)} is not supported; only 'eps'")
    return float(norm.get("eps", 1e-5))


def _mlp_ratio(width: int, ratio: float) -> float:
    """OpenCLIP's hidden size is ``int(width * ratio)``; hand Chorus the ratio that rounds to it exactly."""
    return int(width * ratio) / width


def _model_from_open_clip_config(config: Mapping[str, Any]) -> tuple[ContrastiveModel, str]:
    """The Chorus model a model config describes, and the key prefix of its text tower."""
    unknown = sorted(set(config) - _OC_TOP_KEYS)
    if unknown:
        raise ConfigError(
            f"OpenCLIP config keys {unknown} are not supported (e.g. CoCa's multimodal_cfg); "
            f"known: {sorted(_OC_TOP_KEYS)}"
        )
    missing = sorted({"embed_dim", "vision_cfg", "text_cfg"} - set(config))
    if missing:
        raise ConfigError(f"OpenCLIP config lacks {missing}")
    vision, text = config["vision_cfg"], config["text_cfg"]
    if isinstance(vision.get("layers"), (list, tuple)):
        raise ConfigError(
            f"OpenCLIP vision_cfg.layers={vision['layers']} describes a ModifiedResNet visual tower; "
            "Chorus loads only ViT towers"
        )
    _check_section(vision, "vision_cfg", {*_OC_VISION_DEFAULTS, "norm_kwargs"}, _OC_VISION_FIXED, _OC_VISION_IGNORED)
    _check_section(text, "text_cfg", {*_OC_TEXT_DEFAULTS, "norm_kwargs"}, _OC_TEXT_FIXED, _OC_TEXT_IGNORED)
    v, t = {**_OC_VISION_DEFAULTS, **vision}, {**_OC_TEXT_DEFAULTS, **text}
    act: Activation = "quick_gelu" if config.get("quick_gelu", False) else "gelu"
    image_tower = VisionTransformer(
        patch_size=_square(v["patch_size"], "vision_cfg.patch_size"),
        width=v["width"],
        layers=v["layers"],
        heads=v["width"] // v["head_width"],
        image_size=_square(v["image_size"], "vision_cfg.image_size"),
        mlp_ratio=_mlp_ratio(v["width"], v["mlp_ratio"]),
        act=act,
        ln_eps=_ln_eps(vision, "vision_cfg"),
    )
    text_tower = TextTransformer(
        width=t["width"],
        layers=t["layers"],
        heads=t["heads"],
        vocab_size=t["vocab_size"],
        context_length=t["context_length"],
        mlp_ratio=_mlp_ratio(t["width"], t["mlp_ratio"]),
        act=act,
        ln_eps=_ln_eps(text, "text_cfg"),
    )
    bias = config.get("init_logit_bias")
    model = ContrastiveModel(
        {"image": image_tower, "text": text_tower},
        embed_dim=config["embed_dim"],
        bias=None if bias is None else float(bias),
    )
    return model, "text." if config.get("custom_text", False) else ""


def _open_clip_rule(key: str, text_prefix: str) -> Rule:
    """The OpenCLIP key of one Chorus tensor (``text_prefix`` is ``"text."`` for CustomTextCLIP)."""
    if key == "projections.image.weight":
        return ("visual.proj",), "transpose"
    if key == "projections.text.weight":
        return (f"{text_prefix}text_projection",), "transpose"
    if key in ("logit_scale", "logit_bias"):
        return (key,), "copy"
    renamed = _rename(key, (("encoders.image.", "visual."), ("encoders.text.", text_prefix)))
    if renamed is None:
        raise ConfigError(f"Chorus parameter {key!r} has no counterpart in OpenCLIP's CLIP")
    return (renamed,), "copy"


def _read_state_dict(path: Path) -> dict[str, Tensor]:
    """A state dict from safetensors or a torch checkpoint (``{"state_dict": ...}`` and ``module.`` unwrapped)."""
    if not path.is_file():
        raise DataNotFoundError(f"no OpenCLIP checkpoint at {path}")
    if path.suffix == ".safetensors":
        return load_file(path)
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # a TorchScript archive or a pickle with arbitrary objects
        raise DataError(f"cannot read {path} as a plain state dict ({error}); re-save it with open_clip") from error
    state = checkpoint.get("state_dict", checkpoint) if isinstance(checkpoint, dict) else None
    if not isinstance(state, dict):
        raise DataError(f"{path} holds a {type(checkpoint).__name__}, not a state dict")
    return {k.removeprefix("module."): v for k, v in state.items()}


def load_open_clip(
    state_dict_or_path: Mapping[str, Tensor] | PathLike, config: Mapping[str, Any] | None = None
) -> ContrastiveModel:
    """An OpenCLIP ``CLIP`` checkpoint → Chorus ``ContrastiveModel``, in eval mode.

    ``state_dict_or_path``: a state dict, a checkpoint file (``.safetensors``,
    ``.pt``/``.bin``), or a directory written by :func:`export_open_clip` /
    the HF-hub layout (``open_clip_config.json`` + ``open_clip_model.safetensors`` or
    ``open_clip_pytorch_model.bin``).
    ``config``: the model config (``model_configs/*.json`` content, or
    ``{"model_cfg": ...}``); read from the directory when omitted. ViT towers
    with the standard text tower only (``CLIP`` or ``custom_text``); other
    towers/options raise ConfigError naming the key, as do weights that do
    not match the config (listing missing/unexpected keys or bad shapes).
    """
    if isinstance(state_dict_or_path, (str, os.PathLike)):
        path = Path(state_dict_or_path)
        if path.is_dir():
            if config is None:
                config_path = path / OPEN_CLIP_CONFIG
                if not config_path.is_file():
                    raise DataNotFoundError(f"{path} has no {OPEN_CLIP_CONFIG}; pass config=")
                config = json.loads(config_path.read_text())
            path = path / OPEN_CLIP_WEIGHTS if (path / OPEN_CLIP_WEIGHTS).is_file() else path / OPEN_CLIP_HUB_WEIGHTS
        weights, source = _read_state_dict(path), str(path)
    else:
        weights, source = dict(state_dict_or_path), "OpenCLIP state dict"
    if config is None:
        raise ConfigError("load_open_clip needs the model config (config=) for a state dict or a single file")
    model, text_prefix = _model_from_open_clip_config(config.get("model_cfg", config))
    _load_mapped(model, {key: _open_clip_rule(key, text_prefix) for key in model.state_dict()}, weights, source)
    return model.eval()


def export_open_clip(model: ContrastiveModel, out_dir: PathLike, eos_token_id: int | None = None) -> dict[str, Any]:
    """Write ``open_clip_config.json`` (``{"model_cfg": ...}``) + ``open_clip_model.safetensors`` to ``out_dir``.

    ``open_clip.create_model("local-dir:" + out_dir)`` loads it, as does
    ``create_model`` from the returned model config + ``load_state_dict``.
    OpenCLIP pools the text at ``argmax(ids)`` unless told an ``eos_token_id``
    (then ``pool_type="eos"``): pass it when the end-of-text id is not the
    largest id of the vocabulary. Both towers must share one activation
    (OpenCLIP's single ``quick_gelu`` flag).
    """
    image, text = _clip_towers(model, "OpenCLIP")
    v, t = _shape(image, "image"), _shape(text, "text")
    if v.act != t.act:
        raise ConfigError(f"OpenCLIP uses one activation for both towers; image uses {v.act}, text uses {t.act}")
    if image.in_channels != 3:
        raise ConfigError(f"OpenCLIP's ViT reads 3-channel images; this vit has in_channels={image.in_channels}")
    for name, s in (("image", v), ("text", t)):
        if int(s.width * (s.hidden / s.width)) != s.hidden:
            raise ConfigError(
                f"the {name} MLP width {s.hidden} is not expressible as OpenCLIP's int(width * mlp_ratio)"
            )
    vision_cfg: dict[str, Any] = {
        "image_size": image.image_size,
        "layers": v.layers,
        "width": v.width,
        "head_width": v.width // v.heads,
        "mlp_ratio": v.hidden / v.width,
        "patch_size": image.conv1.kernel_size[0],
    }
    text_cfg: dict[str, Any] = {
        "context_length": text.context_length,
        "vocab_size": text.vocab_size,
        "width": t.width,
        "heads": t.heads,
        "layers": t.layers,
        "mlp_ratio": t.hidden / t.width,
    }
    for cfg, s in ((vision_cfg, v), (text_cfg, t)):
        if s.eps != 1e-5:
            cfg["norm_kwargs"] = {"eps": s.eps}
    if eos_token_id is not None:
        text_cfg.update(pool_type="eos", eos_id=eos_token_id)
    model_cfg: dict[str, Any] = {
        "embed_dim": model.embed_dim,
        "quick_gelu": v.act == "quick_gelu",
        "vision_cfg": vision_cfg,
        "text_cfg": text_cfg,
    }
    if model.logit_bias is not None:
        model_cfg["init_logit_bias"] = model.logit_bias.detach().item()
    state = _export_state(model)
    weights = _export_mapped(state, {key: _open_clip_rule(key, "") for key in state})
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / OPEN_CLIP_CONFIG).write_text(json.dumps({"model_cfg": model_cfg}, indent=2))
    save_file(weights, out / OPEN_CLIP_WEIGHTS)
    return model_cfg
