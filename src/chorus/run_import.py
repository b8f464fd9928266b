"""``chorus import``: a pretrained CLIP checkpoint on disk → an ordinary Chorus run folder.

What: :func:`import_clip` reads a ``transformers`` ``CLIPModel`` directory
(``save_pretrained``: ``config.json`` + weights + tokenizer files +
``preprocessor_config.json``/``processor_config.json``) or an OpenCLIP checkpoint
(a directory with ``open_clip_config.json``, or a weights file plus its model
config), and writes a run folder: ``model.safetensors`` (the weights, through
:mod:`chorus.contrastive.interop`), ``tokenizer.json`` + ``tokenizer_config.json``
(the checkpoint's own BPE, :class:`~chorus.data.text.ClipTokenizer`) and
``experiment.yaml`` whose ``model`` section rebuilds the architecture and whose
``data`` section carries the preprocessing: image size, resize, mean and std,
context length, ``tokenizer: clip``, and no dataset (``name: null``).

Why a run folder rather than a special "pretrained" code path: every command
that takes a run (``eval``-style zero-shot and retrieval, ``index build``,
``serve``, prediction, and training with ``model.init_from``) then works on a
downloaded CLIP unchanged, and the folder alone is enough to predict on
another machine (no dataset is built to load it).

Checks made at import, each a one-line ConfigError: the tokenizer's
end-of-text id must be where the source library pools the text (HF's
``eos_token_id``; OpenCLIP's ``eos_id`` or, for ``argmax`` pooling, the
largest id), its vocabulary must fit the embedding table, and the
preprocessing must be CLIP's (shorter side resized bicubically, centre crop of
the model's image size). OpenCLIP places its centre crop as torchvision does
(the half margin rounded, not floored), so OpenCLIP imports get
``data.image_crop_offset: round``: on images whose resized long side exceeds
the crop by an odd number of pixels that is one pixel away from
``transformers``' crop.
"""

from __future__ import annotations

import importlib.util
import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal, cast

from safetensors.torch import save_file

from chorus.config import save_config
from chorus.contrastive.interop import (
    OPEN_CLIP_CONFIG,
    clip_encoder_options,
    load_hf_clip,
    load_open_clip,
)
from chorus.contrastive.model import ContrastiveModel
from chorus.data.image import CLIP_MEAN, CLIP_STD
from chorus.data.text import ClipTokenizer
from chorus.encoders.text_transformer import TextTransformer
from chorus.encoders.vit import VisionTransformer
from chorus.errors import ConfigError, DataNotFoundError
from chorus.experiment import DataConfig, EncoderConfig, ExperimentConfig, ModelConfig
from chorus.train import TrainConfig

__all__ = ["as_run", "checkpoint_format", "import_clip"]

PathLike = str | os.PathLike[str]
Format = Literal["hf", "open_clip"]
_TOKENIZER_FILES = ("tokenizer.json", "vocab.json")
CLIP_TEMPLATE = "a photo of a {}."  # CLIP's basic zero-shot prompt (Radford et al. 2021, §3.1.4)


def checkpoint_format(source: PathLike) -> Format:
    """``"hf"`` for a ``transformers`` CLIP directory, ``"open_clip"`` for OpenCLIP's layout or a weights file."""
    path = Path(source)
    if not path.exists():
        raise DataNotFoundError(f"no checkpoint at {path}")
    if path.is_file() or (path / OPEN_CLIP_CONFIG).is_file() and not (path / "config.json").is_file():
        return "open_clip"
    if (path / "config.json").is_file():
        return "hf"
    raise ConfigError(
        f"{path} is neither a transformers CLIP directory (config.json) nor an OpenCLIP one "
        f"({OPEN_CLIP_CONFIG}); pass a weights file with --model-config for a bare OpenCLIP checkpoint"
    )


def _read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as err:
        raise ConfigError(f"cannot read {path} as JSON ({err})") from err


def _square(value: Any, what: str, source: Path) -> int:
    if isinstance(value, int):
        return value
    if isinstance(value, dict) and value.get("height") == value.get("width") and value.get("height"):
        return int(value["height"])
    raise ConfigError(f"{source}: {what}={value} is not one square size; Chorus crops CLIP's square view")


