"""A tiny but real CLIP checkpoint, made the way a user's download was made: by ``transformers``.

The tokenizer is a genuine CLIP BPE: trained with ``tokenizers`` on COCO
captions with CLIP's text pipeline (words end in ``</w>``) and written in
CLIP's file format, i.e. ``vocab.json`` ordered as OpenAI/OpenCLIP order it
(the 256 byte symbols, the same with ``</w>``, one token per merge, then
``<|startoftext|>`` and ``<|endoftext|>``, so the end-of-text id is the
largest) and ``merges.txt``; ``transformers.CLIPTokenizer`` reads it as it
reads OpenAI's files. The model is a randomly initialised (seeded)
``CLIPModel`` whose norms and biases are perturbed away from their init, so
every tensor matters. Used by the import tests and by the docs example test.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import torch
from tokenizers import Tokenizer, models, trainers

from chorus.data.text import ClipTokenizer, clip_byte_alphabet


def coco_captions(data_root: Path) -> list[str]:
    with open(data_root / "coco_captions_mini" / "captions.csv", newline="", encoding="utf-8") as f:
        return [row["caption"] for row in csv.DictReader(f)]


def train_clip_bpe(captions: list[str], out_dir: Path, merges: int = 700) -> Path:
    """Learn ``merges`` CLIP-style merges from ``captions``; write ``vocab.json`` + ``merges.txt`` to ``out_dir``."""
    pipeline = ClipTokenizer.from_vocab({"<|startoftext|>": 0, "<|endoftext|>": 1}, []).tokenizer
    tok = Tokenizer(models.BPE(continuing_subword_prefix="", end_of_word_suffix="</w>"))
    tok.normalizer, tok.pre_tokenizer = pipeline.normalizer, pipeline.pre_tokenizer
    alphabet = clip_byte_alphabet()
    trainer = trainers.BpeTrainer(
        vocab_size=2 * len(alphabet) + merges,
        min_frequency=2,
        show_progress=False,
        initial_alphabet=alphabet,
        end_of_word_suffix="</w>",
    )
    tok.train_from_iterator(captions, trainer=trainer)
    learned = [m if isinstance(m, list) else m.split() for m in json.loads(tok.to_str())["model"]["merges"]]
    tokens = [*alphabet, *(c + "</w>" for c in alphabet)]
    tokens += [t for t in dict.fromkeys("".join(m) for m in learned) if t not in set(tokens)]
    tokens += ["<|startoftext|>", "<|endoftext|>"]
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "vocab.json").write_text(json.dumps({t: i for i, t in enumerate(tokens)}, ensure_ascii=False))
    (out_dir / "merges.txt").write_text("#version: 0.2\n" + "\n".join(" ".join(m) for m in learned) + "\n")
    return out_dir


def make_hf_clip(data_root: Path, out_dir: Path, seed: int = 0, image_size: int = 32) -> Path:
    """Save a tiny random ``CLIPModel`` + ``CLIPProcessor`` (the COCO-trained BPE) into ``out_dir``."""
    from transformers import (
        CLIPConfig,
        CLIPImageProcessor,
        CLIPModel,
        CLIPProcessor,
        CLIPTokenizer,
    )

    tokenizer_dir = train_clip_bpe(coco_captions(data_root), out_dir.parent / f"{out_dir.name}-bpe")
    tokenizer = CLIPTokenizer.from_pretrained(tokenizer_dir, model_max_length=77)
    vocab_size = len(tokenizer)
    torch.manual_seed(seed)
    config = CLIPConfig(
        projection_dim=32,
        text_config={
            "vocab_size": vocab_size,
            "hidden_size": 48,
            "intermediate_size": 96,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "max_position_embeddings": 77,
            "hidden_act": "quick_gelu",
            "bos_token_id": tokenizer.bos_token_id,
            "eos_token_id": tokenizer.eos_token_id,
            "pad_token_id": tokenizer.pad_token_id,
        },
        vision_config={
            "hidden_size": 64,
            "intermediate_size": 128,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "image_size": image_size,
            "patch_size": 8,
            "hidden_act": "quick_gelu",
        },
    )
    model = CLIPModel(config).eval()
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "norm" in name or name.endswith("bias"):
                param.add_(0.1 * torch.randn_like(param))
    model.save_pretrained(out_dir)
    processor = CLIPProcessor(
        image_processor=CLIPImageProcessor(
            size={"shortest_edge": image_size}, crop_size={"height": image_size, "width": image_size}
        ),
        tokenizer=tokenizer,
    )
    processor.save_pretrained(out_dir)
    return out_dir
