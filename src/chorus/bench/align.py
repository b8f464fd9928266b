"""``chorus bench align``: forced, unsupervised and implicit alignment scored against exact word boundaries.

What it measures, all on held-out FSDD speakers (``test_speakers``)
using the composite sets of :mod:`chorus.data.sequences`, whose word boundaries
are exact to the sample:

1. **Supervised forced alignment.** A :class:`~chorus.align.models.FrameTagger`
   (1-D CNN over 10 ms log-mel frames) trained with frame labels; Viterbi forced
   alignment of the known transcript (:func:`~chorus.align.forced_align`) with
   silence between words → mean absolute boundary error (ms)
   and % of speech frames on the right digit. Baseline: uniform segmentation
   (the utterance split equally among its digits). Target ≤ 20 ms.
2. **Speaker-to-speaker DTW.** The same digit string by two held-out speakers
   aligned by DTW on raw log-mel, on MFCC (DCT of the log-mel, per-utterance
   mean/variance normalised) and on the learned posteriorgram of task 1
   (cost −log pᵀq, Hazen et al. 2009). Boundaries of one utterance are mapped
   through the path and compared to the other's. Baseline: proportional-time
   (diagonal) mapping. Target ≤ 60 ms.
3. **Audio ↔ video.** An MNIST slide-show aligned to the spoken digits by DTW
   over −log p(video frame | audio frame) (softmax of scaled cosines) in a frame/image space learnt contrastively from isolated
   AV-Digits (clip, image) pairs — no boundary is ever seen
   (:class:`~chorus.align.models.FrameImageEmbedding`). Score: % of video frames
   whose matched audio lies on the right digit. Baseline: the diagonal alignment.
   Target ≥ 90 %. A segmental variant (:mod:`chorus.align.segments`) aligns
   units instead of frames — speech segments from the audio's own energy,
   shots from frame differencing — with the same space's cost pooled over
   each unit, and reports how often each cut finds the true digit count.
4. **Implicit alignment.** An :class:`~chorus.align.models.AttentionRecognizer`
   trained on transcripts only; the share of attention peaks inside the right
   word (chance = mean word length / frames), against the uniform baseline's
   peak at the centre of the k-th equal part.

Timings are not reported; every training task runs once per seed (mean ± std).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TypeVar, cast

import numpy as np
import torch
from torch import Tensor

from chorus.align import cost_matrix, dtw_from_cost, forced_align, frame_accuracy, peak_hit_rate
from chorus.align.attention import attention_peaks
from chorus.align.metrics import path_to_frame_labels
from chorus.align.models import IGNORE, AttentionRecognizer, FrameImageEmbedding, FrameTagger
from chorus.align.segments import (
    energy_segments,
    monotone_segment_path,
    pool_segments,
    segment_frame_pairs,
    shot_segments,
)
from chorus.bench.driver import Report
from chorus.data import LogMel
from chorus.data.audio import cmvn, mfcc
from chorus.data.avdigits import AVDigits
from chorus.data.base import ChorusDataset, Sample
from chorus.data.collate import pad_time
from chorus.data.sequences import AVSequences, DigitStrings, trim_silence
from chorus.encoders import build_encoder
from chorus.eval.mode import evaluating
from chorus.eval.report import MethodCard, fmt_mean_std
from chorus.train import TrainConfig, Trainer

SAMPLE_RATE = 8000
HOP = 80  # samples: 10 ms frames at 8 kHz
N_MELS = 40


# ----------------------------------------------------------------------------- options


@dataclass(frozen=True)
class Config:
    """Every setting of the benchmark (``key=value`` overrides on the command line)."""

    seeds: tuple[int, ...] = (0, 1, 2)
    data_root: str | None = None
    test_speakers: tuple[str, ...] = ("theo", "lucas")  # held-out FSDD speakers (>= 2: test pairs have two)
    train_size: int = 400  # training utterances
    test_size: int = 100  # test utterances / pairs / AV sequences
    steps: int = 600  # optimizer steps of the tagger and the AV embedding
    attention_steps: int | None = None  # of the attention recogniser (None: 2 × steps)
    attention_seeds: tuple[int, ...] | None = None  # for the attention recogniser, the costliest model (None: seeds)
    av_clips: int = 2000  # AV-Digits training clips (2000 = all of them with the default held-out speakers)
    device: str | None = None  # torch device (None: cuda if available)

    @property
    def sizes(self) -> dict[str, int]:
        return {
            "train": self.train_size,
            "test": self.test_size,
            "steps": self.steps,
            "attention_steps": self.attention_steps or 2 * self.steps,
            "av_clips": self.av_clips,
        }


PRESETS = {
    "full": Config(),
    # Reduced sizes and steps (minutes, not tens).
    "quick": replace(Config(), train_size=32, test_size=8, steps=20, av_clips=256),
}


# ----------------------------------------------------------------------------- data

M = TypeVar("M", bound=torch.nn.Module)


def sample_at(ds: ChorusDataset, index: int) -> Sample:
    """``ds[index]``: these datasets raise on bad data (``on_error="raise"``), so no item is skipped."""
    sample = ds[index]
    assert sample is not None
    return sample


def featurize(sample: dict[str, Any], logmel: LogMel) -> dict[str, Any]:
    """CMVN log-mel ``audio`` [n_mels, T] (raw in ``logmel``) plus per-frame truth of one digit-string sample.

    Frame ``i`` is centred on sample ``i * HOP``; it belongs to word ``k`` when
    that centre lies in the word's sample span. Boundaries are kept as exact
    fractional frame positions (``sample / HOP``), so quantisation is scored too.
    """
    with torch.no_grad():
        raw = logmel(sample["audio"])
    feats = cmvn(raw)
    frames = feats.shape[1]
    bounds = np.asarray(sample["boundary_samples"], dtype=np.float64)  # [L, 2]
    centres = np.arange(frames) * HOP
    position = np.full(frames, -1, dtype=np.int64)
    for k, (s, e) in enumerate(bounds):
        position[(centres >= s) & (centres < e)] = k
    digits = torch.tensor(sample["digits"], dtype=torch.long)
    classes = np.where(position >= 0, digits.numpy()[np.maximum(position, 0)] + 1, 0)
    return {
        "audio": feats,
        "logmel": raw,
        "digits": digits,
        "bounds": bounds / HOP,
        "position": position,
        "frame_labels": torch.from_numpy(classes),
        "speaker": sample["speaker"],
    }


def collate(items: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Pad log-mels (→ ``audio``, ``audio_mask``), frame labels (IGNORE) and transcripts (``targets``, ``target_mask``).

    Transcripts hold class ids (digit + 1; 0 is the silence / blank class).
    """
    audio, mask = pad_time([it["audio"] for it in items], "audio")
    labels, _ = pad_time([it["frame_labels"] for it in items], "frame_labels")
    labels = labels.masked_fill(~mask, IGNORE)
    targets, target_mask = pad_time([it["digits"] + 1 for it in items], "digits")
    return {"audio": audio, "audio_mask": mask, "frame_labels": labels, "targets": targets, "target_mask": target_mask}