def _hf_preprocessing(directory: Path, image_size: int) -> dict[str, Any]:
    """``data.image_*`` from ``preprocessor_config.json`` (or transformers 5's ``processor_config.json``)."""
    source, data = directory / "preprocessor_config.json", {}
    if source.is_file():
        data = _read_json(source)
    elif (directory / "processor_config.json").is_file():
        source = directory / "processor_config.json"
        data = _read_json(source).get("image_processor", {})
    size = data.get("size", {"shortest_edge": image_size})
    shortest = size if isinstance(size, int) else size.get("shortest_edge")
    if shortest is None:
        raise ConfigError(
            f"{source}: size={size} resizes to a fixed shape; Chorus resizes the shorter side (CLIP's shortest_edge)"
        )
    crop = _square(data.get("crop_size", image_size), "crop_size", source)
    unsupported = {
        key: data[key]
        for key, ok in (
            ("do_resize", True),
            ("do_center_crop", True),
            ("resample", 3),
            ("do_normalize", True),
            ("do_rescale", True),
        )
        if key in data and data[key] != ok
    }
    if unsupported or abs(data.get("rescale_factor", 1 / 255) - 1 / 255) > 1e-9:
        raise ConfigError(
            f"{source}: {unsupported or {'rescale_factor': data['rescale_factor']}} is not CLIP's "
            "preprocessing (bicubic resize, centre crop, x/255 normalised); Chorus supports only that"
        )
    if crop != image_size:
        raise ConfigError(f"{source}: crop_size {crop} differs from the vision tower's image_size {image_size}")
    return {
        "image_size": crop,
        "image_resize": int(shortest) if shortest != crop else None,
        "image_mean": [float(v) for v in data.get("image_mean", CLIP_MEAN)],
        "image_std": [float(v) for v in data.get("image_std", CLIP_STD)],
    }


def _open_clip_preprocessing(config: dict[str, Any], image_size: int, source: Path) -> dict[str, Any]:
    """``data.image_*`` from an ``open_clip_config.json``'s ``preprocess_cfg`` (OpenAI's statistics by default)."""
    pre = config.get("preprocess_cfg", {})
    for key, ok in (("resize_mode", "shortest"), ("interpolation", "bicubic")):
        if pre.get(key, ok) != ok:
            raise ConfigError(f"{source}: preprocess_cfg.{key}={pre[key]!r} is not supported (only {ok!r})")
    size = pre.get("size", image_size)
    if (size if isinstance(size, int) else tuple(size)) not in (image_size, (image_size, image_size)):
        raise ConfigError(f"{source}: preprocess_cfg.size={size} differs from the vision tower's {image_size}")
    return {
        "image_size": image_size,
        "image_resize": None,
        "image_crop_offset": "round",
        "image_mean": [float(v) for v in pre.get("mean", CLIP_MEAN)],
        "image_std": [float(v) for v in pre.get("std", CLIP_STD)],
    }


def _open_clip_package_bpe() -> Path | None:
    """OpenCLIP's own merges file when the package is installed (found without importing it: it needs torchvision)."""
    spec = importlib.util.find_spec("open_clip")
    if spec is None or spec.origin is None:
        return None
    path = Path(spec.origin).parent / "bpe_simple_vocab_16e6.txt.gz"
    return path if path.is_file() else None


def _towers(model: ContrastiveModel) -> tuple[VisionTransformer, TextTransformer]:
    """The image and text towers the interop loaders build (``vit``, ``text_transformer``)."""
    return cast(VisionTransformer, model.encoders["image"]), cast(TextTransformer, model.encoders["text"])


def _load_hf(source: Path) -> tuple[ContrastiveModel, dict[str, Any], Path | None, int | None, str]:
    model, info = load_hf_clip(source)
    preprocessing = _hf_preprocessing(source, _towers(model)[0].image_size)
    return model, preprocessing, info.files, info.eos_token_id, "eos_token_id in config.json"


def _load_open_clip(
    source: Path, model_config: PathLike | None
) -> tuple[ContrastiveModel, dict[str, Any], Path | None, int | None, str]:
    if model_config is not None:
        config = _read_json(Path(model_config))
    elif source.is_dir():
        config = _read_json(source / OPEN_CLIP_CONFIG)
    else:
        raise ConfigError(
            f"{source} is a bare OpenCLIP weights file: pass its model config (--model-config, "
            "open_clip's model_configs/<name>.json)"
        )
    model_cfg = config.get("model_cfg", config)
    model = load_open_clip(source, model_cfg)
    preprocessing = _open_clip_preprocessing(config, _towers(model)[0].image_size, source)
    text_cfg = model_cfg.get("text_cfg", {})
    files = source if source.is_dir() and any((source / f).is_file() for f in _TOKENIZER_FILES) else None
    if files is None and text_cfg.get("hf_tokenizer_name") is None:
        files = _open_clip_package_bpe()
    if text_cfg.get("pool_type", "argmax") == "eos":
        return model, preprocessing, files, int(text_cfg.get("eos_id", 2)), "text_cfg.eos_id"
    return model, preprocessing, files, None, "argmax pooling (the largest id)"


