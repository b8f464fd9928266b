"""Collate: stacking, padding masks, tokenization and dropping skipped samples."""

from __future__ import annotations

import pytest
import torch

from chorus.data import FSDD, BPETokenizer, Collate, LogMel
from chorus.errors import DataError


def test_waveforms_and_logmels_padded_with_masks(real_data_root):
    ds = FSDD(real_data_root, split="test")
    samples = [ds[i] for i in range(4)]
    lengths = [s["audio"].numel() for s in samples]
    batch = Collate()(samples)
    assert batch["audio"].shape == (4, max(lengths)) and batch["audio_mask"].shape == (4, max(lengths))
    for i, n in enumerate(lengths):
        assert batch["audio_mask"][i].sum() == n and batch["audio_mask"][i, :n].all()
        assert torch.equal(batch["audio"][i, :n], samples[i]["audio"]) and (batch["audio"][i, n:] == 0).all()
    assert torch.equal(batch["label"], torch.tensor([s["label"] for s in samples]))
    assert batch["speaker"] == [s["speaker"] for s in samples]  # strings stay lists
    lm = LogMel()
    mels = [dict(s, audio=lm(s["audio"])) for s in samples]
    mb = Collate()(mels)
    frames = [lm.num_frames(n) for n in lengths]
    assert mb["audio"].shape == (4, 40, max(frames))
    assert mb["audio_mask"].sum(1).tolist() == frames
    # the mask from padded waveform lengths equals the mask of padded log-mels
    assert torch.equal(lm.num_frames(batch["audio_mask"].sum(1)), mb["audio_mask"].sum(1))


def test_images_text_and_dropped():
    tok = BPETokenizer.train(["a dog runs", "a cat sleeps", "two dogs play"] * 5, vocab_size=300, min_frequency=1)
    samples = [
        {"image": torch.full((3, 4, 4), float(i)), "text": t, "image_id": i}
        for i, t in enumerate(["a dog", "a cat sleeps"])
    ]
    collate = Collate(tokenizer=tok, context_length=10)
    batch = collate([samples[0], None, samples[1], None])
    assert collate.dropped == 2
    assert batch["image"].shape == (2, 3, 4, 4) and batch["image"][1].eq(1).all()
    ids, mask = tok(["a dog", "a cat sleeps"], 10)
    assert torch.equal(batch["text"], ids) and torch.equal(batch["text_mask"], mask)
    assert batch["text_raw"] == ["a dog", "a cat sleeps"] and batch["image_id"] == [0, 1]
    assert collate([None, None]) is None and collate.dropped == 4
    assert Collate()(samples)["text"] == ["a dog", "a cat sleeps"]


def test_collate_errors():
    with pytest.raises(DataError, match="shape"):
        Collate()([{"image": torch.zeros(3, 4, 4)}, {"image": torch.zeros(3, 5, 4)}])
    with pytest.raises(DataError, match="keys"):
        Collate()([{"label": 1}, {"label": 2, "text": "x"}])