def attention_collate(items: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """:func:`collate` with ``targets`` as digit ids 0–9, the classes :class:`AttentionRecognizer` names.

    (``collate`` shifts digits by one for the blank/silence class 0 of forced
    alignment; the recogniser's extra class is "none" = 10, so shifted targets
    would make digit 9 and "no more digits" one class.)
    """
    batch = collate(items)
    batch["targets"] = (batch["targets"] - 1).masked_fill(~batch["target_mask"], 0)
    return batch


def nearest_word(position: np.ndarray, bounds: np.ndarray) -> np.ndarray:
    """Word index of each frame, pauses taking the word whose span [start, end) is nearest (ties: the earlier word)."""
    x = np.arange(len(position))[:, None].astype(np.float64)
    distance = np.maximum(np.maximum(bounds[None, :, 0] - x, 0.0), x - bounds[None, :, 1])
    return np.where(position >= 0, position, distance.argmin(axis=1))


# ----------------------------------------------------------------------------- training


def train(
    model: M,
    data: Sequence[Any],
    collate_fn: Any,
    steps: int,
    batch_size: int,
    lr: float,
    seed: int,
    run_dir: Path,
    device: str | None,
) -> M:
    """The one Trainer, precision auto, cosine schedule with warm-up, no progress bar or TensorBoard."""
    config = TrainConfig(
        max_steps=steps,
        batch_size=batch_size,
        lr=lr,
        warmup_steps=max(1, steps // 10),
        precision="auto",
        seed=seed,
        progress=False,
        tensorboard=False,
        log_every=max(1, steps // 4),
        device=device,
    )
    trainer = Trainer(model, list(data), config, run_dir, collate_fn=collate_fn)
    trainer.fit()
    return cast(M, trainer.raw_model)  # the model itself, moved to the device


def audio_cnn(strides: tuple[int, ...]) -> torch.nn.Module:
    """The audio backbone of every task: ``audio_cnn`` with 64-wide kernel-5 blocks, one per stride, 40 mel bands.

    Kept this small on purpose: the benchmark trains 9 models on a shared CPU.
    """
    return build_encoder("audio_cnn", "tiny", n_mels=N_MELS, widths=(64,) * len(strides), strides=strides)


# ----------------------------------------------------------------------------- task 1: forced alignment


def boundary_ms(pred: np.ndarray, true: np.ndarray) -> np.ndarray:
    """Absolute boundary errors (ms) of fractional frame positions."""
    return np.abs(pred - true) * HOP / SAMPLE_RATE * 1000.0


def uniform_segmentation(item: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """Baseline: the utterance's frames split into L equal parts → (boundaries [L, 2], word per frame)."""
    frames, words = item["audio"].shape[1], len(item["digits"])
    edges = np.arange(words + 1) * frames / words
    return np.stack([edges[:-1], edges[1:]], axis=1), np.minimum(np.arange(frames) * words // frames, words - 1)


def score_segmentation(
    items: Sequence[dict[str, Any]], bounds: Sequence[np.ndarray], frame_words: Sequence[np.ndarray]
) -> dict[str, float]:
    errors = np.concatenate([boundary_ms(b, it["bounds"]).ravel() for b, it in zip(bounds, items)])
    acc = frame_accuracy(np.concatenate(frame_words), np.concatenate([it["position"] for it in items]), ignore=-1)
    return {
        "boundary_ms": float(errors.mean()),
        "boundary_ms_median": float(np.median(errors)),
        "within_20ms": float((errors <= 20.0).mean()),
        "frame_acc": acc,
    }


@torch.no_grad()
def tagger_alignments(
    model: FrameTagger, items: Sequence[dict[str, Any]], device: torch.device, batch_size: int = 16
) -> tuple[list[np.ndarray], list[np.ndarray], list[Tensor]]:
    """Forced-align each transcript: (boundaries [L, 2] in fractional frames, word per frame, log-posteriors [T, C])."""
    bounds, words, posteriors = [], [], []
    with evaluating(model):
        for i in range(0, len(items), batch_size):
            batch = collate(items[i : i + batch_size])
            log_probs, frame_mask = model.log_probs(batch["audio"].to(device), batch["audio_mask"].to(device))
            targets, target_mask = batch["targets"].to(device), batch["target_mask"].to(device)
            ali = forced_align(log_probs, targets, 0, frame_mask, target_mask)
            for b, n in enumerate(batch["target_mask"].sum(1).tolist()):
                frames = int(frame_mask[b].sum())
                # A boundary lies half-way between the last frame before it and the first frame after it.
                starts, ends = ali.starts[b, :n].cpu().numpy() - 0.5, ali.ends[b, :n].cpu().numpy() - 0.5
                bounds.append(np.stack([starts, ends], axis=1))
                words.append(ali.frame_tokens[b, :frames].cpu().numpy())
                posteriors.append(log_probs[b, :frames].cpu())
    return bounds, words, posteriors


# ----------------------------------------------------------------------------- task 2: speaker-to-speaker DTW


def posteriorgram_cost(a: Tensor, b: Tensor) -> Tensor:
    """−log(pᵀq) between frame posteriors (Hazen, Shen & White 2009, posteriorgram template matching)."""
    return -(a.exp() @ b.exp().T).clamp_min(1e-10).log()


def map_through_path(path: np.ndarray, bounds_a: np.ndarray, frames_a: int) -> np.ndarray:
    """Each fractional boundary of A → the mean B frame matched to A's nearest frame."""
    index = np.clip(np.rint(bounds_a), 0, frames_a - 1).astype(np.int64)
    total = np.bincount(path[:, 0], weights=path[:, 1], minlength=frames_a)
    count = np.bincount(path[:, 0], minlength=frames_a)
    return (total / count)[index]


def score_pair_path(path: np.ndarray, a: dict[str, Any], b: dict[str, Any]) -> tuple[np.ndarray, float]:
    """(boundary errors ms of A's boundaries mapped into B, share of A's speech frames matched into the same word of B)."""
    errors = boundary_ms(map_through_path(path, a["bounds"], a["audio"].shape[1]), b["bounds"]).ravel()
    matched = path_to_frame_labels(path, b["position"])
    keep = a["position"] >= 0
    return errors, float((matched[keep] == a["position"][keep]).mean())


def diagonal_path(n: int, m: int) -> np.ndarray:
    """Baseline path: row i ↦ column round(i (m-1)/(n-1)) (proportional time)."""
    rows = np.arange(n)
    return np.stack([rows, np.rint(rows * (m - 1) / max(n - 1, 1)).astype(np.int64)], axis=1)


def dtw_path(cost: Tensor) -> np.ndarray:
    result = dtw_from_cost(cost.float(), return_path=True)
    assert result.paths is not None  # return_path=True
    return np.asarray(result.paths[0])


def summarize_pairs(errors: list[np.ndarray], accs: list[float]) -> dict[str, float]:
    flat = np.concatenate(errors)
    return {
        "boundary_ms": float(flat.mean()),
        "boundary_ms_median": float(np.median(flat)),
        "within_60ms": float((flat <= 60.0).mean()),
        "frame_acc": float(np.mean(accs)),
    }


# ----------------------------------------------------------------------------- task 3: audio ↔ video


def av_item(sample: dict[str, Any], logmel: LogMel) -> dict[str, Any]:
    """:func:`featurize` plus the video, its true digit per frame, its shots and the audio's speech segments.

    Shots come from the frames alone, speech segments from the audio's own
    log-energy (log of the summed mel power) alone: no boundary label.
    """
    item = featurize(sample, logmel)
    item.update(
        frames=sample["frames"],
        frame_position=sample["frame_position"].numpy(),
        shots=shot_segments(sample["frames"]),
        audio_segments=energy_segments(item["logmel"].logsumexp(0).numpy()),
    )
    return item


def pause_padded_clip(
    wave: Tensor, logmel: LogMel, strings: DigitStrings, rng: np.random.Generator
) -> dict[str, Tensor]:
    """An isolated clip made to look like one word of a composite utterance: CMVN log-mel + speech mask.

    The clip is trimmed by the same energy rule as the composites and framed by
    pauses of the same noise floor and length range, so per-utterance CMVN sees
    the speech/pause mix it sees at test time. The speech mask (the trimmed
    span) comes from the audio's energy alone; it keeps the pauses out of the
    contrastive score.
    """
    start, end = trim_silence(wave, strings.top_db)
    before, after = (round(rng.uniform(*strings.pause_s) * SAMPLE_RATE) for _ in range(2))
    pieces = [
        strings.noise_floor * rng.standard_normal(before),
        wave[start:end].double().numpy(),
        strings.noise_floor * rng.standard_normal(after),
    ]
    with torch.no_grad():
        raw = logmel(torch.from_numpy(np.concatenate(pieces)).float())
    centres = np.arange(raw.shape[1]) * HOP
    speech = torch.from_numpy((centres >= before) & (centres < before + end - start))
    return {"audio": cmvn(raw), "speech_mask": speech}


def av_collate(samples: Sequence[dict[str, Any]]) -> dict[str, Any]:
    audio, mask = pad_time([s["audio"] for s in samples], "audio")
    speech, _ = pad_time([s["speech_mask"] for s in samples], "speech_mask")
    return {
        "audio": audio,
        "audio_mask": mask,
        "speech_mask": speech & mask,
        "image": torch.stack([s["image"] for s in samples]),
    }


def score_av_path(path: np.ndarray, item: dict[str, Any]) -> float:
    """Share of video frames whose matched audio frames mostly lie on (or nearest to) the right word."""
    audio_words = nearest_word(item["position"], item["bounds"])
    frames = len(item["frame_position"])
    votes = np.zeros((frames, len(item["digits"])), dtype=np.int64)
    np.add.at(votes, (path[:, 0], audio_words[path[:, 1]]), 1)
    return float((votes.argmax(1) == item["frame_position"]).mean())


@torch.no_grad()
def av_embeddings(
    model: FrameImageEmbedding, items: Sequence[dict[str, Any]], device: torch.device
) -> tuple[list[tuple[Tensor, Tensor]], float]:
    """(unit-norm audio frames [T, dim], video frames [F, dim]) per item, and the learnt logit scale."""
    embedded = []
    with evaluating(model):
        scale = float(model.logit_scale.exp().clamp(max=100.0))
        for item in items:
            audio, _ = model.audio_frames(item["audio"][None].to(device))
            embedded.append((audio[0].cpu(), model.images(item["frames"].to(device)).cpu()))
    return embedded, scale


def posterior_cost(video: Tensor, audio: Tensor, scale: float) -> Tensor:
    """−log p(video unit | audio unit): [F, T], the softmax over the video's units of the scaled cosines.

    Normalising per audio unit over the video's units (the InfoNCE posterior
    with the learnt temperature) removes how "speech-like" an audio frame is —
    which raw cosines are dominated by — and keeps only *which* image it matches.
    """
    return -(scale * video @ audio.T).log_softmax(dim=0)


def av_costs(model: FrameImageEmbedding, items: Sequence[dict[str, Any]], device: torch.device) -> list[Tensor]:
    """Frame-level :func:`posterior_cost` [F, T] of each item."""
    embedded, scale = av_embeddings(model, items, device)
    return [posterior_cost(video, audio, scale) for audio, video in embedded]


def segmental_av_path(cost: Tensor | np.ndarray, item: dict[str, Any]) -> np.ndarray:
    """(video frame, audio frame) pairs of the monotone alignment of the item's shots [V] to its speech segments [A].

    ``cost`` is [V, A]; see :mod:`chorus.align.segments`.
    """
    path = monotone_segment_path(np.asarray(cost).T)
    return segment_frame_pairs(path, item["audio_segments"], item["shots"])


def position_cost(item: dict[str, Any]) -> np.ndarray:
    """[V, A] distance between the relative centres (in [0, 1]) of each shot and each speech segment: no embedding.

    The ablation of the segmental method: where units are surplus, merge them
    by timing alone.
    """
    shots = item["shots"].mean(1) / len(item["frame_position"])
    speech = item["audio_segments"].mean(1) / item["audio"].shape[1]
    return np.abs(shots[:, None] - speech[None, :])


def segmental_scores(scores: Sequence[float], count_ok: np.ndarray) -> dict[str, float | None]:
    """Mean score over all sequences, and over those whose speech-segment count is wrong (None if there are none).

    Where the counts agree the unit path is 1:1 whatever the cost, so only
    the second number shows what the cost contributes.
    """
    values = np.asarray(scores)
    wrong = values[~count_ok]
    return {"frame_acc": float(values.mean()), "count_wrong_acc": float(wrong.mean()) if wrong.size else None}


def frame_identification(costs: Sequence[Tensor], items: Sequence[dict[str, Any]]) -> float:
    """Share of speech frames whose lowest-cost video frame shows their digit (no alignment, no order).

    The embedding's own accuracy, read before DTW: what DTW has to work with.
    """
    hits = [
        np.asarray(it["frame_position"])[c.argmin(0).numpy()][it["position"] >= 0]
        == it["position"][it["position"] >= 0]
        for c, it in zip(costs, items)
    ]
    return float(np.concatenate(hits).mean())


# ----------------------------------------------------------------------------- task 4: attention


@torch.no_grad()
def attention_scores(
    model: AttentionRecognizer, items: Sequence[dict[str, Any]], device: torch.device, stride: int, batch_size: int = 16
) -> tuple[dict[str, float], list[Tensor]]:
    """String accuracy, peak hit rate and its uniform baseline / chance, plus each item's weights [L, T']."""
    hits, base_hits, chance, correct, maps = [], [], [], [], []
    with evaluating(model):
        for i in range(0, len(items), batch_size):
            chunk = items[i : i + batch_size]
            batch = attention_collate(chunk)
            logits, weights, key_mask = model.attend(batch["audio"].to(device), batch["audio_mask"].to(device))
            peaks = attention_peaks(weights).cpu().numpy()
            predicted = logits.argmax(-1).cpu()
            for b, item in enumerate(chunk):
                n, keys = len(item["digits"]), int(key_mask[b].sum())
                # Key j is centred on input frame j * stride: it lies in word k iff start <= j * stride < end.
                starts, ends = np.ceil(item["bounds"][:, 0] / stride), np.ceil(item["bounds"][:, 1] / stride)
                hits.append(peak_hit_rate(peaks[b, :n], starts, ends))
                uniform = np.floor((np.arange(n) + 0.5) * keys / n)
                base_hits.append(peak_hit_rate(uniform, starts, ends))
                chance.append(float(np.mean(ends - starts) / keys))
                target = torch.full((model.max_len,), model.num_labels)
                target[:n] = item["digits"]
                correct.append(bool((predicted[b] == target).all()))
                maps.append(weights[b].mean(0)[:n, :keys].float().cpu())
    summary = {
        "peak_hit": float(np.mean(hits)),
        "uniform_peak_hit": float(np.mean(base_hits)),
        "chance": float(np.mean(chance)),
        "string_acc": float(np.mean(correct)),
    }
    return summary, maps


# ----------------------------------------------------------------------------- plots


def plot_matrix(
    report: Report,
    name: str,
    matrix: np.ndarray,
    title: str,
    xlabel: str,
    ylabel: str,
    path: np.ndarray | None = None,
    row_bounds: np.ndarray | None = None,
    col_bounds: np.ndarray | None = None,
    cmap: str = "viridis",
) -> None:
    """A matrix (rows × columns) with an alignment path and true boundaries (red: rows, white: columns)."""
    with report.figure(name, figsize=(6.4, 3.6)) as (_, ax):
        ax.imshow(matrix, aspect="auto", origin="lower", cmap=cmap, interpolation="nearest")
        if path is not None:
            ax.plot(path[:, 1], path[:, 0], color="magenta", lw=1.2, label="alignment path")
        for edge in [] if row_bounds is None else np.asarray(row_bounds).ravel():
            ax.axhline(edge, color="red", lw=0.6, ls="--")
        for edge in [] if col_bounds is None else np.asarray(col_bounds).ravel():
            ax.axvline(edge, color="white", lw=0.6, ls="--")
        ax.set(title=title, xlabel=xlabel, ylabel=ylabel)
        if path is not None:
            ax.legend(loc="upper left", fontsize=7)


# ----------------------------------------------------------------------------- run


def load_strings(
    cfg: Config, logmel: LogMel
) -> tuple[DigitStrings, list[dict[str, Any]], list[dict[str, Any]], list[tuple[dict[str, Any], ...]]]:
    """Composite digit strings: the training set, its featurised items, the test items and the test pairs
    (the same string by two held-out speakers)."""
    strings_kw: dict[str, Any] = dict(root=cfg.data_root, test_speakers=tuple(cfg.test_speakers), seed=0)
    train_ds = DigitStrings(split="train", size=cfg.train_size, **strings_kw)
    test_ds = DigitStrings(split="test", size=cfg.test_size, **strings_kw)
    train_items = [featurize(sample_at(train_ds, i), logmel) for i in range(len(train_ds))]
    test_items = [featurize(sample_at(test_ds, i), logmel) for i in range(len(test_ds))]
    pairs = [tuple(featurize(s, logmel) for s in test_ds.pair(i)) for i in range(len(test_ds))]
    return train_ds, train_items, test_items, pairs


def forced_alignment(
    cfg: Config,
    report: Report,
    train_items: list[dict[str, Any]],
    test_items: list[dict[str, Any]],
    device: torch.device,
) -> tuple[dict[str, Any], list[FrameTagger]]:
    """Task 1: the frame tagger + Viterbi per seed against uniform segmentation; returns the scores and taggers."""
    base_b, base_w = zip(*(uniform_segmentation(it) for it in test_items))
    forced: dict[str, Any] = {"uniform": score_segmentation(test_items, base_b, base_w), "tagger": []}
    taggers: list[FrameTagger] = []
    for seed in cfg.seeds:
        torch.manual_seed(seed)
        model = FrameTagger(audio_cnn((1, 1, 1)), 11)
        model = train(
            model,
            train_items,
            collate,
            cfg.sizes["steps"],
            8,
            3e-3,
            seed,
            report.out / "runs" / f"tagger_{seed}",
            cfg.device,
        )
        b, w, post = tagger_alignments(model, test_items, device)
        forced["tagger"].append(score_segmentation(test_items, b, w))
        taggers.append(model)
        if seed == cfg.seeds[0]:
            it = test_items[0]
            classes = np.where(w[0] >= 0, it["digits"].numpy()[np.maximum(w[0], 0)] + 1, 0)
            plot_matrix(
                report,
                "forced_alignment",
                post[0].numpy().T,
                "frame log-posteriors + forced alignment",
                "frame (10 ms)",
                "class (0 silence, d+1 digit d)",
                np.stack([classes, np.arange(len(classes))], 1),
                None,
                it["bounds"],
            )
    return forced, taggers


def speaker_dtw(
    cfg: Config,
    report: Report,
    pairs: list[tuple[dict[str, Any], ...]],
    taggers: list[FrameTagger],
    device: torch.device,
) -> dict[str, Any]:
    """Task 2: DTW between two speakers on log-mel, MFCC and the taggers' posteriorgrams, against the diagonal."""
    features = {
        "log-mel": lambda a, b: cost_matrix(a["logmel"].T, b["logmel"].T, "euclidean"),
        "MFCC": lambda a, b: cost_matrix(mfcc(a["logmel"]), mfcc(b["logmel"]), "euclidean"),
    }
    speaker: dict[str, Any] = {}
    errors, accs = zip(
        *(score_pair_path(diagonal_path(a["audio"].shape[1], b["audio"].shape[1]), a, b) for a, b in pairs)
    )
    speaker["diagonal"] = summarize_pairs(list(errors), list(accs))
    example: dict[str, tuple[Tensor, np.ndarray]] = {}
    for name, cost_fn in features.items():
        costs = [cost_fn(a, b) for a, b in pairs]
        paths = [dtw_path(c) for c in costs]
        errors, accs = zip(*(score_pair_path(p, a, b) for p, (a, b) in zip(paths, pairs)))
        speaker[name] = summarize_pairs(list(errors), list(accs))
        example[name] = (costs[0], paths[0])
    speaker["posteriorgram"] = []
    for seed, model in zip(cfg.seeds, taggers):
        _, _, post_a = tagger_alignments(model, [a for a, _ in pairs], device)
        _, _, post_b = tagger_alignments(model, [b for _, b in pairs], device)
        costs = [posteriorgram_cost(pa, pb) for pa, pb in zip(post_a, post_b)]
        paths = [dtw_path(c) for c in costs]
        errors, accs = zip(*(score_pair_path(p, a, b) for p, (a, b) in zip(paths, pairs)))
        speaker["posteriorgram"].append(summarize_pairs(list(errors), list(accs)))
        if seed == cfg.seeds[0]:
            example["posteriorgram"] = (costs[0], paths[0])
    a, b = pairs[0]
    cost, path = example["MFCC"]
    plot_matrix(
        report,
        "speaker_dtw",
        -cost.numpy(),
        f"MFCC DTW: {a['speaker']} vs {b['speaker']} (−cost)",
        f"{b['speaker']} frame (10 ms)",
        f"{a['speaker']} frame",
        path,
        a["bounds"],
        b["bounds"],
    )
    return speaker


def audio_video(
    cfg: Config, report: Report, logmel: LogMel, strings: DigitStrings, device: torch.device
) -> dict[str, Any]:
    """Task 3: MNIST slide-shows aligned to spoken digits in a contrastive frame/image space (frame-level DTW and
    segmental), against the diagonal and a position-only segmental cost."""
    speakers = tuple(cfg.test_speakers)
    av_kw: dict[str, Any] = dict(root=cfg.data_root, test_speakers=speakers, seed=0)
    clips = AVDigits(split="train", level="clean", **av_kw)
    rng = np.random.default_rng(0)
    chosen = rng.choice(len(clips), min(cfg.sizes["av_clips"], len(clips)), replace=False)
    clip_items = [
        {
            **pause_padded_clip(sample_at(clips, int(i))["audio"], logmel, strings, rng),
            "image": sample_at(clips, int(i))["image"],
        }
        for i in chosen
    ]
    av_ds = AVSequences(split="test", size=cfg.sizes["test"], **av_kw)
    av_items = [av_item(sample_at(av_ds, i), logmel) for i in range(len(av_ds))]
    # The same kind of sequences by the training speakers: how much of the gap is the unseen voice.
    seen_ds = AVSequences(split="train", size=cfg.sizes["test"], **av_kw)
    seen_items = [av_item(sample_at(seen_ds, i), logmel) for i in range(len(seen_ds))]
    diagonal = [score_av_path(diagonal_path(len(it["frame_position"]), it["audio"].shape[1]), it) for it in av_items]
    counts = np.array([(len(it["digits"]), len(it["audio_segments"]), len(it["shots"])) for it in av_items])
    speech_count_ok = counts[:, 1] == counts[:, 0]
    av: dict[str, Any] = {
        "diagonal": {"frame_acc": float(np.mean(diagonal))},
        "segments": {
            "speech_count_match": float(speech_count_ok.mean()),
            "speech_count_wrong": int((~speech_count_ok).sum()),
            "speech_count_over": float((counts[:, 1] > counts[:, 0]).mean()),
            "shot_count_match": float((counts[:, 2] == counts[:, 0]).mean()),
        },
        "segmental_position": segmental_scores(
            [score_av_path(segmental_av_path(position_cost(it), it), it) for it in av_items], speech_count_ok
        ),
        "contrastive_dtw": [],
    }
    for seed in cfg.seeds:
        torch.manual_seed(seed)
        image_encoder = build_encoder("cnn", "tiny", in_channels=1, image_size=28)
        model = FrameImageEmbedding(audio_cnn((1, 1, 1)), image_encoder, dim=64)
        model = train(
            model,
            clip_items,
            av_collate,
            cfg.sizes["steps"],
            32,
            3e-3,
            seed,
            report.out / "runs" / f"av_{seed}",
            cfg.device,
        )
        embedded, scale = av_embeddings(model, av_items, device)
        costs = [posterior_cost(video, audio, scale) for audio, video in embedded]
        paths = [dtw_path(c) for c in costs]
        unit_costs = [
            posterior_cost(pool_segments(video, it["shots"]), pool_segments(audio, it["audio_segments"]), scale)
            for (audio, video), it in zip(embedded, av_items)
        ]
        unit_paths = [segmental_av_path(c, it) for c, it in zip(unit_costs, av_items)]
        segmental = segmental_scores([score_av_path(p, it) for p, it in zip(unit_paths, av_items)], speech_count_ok)
        av["contrastive_dtw"].append(
            {
                "frame_acc": float(np.mean([score_av_path(p, it) for p, it in zip(paths, av_items)])),
                "segmental_frame_acc": segmental["frame_acc"],
                "segmental_count_wrong_acc": segmental["count_wrong_acc"],
                "frame_id": frame_identification(costs, av_items),
                "frame_id_seen_speakers": frame_identification(av_costs(model, seen_items, device), seen_items),
            }
        )
        if seed == cfg.seeds[0]:
            it = av_items[0]
            segments = np.asarray(sample_at(av_ds, 0)["frame_segments"], dtype=float) - 0.5
            plot_matrix(
                report,
                "av_dtw",
                -costs[0].numpy(),
                "log p(video frame | audio frame), DTW path",
                "audio frame (10 ms)",
                "video frame (25 fps)",
                paths[0],
                segments,
                it["bounds"],
            )
            plot_matrix(
                report,
                "av_segments",
                -costs[0].numpy(),
                "log p(video frame | audio frame), segmental alignment (pairs)",
                "audio frame (10 ms)",
                "video frame (25 fps)",
                unit_paths[0],
                segments,
                it["bounds"],
            )
    return av


def implicit_alignment(
    cfg: Config,
    report: Report,
    train_items: list[dict[str, Any]],
    test_items: list[dict[str, Any]],
    device: torch.device,
) -> list[dict[str, float]]:
    """Task 4: the attention recogniser's peaks inside the right word, against uniform peaks and chance."""
    stride = 2
    attention: list[dict[str, float]] = []
    attention_seeds = cfg.attention_seeds or cfg.seeds
    for seed in attention_seeds:
        torch.manual_seed(seed)
        encoder = build_encoder("audio_transformer", "tiny", n_mels=N_MELS, subsample=stride)
        model = AttentionRecognizer(encoder, num_labels=10, max_len=7)
        model = train(
            model,
            train_items,
            attention_collate,
            cfg.sizes["attention_steps"],
            8,
            1e-3,
            seed,
            report.out / "runs" / f"attention_{seed}",
            cfg.device,
        )
        summary, maps = attention_scores(model, test_items, device, stride)
        attention.append(summary)
        if seed == attention_seeds[0]:
            it = test_items[0]
            plot_matrix(
                report,
                "attention",
                maps[0].numpy(),
                "attention weights (query k = k-th digit)",
                f"key frame ({10 * stride} ms)",
                "query",
                None,
                None,
                it["bounds"] / stride,
                cmap="magma",
            )
    return attention


def run(cfg: Config, report: Report) -> None:
    """The four alignment tasks in turn, on the same held-out speakers."""
    device = torch.device(cfg.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    logmel = LogMel(sample_rate=SAMPLE_RATE, n_fft=256, hop_length=HOP, n_mels=N_MELS)
    strings, train_items, test_items, pairs = load_strings(cfg, logmel)
    results = report.results
    results.update(
        {
            "sizes": cfg.sizes,
            "test_speakers": list(cfg.test_speakers),
            "seeds": list(cfg.seeds),
            "attention_seeds": list(cfg.attention_seeds or cfg.seeds),
            "hop_ms": 1000.0 * HOP / SAMPLE_RATE,
        }
    )
    results["forced"], taggers = forced_alignment(cfg, report, train_items, test_items, device)
    results["speaker_dtw"] = speaker_dtw(cfg, report, pairs, taggers, device)
    results["av"] = audio_video(cfg, report, logmel, strings, device)
    results["attention"] = implicit_alignment(cfg, report, train_items, test_items, device)
    headers, rows = results_table(results)
    report.table("Alignment against ground-truth boundaries", headers, rows)
    for card in method_cards(results):
        report.card(card)


# ----------------------------------------------------------------------------- reporting


def _ms(runs: Sequence[dict[str, float]] | dict[str, float], key: str, scale: float = 1.0, digits: int = 1) -> str:
    values = [runs[key]] if isinstance(runs, dict) else [r[key] for r in runs]
    return fmt_mean_std(values, scale=scale, digits=digits) if len(values) > 1 else f"{values[0] * scale:.{digits}f}"


def results_table(results: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    f, s, av, att = results["forced"], results["speaker_dtw"], results["av"], results["attention"]
    boundary_rows = [
        ("forced alignment", "uniform segmentation (baseline)", f["uniform"], "≤ 20 ms"),
        ("forced alignment", "frame-label CNN + Viterbi", f["tagger"], "≤ 20 ms"),
        ("speaker ↔ speaker", "diagonal (baseline)", s["diagonal"], "≤ 60 ms"),
        ("speaker ↔ speaker", "DTW, log-mel", s["log-mel"], "≤ 60 ms"),
        ("speaker ↔ speaker", "DTW, MFCC + CMVN", s["MFCC"], "≤ 60 ms"),
        ("speaker ↔ speaker", "DTW, learned posteriorgram", s["posteriorgram"], "≤ 60 ms"),
    ]
    rows = [
        [task, method, _ms(r, "boundary_ms"), _ms(r, "frame_acc", 100), target]
        for task, method, r, target in boundary_rows
    ] + [
        ["audio ↔ video", "diagonal (baseline)", "–", _ms(av["diagonal"], "frame_acc", 100), "≥ 90 %"],
        [
            "audio ↔ video",
            "contrastive frame/image space + DTW",
            "–",
            _ms(av["contrastive_dtw"], "frame_acc", 100),
            "≥ 90 %",
        ],
        [
            "audio ↔ video",
            "segmental: energy-VAD speech segments ↔ frame-difference shots, monotone unit alignment, "
            "same space's pooled cost",
            "–",
            _ms(av["contrastive_dtw"], "segmental_frame_acc", 100),
            "≥ 90 %",
        ],
        [
            "audio ↔ video",
            "same segments, cost = relative-position distance (no embedding)",
            "–",
            _ms(av["segmental_position"], "frame_acc", 100),
            "≥ 90 %",
        ],
        [
            "audio ↔ video",
            f"segmental, only the {av['segments']['speech_count_wrong']} sequences whose VAD count ≠ "
            "digit count: pooled cost / position cost",
            "–",
            f"{_ms(av['contrastive_dtw'], 'segmental_count_wrong_acc', 100)} / "
            f"{_ms(av['segmental_position'], 'count_wrong_acc', 100)}"
            if av["segments"]["speech_count_wrong"]
            else "–",
            "–",
        ],
        [
            "audio ↔ video",
            "diagnostic: VAD segments = digits / shots = digits (share of sequences)",
            "–",
            f"{100 * av['segments']['speech_count_match']:.0f} / {100 * av['segments']['shot_count_match']:.0f}",
            "–",
        ],
        [
            "audio ↔ video",
            "same space, no DTW: speech frames → best video frame (held-out speakers)",
            "–",
            _ms(av["contrastive_dtw"], "frame_id", 100),
            "–",
        ],
        [
            "audio ↔ video",
            "same, on sequences by the training speakers",
            "–",
            _ms(av["contrastive_dtw"], "frame_id_seen_speakers", 100),
            "–",
        ],
        ["implicit (attention)", "chance (random peak)", "–", _ms(att, "chance", 100), "–"],
        ["implicit (attention)", "uniform peaks (baseline)", "–", _ms(att, "uniform_peak_hit", 100), "–"],
        [
            "implicit (attention)",
            f"attention recogniser (string acc {_ms(att, 'string_acc', 100)} %)",
            "–",
            _ms(att, "peak_hit", 100),
            "–",
        ],
    ]
    headers = ["task", "method", "mean boundary error (ms)", "frames / peaks on the right digit (%)", "target"]
    return headers, rows


def method_cards(results: dict[str, Any]) -> list[MethodCard]:
    f, s, av, att = results["forced"], results["speaker_dtw"], results["av"], results["attention"]
    cards = [
        MethodCard(
            "Forced alignment (frame-label CNN + Viterbi)",
            "Viterbi finds the exact best monotone segmentation of the known transcript under the frame posteriors, "
            "so word boundaries follow the acoustics instead of the clock.",
            "audio_cnn (3 stride-1 64-wide conv blocks, kernel 5) over 40-band 10 ms log-mel",
            f"uniform segmentation: {_ms(f['uniform'], 'boundary_ms')} ms",
            f"{_ms(f['tagger'], 'boundary_ms')} ms, {_ms(f['tagger'], 'frame_acc', 100)} % of speech frames on the right digit "
            "(target ≤ 20 ms)",
            "McAuliffe et al. 2017 (Montreal Forced Aligner) report ~70-80 % of phone boundaries within 20 ms on "
            "Buckeye/TIMIT; word boundaries between pause-separated digits are an easier case.",
        ),
        MethodCard(
            "Speaker-to-speaker DTW (log-mel, MFCC, posteriorgram)",
            "DTW undoes the different local speaking rates; speaker-normalised features (CMVN MFCC, or posteriors "
            "of a speaker-independent tagger) make the local costs speaker-independent.",
            "no training (log-mel, MFCC) / the frame-label tagger's posteriors",
            f"diagonal mapping: {_ms(s['diagonal'], 'boundary_ms')} ms",
            f"log-mel {_ms(s['log-mel'], 'boundary_ms')}, MFCC {_ms(s['MFCC'], 'boundary_ms')}, posteriorgram "
            f"{_ms(s['posteriorgram'], 'boundary_ms')} ms (target ≤ 60 ms)",
            "Sakoe & Chiba 1978; Hazen, Shen & White 2009 (posteriorgram templates beat MFCC templates for "
            "query-by-example) — no boundary-error figure to compare with.",
        ),
        MethodCard(
            "Audio ↔ video alignment in a contrastive frame/image space",
            "InfoNCE on isolated (clip, image) pairs, scoring a clip by the mean cosine of its speech frames, pulls every "
            "speech frame toward its digit's images; DTW over −log softmax (over the video's frames) of the scaled cosines then recovers the order-preserving alignment "
            "without any boundary label.",
            "audio_cnn (3 stride-1 64-wide blocks) + cnn tiny (MNIST), 64-d projections, trained on the 2000 AV-Digits "
            "clips of the 4 training speakers, each trimmed and framed by pauses like a word of the test utterances",
            f"diagonal alignment: {_ms(av['diagonal'], 'frame_acc', 100)} % of video frames",
            f"{_ms(av['contrastive_dtw'], 'frame_acc', 100)} % of video frames on the right digit (target ≥ 90 %)",
            "Harwath et al. 2018 (DAVEnet matchmaps) localise spoken words in images without labels; no directly "
            "comparable sequence-alignment number.",
        ),
        MethodCard(
            "Segmental audio ↔ video alignment (speech segments ↔ shots)",
            "Single 10 ms frames rarely name their digit, but the units they form are found from each signal alone: "
            "speech segments by an energy threshold set from the utterance's own percentiles, shots by frame "
            "differencing. Aligning units in order matches them 1:1 when the counts agree, and the contrastive cost "
            "(pooled over each unit) only decides where surplus units merge.",
            "no extra training: the contrastive frame/image space above, mean-pooled over each speech segment and shot",
            f"diagonal alignment: {_ms(av['diagonal'], 'frame_acc', 100)} %; frame-level DTW in the same space "
            f"{_ms(av['contrastive_dtw'], 'frame_acc', 100)} %",
            f"{_ms(av['contrastive_dtw'], 'segmental_frame_acc', 100)} % of video frames on the right digit "
            f"(position cost, no embedding: {_ms(av['segmental_position'], 'frame_acc', 100)} %; VAD count right on "
            f"{100 * av['segments']['speech_count_match']:.0f} % of sequences) (target ≥ 90 %)",
            "Syllable/word segmentation before matching is standard in unsupervised spoken-term discovery (e.g. "
            "Kamper et al. 2017, segmental embeddings); no directly comparable AV sequence number.",
        ),
        MethodCard(
            "Implicit alignment by an attention recogniser",
            "Each position query must name its digit, so it learns to attend to the frames that carry it; the "
            "peak of its weights is an alignment nobody supervised.",
            "audio_transformer tiny (conv stem with stride 2, 2 layers, width 64) + 7 learnt queries, 1-head cross-attention",
            f"uniform peaks {_ms(att, 'uniform_peak_hit', 100)} %, chance {_ms(att, 'chance', 100)} %",
            f"{_ms(att, 'peak_hit', 100)} % of peaks inside the right word (string accuracy {_ms(att, 'string_acc', 100)} %)",
            "Chorowski et al. 2015 (attention-based speech recognition) show attention aligning with phones "
            "qualitatively; no peak-hit figure to compare with.",
        ),
    ]
    return cards