def import_clip(
    source: PathLike,
    run_dir: PathLike,
    *,
    format: Format | None = None,
    tokenizer: PathLike | None = None,
    model_config: PathLike | None = None,
    classes: list[str] | None = None,
) -> dict[str, Any]:
    """Write the run folder ``run_dir`` for the CLIP checkpoint ``source``; return a summary of what was imported.

    ``format``: ``"hf"`` or ``"open_clip"`` (detected when omitted). ``tokenizer``: a directory with
    ``tokenizer.json`` or ``vocab.json`` + ``merges.txt``, a ``tokenizer.json`` file, or an OpenCLIP merges file;
    default the checkpoint's own files (for OpenCLIP also the installed open_clip package's merges file).
    ``model_config``: the model config JSON of a bare OpenCLIP weights file. ``classes``: default class names
    stored in the run (used by serving and prediction when a request names none).
    """
    source, run_dir = Path(source), Path(run_dir)
    if (run_dir / "experiment.yaml").exists():
        raise ConfigError(f"{run_dir} already holds a run; choose a new folder")
    format = format or checkpoint_format(source)
    if format == "hf":
        model, preprocessing, files, eos_id, eos_from = _load_hf(source)
    elif format == "open_clip":
        model, preprocessing, files, eos_id, eos_from = _load_open_clip(source, model_config)
    else:
        raise ConfigError(f"unknown checkpoint format {format!r}; use 'hf' or 'open_clip'")
    tokenizer_path = Path(tokenizer) if tokenizer is not None else files
    if tokenizer_path is None:
        raise ConfigError(
            f"{source} holds no tokenizer files (tokenizer.json or vocab.json + merges.txt): "
            "pass --tokenizer with the checkpoint's tokenizer"
        )
    image, text = _towers(model)
    tok = ClipTokenizer.load(tokenizer_path, vocab_size=text.vocab_size)
    eos_id = tok.vocab_size - 1 if eos_id is None else eos_id
    if tok.eot_id != eos_id:
        raise ConfigError(
            f"tokenizer {tokenizer_path}: its end-of-text id {tok.eot_id} is not the checkpoint's "
            f"({eos_id}, from {eos_from}); it is not this checkpoint's tokenizer"
        )
    if tok.vocab_size > text.vocab_size:
        raise ConfigError(
            f"tokenizer {tokenizer_path} has {tok.vocab_size} tokens, the text tower embeds only {text.vocab_size}"
        )
    options = clip_encoder_options(model)
    cfg = ExperimentConfig(
        name=source.stem if source.is_file() else source.resolve().name,
        data=DataConfig(
            name=None,
            image_channels=image.in_channels,
            tokenizer="clip",
            context_length=text.context_length,
            class_names=list(classes or []),
            **preprocessing,
        ),
        model=ModelConfig(
            task="contrastive",
            embed_dim=model.embed_dim,
            encoders={
                "image": EncoderConfig("vit", "tiny", options["image"]),
                "text": EncoderConfig("text_transformer", "tiny", options["text"]),
            },
            loss="infonce" if model.logit_bias is None else "siglip",
            zero_shot_templates=[CLIP_TEMPLATE],
        ),
        train=TrainConfig(epochs=1),  # required by the schema; training from this run uses its own config
    )
    run_dir.mkdir(parents=True, exist_ok=True)
    tok.save(run_dir)
    weights = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    save_file(weights, str(run_dir / "model.safetensors"))
    save_config(cfg, run_dir / "experiment.yaml")  # last: a folder with experiment.yaml is a complete run
    return {
        "run_dir": str(run_dir),
        "source": str(source),
        "format": format,
        "tokenizer": str(tokenizer_path),
        "image_size": cfg.data.image_size,
        "context_length": cfg.data.context_length,
        "vocab_size": text.vocab_size,
        "embed_dim": model.embed_dim,
        "parameters": sum(v.numel() for v in weights.values()),
    }


def _is_checkpoint(path: Path) -> bool:
    """A CLIP checkpoint rather than a run folder (which has experiment.yaml)?"""
    if path.is_file():
        return True
    return not (path / "experiment.yaml").is_file() and any(
        (path / f).is_file() for f in ("config.json", OPEN_CLIP_CONFIG)
    )


@contextmanager
def as_run(path: PathLike, **import_options: Any) -> Iterator[Path]:
    """The CLIP checkpoint at ``path`` imported into a temporary run folder that lives for the ``with`` block
    (one-command use of a downloaded checkpoint); any other ``path`` as it is (a run folder)."""
    if not _is_checkpoint(Path(path)):
        yield Path(path)
        return
    with tempfile.TemporaryDirectory(prefix="chorus-import-") as tmp:
        import_clip(path, Path(tmp) / "run", **import_options)
        yield Path(tmp) / "run"
