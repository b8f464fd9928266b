"""The headline figures the docs quote are the figures in the committed results files.

Each benchmark writes its raw numbers to ``benchmarks/results/...`` (JSON, small,
no weights); the docs pages quote some of them. ``FIGURES`` names, for each
quoted headline figure, the page, the results file, where in the JSON it is
and how the page writes it; the test formats the JSON value that way and
requires that exact text on the page. A page edited without its data, or data
re-run without its page, fails here. Two more checks keep the mapping honest:
every ``results.json`` of a ``chorus bench`` run is quoted by some figure, and
every results file a page links to exists.
"""

from __future__ import annotations

import json
import re
import statistics
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from chorus.data.sort_of_clevr import QUESTION_TYPES
from chorus.translate.speech_data import SPEAKER_FOLDS

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"


@dataclass(frozen=True)
class Figure:
    """One quoted figure: ``fmt.format(*values)`` must appear on ``page``.

    ``paths`` are slash-separated keys into the JSON file ``results`` (relative
    to ``benchmarks/results``); a key ``field=value`` picks the element of a list
    of objects whose ``field`` equals ``value`` (``a=x&b=y``: both must hold); a
    key may itself contain ``/`` (the longest matching key wins). Each resolved value is multiplied
    by ``scale`` (100 for fractions quoted as percent); a ``[mean, std]`` pair
    (the ``summary`` of a ``chorus bench`` run) fills two fields of ``fmt``.
    """

    page: str
    results: str
    paths: tuple[str, ...]
    fmt: str
    scale: float = 1.0
    seeds: bool = False  # each path ends in one value per seed (``*``), or each path is one seed's: quote mean ± std


VARIANTS = ("chorus", "openclip", "openclip+tricks")
SPEECH_SEEDS = ("speedvtlp8000", "speedvtlp8000_seed1", "speedvtlp8000_seed2")  # the speech probe's 3 training seeds
SPEECH_ADAPT_THEO = ("speedvtlp4000", "speedvtlp4000_seed1", "speedvtlp4000_seed2")  # the long preset's theo CTC runs
SPEECH_ADAPT_FIVE = (  # seed 0 of every held-out speaker but jackson, on which the adaptation settings were chosen
    "speedvtlp4000",
    *(f"speedvtlp4000_{fold}" for fold in ("george", "lucas", "nicolas", "yweweler")),
)

FIGURES: list[Figure] = [
    # Offline demo CLIP (chorus demo --json --run-dir runs/demo; its metrics.json)
    Figure(
        "docs/benchmarks.md",
        "demo/metrics.json",
        ("zero_shot_top1", "recall_at_1", "recall_at_5"),
        "unseen prompt templates {:.3f}, text→image R@1 {:.3f} / R@5 {:.3f}",
    ),
    # FSDD spoken-digit classifier, speaker theo held out (chorus train configs/fsdd_audio_cnn.yaml)
    Figure(
        "docs/benchmarks.md",
        "fsdd_audio_cnn/metrics.json",
        ("eval/accuracy",),
        "accuracy {:.3f} on theo's 500 clips with the speaker-robust input",
    ),
    Figure("docs/benchmarks.md", "fsdd_audio_cnn_plain/metrics.json", ("eval/accuracy",), "{:.3f} with plain log-mels"),
    # Co-learning (chorus bench colearn)
    Figure(
        "docs/benchmarks.md",
        "colearn/results.json",
        (
            "summary/pivot_zero_shot/mean",
            "summary/pivot_zero_shot/std",
            "summary/supervised_audio/mean",
            "summary/supervised_audio/std",
            "pivot_fraction_of_supervised/mean",
            "pivot_fraction_of_supervised/std",
        ),
        "pivot-bound audio zero-shot from text {:.1f} ± {:.1f} % vs supervised audio {:.1f} ± {:.1f} % ({:.0f} ± {:.0f} %",
        scale=100,
    ),
    Figure(
        "docs/benchmarks.md",
        "colearn/results.json",
        (
            "summary/labels_only_image/mean",
            "summary/cotrain_image/mean",
            "summary/labels_only_audio/mean",
            "summary/cotrain_audio/mean",
        ),
        "co-training lifts the image view {:.1f} → {:.1f} % and the audio view {:.1f} → {:.1f} %",
        scale=100,
    ),
    Figure(
        "docs/benchmarks/colearn.md",
        "colearn/results.json",
        (
            "summary/pivot_zero_shot/mean",
            "summary/pivot_zero_shot/std",
            "pivot_fraction_of_supervised/mean",
            "pivot_fraction_of_supervised/std",
        ),
        "| pivot binding, zero-shot from text | hybrid | audio | none (audio–image pairs) | {:.1f} ± {:.1f} | {:.0f} ± {:.0f} % |",
        scale=100,
    ),
    # COCO-mini retrieval (chorus bench coco_retrieval)
    Figure(
        "docs/benchmarks.md",
        "coco_retrieval/results.json",
        ("summary/lit/text_to_image_R@5", "summary/scratch/text_to_image_R@5"),
        "text→image R@5 {:.1f} ± {:.1f} % (frozen MiniLM) vs {:.1f} ± {:.1f} %",
        scale=100,
    ),
    Figure(
        "docs/benchmarks/coco_retrieval.md",
        "coco_retrieval/results.json",
        ("summary/lit/text_to_image_R@5", "summary/scratch/text_to_image_R@5"),
        "| text to image R@5 | {:.1f} ± {:.1f} | {:.1f} ± {:.1f} |",
        scale=100,
    ),
    Figure(
        "docs/benchmarks/coco_retrieval.md",
        "coco_retrieval/results.json",
        ("summary/lit/image_to_text_R@5", "summary/scratch/image_to_text_R@5"),
        "| image to text R@5 | {:.1f} ± {:.1f} | {:.1f} ± {:.1f} |",
        scale=100,
    ),
    # DTW speed (benchmarks/align_speed.py)
    Figure(
        "docs/benchmarks.md",
        "align_speed.json",
        (
            "results/method=chorus (torch wavefront, batched)/median_ms",
            "results/method=tslearn.metrics.dtw (loop)/median_ms",
            "results/method=tslearn.metrics.dtw (loop)/speedup_of_chorus",
            "results/method=dtaidistance dtw_ndim.distance (C, loop)/median_ms",
        ),
        "Chorus {:.1f} ms, tslearn {:.1f} ms ({:.2f}× slower), dtaidistance C {:.1f} ms",
    ),
    # CPU bf16 attention (benchmarks/attention_cpu_bf16.py)
    Figure(
        "docs/benchmarks.md",
        "attention_cpu_bf16.json",
        ("ms_forward_backward/explicit", "ms_forward_backward/math", "ms_forward_backward/flash"),
        "explicit {:.1f} ms, math {:.1f} ms, flash {:.1f} ms",
    ),
    # CLIP throughput vs OpenCLIP (benchmarks/clip_throughput.py; tiny64 from its own 5-round run)
    *(
        Figure(
            "docs/benchmarks.md",
            results,
            tuple(
                f"results/config={config}&precision={precision}&variant={variant}/{key}"
                for variant, key in [
                    ("chorus", "samples_per_s"),
                    ("openclip", "chorus_speedup"),
                    ("openclip+tricks", "chorus_speedup"),
                ]
            ),
            f"| {config} | {precision} | {{:.1f}} | {{:.2f}}× | {{:.2f}}× |",
        )
        for results, config, precision in [
            ("clip_throughput_tiny64.json", "tiny64", "fp32"),
            ("clip_throughput_tiny64.json", "tiny64", "bf16"),
            ("clip_throughput.json", "base224", "fp32"),
            ("clip_throughput.json", "base224", "bf16"),
        ]
    ),
    # fp32 MFU on a nearly quiet machine (benchmarks/clip_throughput.py --precision fp32 --out ..._fp32_quiet)
    *(
        Figure(
            "docs/benchmarks.md",
            "clip_throughput_fp32_quiet.json",
            tuple(f"results/config={config}&precision=fp32&variant={variant}/mfu" for variant in VARIANTS),
            fmt,
            scale=100,
        )
        for config, fmt in [
            (
                "base224",
                "**base224: Chorus at {:.1f} % MFU — the ≥ 85 % goal met** — 1.14× OpenCLIP's default step "
                "({:.1f} % MFU) and level with OpenCLIP plus the same tricks (0.99×, {:.1f} %)",
            ),
            (
                "tiny64",
                "**tiny64: {:.1f} % MFU — the ≥ 70 % goal not met**; 1.33× OpenCLIP's default ({:.1f} %) and "
                "1.04× with the same tricks ({:.1f} %)",
            ),
        ]
    ),
    *(
        Figure(
            "docs/benchmarks.md",
            "clip_throughput_fp32_quiet.json",
            tuple(f"results/config={config}&precision=fp32&variant={v}/chorus_speedup" for v in VARIANTS[1:]),
            fmt,
        )
        for config, fmt in [
            (
                "base224",
                "{:.2f}× OpenCLIP's default step (75.0 % MFU) and level with OpenCLIP plus the same tricks ({:.2f}×",
            ),
            ("tiny64", "{:.2f}× OpenCLIP's default (27.3 %) and {:.2f}× with the same tricks"),
        ]
    ),
    Figure(
        "docs/benchmarks.md",
        "clip_throughput_bf16_quiet.json",
        tuple(
            f"results/config={config}&precision=bf16&variant={variant}/chorus_speedup"
            for variant in VARIANTS[1:]
            for config in ("tiny64", "base224")
        ),
        "Chorus {:.2f}× OpenCLIP's default step at tiny64 and {:.2f}× at base224 — the ≥ 1.5× goal where the "
        "precision is accelerated and the kernels differ, met in both configs — and {:.2f}× / {:.2f}× OpenCLIP with "
        "the same tricks",
    ),
    # Loss parity (benchmarks/clip_loss_parity.py)
    Figure(
        "docs/benchmarks.md",
        "clip_loss_parity.json",
        ("rows/variant=chorus/diff_mean", "rows/variant=chorus/diff_std"),
        "**{:.3f} ± {:.3f}**",
    ),
    Figure(
        "docs/benchmarks.md",
        "clip_loss_parity.json",
        ("rows/variant=openclip+tricks/diff_mean", "rows/variant=openclip+tricks/diff_std"),
        "{:.3f} ± {:.3f}",
    ),
    # Training precision, fp32 vs bf16 (chorus bench precision)
    Figure(
        "docs/benchmarks.md",
        "precision/results.json",
        ("results/mean/bf16", "results/mean/fp32"),
        "bf16 {:.1f} ± 5.4 vs fp32 {:.1f} ± 2.7",
    ),
    Figure("docs/benchmarks.md", "precision/results.json", ("results/bf16_over_fp32",), "samples/s (ratio {:.2f})"),
    # VQA on Sort-of-CLEVR (chorus bench vqa)
    Figure(
        "docs/benchmarks.md",
        "vqa/results.json",
        (
            "results/summary/relation_network/accuracy_non_relational",
            "results/summary/relation_network/accuracy_relational",
        ),
        "relation network {:.1f} ± {:.1f} / {:.1f} ± {:.1f}",
        scale=100,
    ),
    Figure(
        "docs/benchmarks.md",
        "vqa/results.json",
        ("results/majority/accuracy_non_relational", "results/majority/accuracy_relational"),
        "majority answer per question type {:.1f} / {:.1f}",
        scale=100,
    ),
    Figure(
        "docs/benchmarks.md",
        "vqa/results.json",
        ("results/colour_blind/accuracy_non_relational", "results/colour_blind/accuracy_relational"),
        "not the object named) {:.1f} / {:.1f}",
        scale=100,
    ),
    Figure(
        "docs/vqa.md",
        "vqa/results.json",
        ("results/colour_blind/accuracy_non_relational", "results/colour_blind/accuracy_relational"),
        "the scene's shapes, not the object named | {:.1f} | {:.1f} |",
        scale=100,
    ),
    # Sort-of-CLEVR diagnostics (benchmarks/vqa_diagnostics.py)
    Figure(
        "docs/vqa.md",
        "vqa/diagnostics.json",
        tuple(
            f"rn_4000/references/colour-blind reference/accuracy_{t}" for t in ("shape", "closest", "furthest", "count")
        ),
        "colour-blind reference's ({:.1f}, {:.1f}, {:.1f} and {:.1f} %)",
        scale=100,
    ),
    Figure(
        "docs/vqa.md",
        "vqa/diagnostics.json",
        ("rn_4000/curve/step=4000/accuracy_furthest",),
        "(furthest drops to {:.1f} % at the end)",
        scale=100,
    ),
    Figure(
        "docs/vqa.md",
        "vqa/diagnostics.json",
        tuple(f"rn_4000/colour_probe_by_layer/{k}" for k in ("trained", "untrained")),
        "from {:.0f} % to {:.0f}, {:.0f} and {:.0f} % (chance 17 %); the untrained encoder keeps more ({:.0f}, {:.0f}, {:.0f}, {:.0f} %)",
        scale=100,
    ),
    Figure(
        "docs/vqa.md",
        "vqa/diagnostics.json",
        (
            *(f"rn_shuffled_2500/curve/step=2500/accuracy_{t}" for t in ("shape", "closest", "furthest", "count")),
            *(f"rn_shuffled_2500/curve/step=2500/accuracy_{t}" for t in ("horizontal", "vertical")),
        ),
        "closest, furthest and count at {:.1f}, {:.1f}, {:.1f} and {:.1f} % against the "
        "reference's 69.1, 66.4, 68.7 and 81.0 %, left/right and top/bottom at {:.1f} and {:.1f} %",
        scale=100,
    ),
    Figure(
        "docs/vqa.md",
        "vqa/diagnostics.json",
        (
            "rn_two_colours_600/curve/step=600/accuracy_shape",
            "rn_two_colours_600/references/colour-blind reference/accuracy_shape",
            "rn_two_colours_600/curve/step=600/accuracy_vertical",
            "rn_two_colours_600/references/colour-blind reference/accuracy_vertical",
        ),
        "shape {:.1f} % against {:.1f} %, top/bottom {:.1f} % against {:.1f} %",
        scale=100,
    ),
    Figure(
        "docs/vqa.md",
        "vqa/diagnostics.json",
        tuple(
            f"bow_rn_20k/curve/step=20000/accuracy_{t}"
            for t in ("shape", "horizontal", "vertical", "closest", "furthest", "count")
        ),
        "count {:.1f}, {:.1f}, {:.1f}, {:.1f}, {:.1f} and {:.1f} % — the colour-blind reference",
        scale=100,
    ),
    Figure(
        "docs/vqa.md",
        "vqa/diagnostics.json",
        tuple(f"bow_rn_20k/question_cosine_across_colours/{t}" for t in ("shape", "horizontal", "count")),
        "(cosine {:.3f} / {:.3f} / {:.3f}, against 1.000 for the trained transformer tower)",
    ),
    Figure(
        "docs/vqa.md",
        "vqa/diagnostics.json",
        tuple(f"bow_rn_20k/colour_probe_by_layer/{k}" for k in ("trained", "untrained")),
        "colour probe falls to {:.0f}, {:.0f}, {:.0f} and {:.0f} % over the four layers, below the untrained "
        "encoder's {:.0f}, {:.0f}, {:.0f} and {:.0f} %",
        scale=100,
    ),
    *(
        Figure(
            "docs/vqa.md",
            "vqa/diagnostics.json",
            tuple(f"bow_rn_ckpt/batchnorm_statistics/step={step}/{kind}/accuracy_{t}" for t in ("shape", "count")),
            f"| {label} | {'running averages as saved' if kind == 'saved' else kind} | {{:.1f}} | {{:.1f}} |",
            scale=100,
        )
        for step, kind, label in (
            (500, "saved", "step 500"),
            (500, "recomputed", "step 500"),
            (750, "saved", "step 750"),
            (750, "recomputed", "step 750"),
            (1000, "saved", "step 1,000 (learning rate decayed to 0)"),
            (1000, "recomputed", "step 1,000"),
        )
    ),
    Figure(
        "docs/vqa.md",
        "vqa/diagnostics.json",
        (
            *(f"bow_rn_cnn64_10k/curve/step=10000/accuracy_{t}" for t in ("shape", "horizontal", "vertical")),
            "bow_rn_cnn64_10k/colour_probe_by_layer/trained",
        ),
        "top/bottom {:.1f}, {:.1f} and {:.1f} %, and its colour probe falls to {:.0f}, {:.0f}, {:.0f} and {:.0f} % over its layers",
        scale=100,
    ),
    *(
        Figure(
            "docs/vqa.md",
            "vqa/diagnostics.json",
            (
                *(f"bowcur{stage}/curve/step={steps}/accuracy_{t}" for t in ("shape", "horizontal", "vertical")),
                *(
                    f"bowcur{stage}/references/colour-blind reference/accuracy_{t}"
                    for t in ("shape", "horizontal", "vertical")
                ),
                f"bowcur{stage}/colour_probe_by_layer/trained",
            ),
            f"| {stage} | {named} | {steps:,} | {{:.1f}} | {{:.1f}} | {{:.1f}} | {{:.1f}} / {{:.1f}} / {{:.1f}} | "
            "{:.0f} / {:.0f} / {:.0f} / {:.0f} % |",
            scale=100,
        )
        for stage, named, steps in (
            (1, "red", 500),
            (2, "+ blue", 1000),
            (3, "+ green", 1000),
            (4, "+ orange", 1000),
            (5, "+ grey", 1000),
            (6, "all six", 3000),
        )
    ),
    Figure(
        "docs/vqa.md",
        "vqa/diagnostics.json",
        (
            "bowcur6/curve/step=3000/accuracy_non_relational",
            "bowcur6/references/colour-blind reference/accuracy_non_relational",
        ),
        "it answers {:.1f} % of the non-relational questions against the colour-blind reference's {:.1f} %",
        scale=100,
    ),
    Figure(
        "docs/vqa.md",
        "vqa/diagnostics.json",
        (
            *(f"bowcur6/curve/step=3000/accuracy_{t}" for t in ("closest", "furthest", "count")),
            *(f"bowcur6/references/colour-blind reference/accuracy_{t}" for t in ("closest", "furthest", "count")),
        ),
        "closest, furthest and count at {:.1f}, {:.1f} and {:.1f} % against the reference's {:.1f}, {:.1f} and {:.1f} %",
        scale=100,
    ),
    *(
        Figure(
            "docs/vqa.md",
            "vqa/diagnostics.json",
            tuple(
                f"bowcur6_more/curve/step={step}/accuracy_{t}"
                for t in ("shape", "horizontal", "vertical", "closest", "furthest", "count")
            ),
            f"| {step:,} | {{:.1f}} | {{:.1f}} | {{:.1f}} | {{:.1f}} | {{:.1f}} | {{:.1f}} |",
            scale=100,
        )
        for step in (4000, 5000, 6000, 8000)
    ),
    Figure(
        "docs/vqa.md",
        "vqa/diagnostics.json",
        (
            "bowcur6_more/curve/step=8000/accuracy_non_relational",
            "bowcur6_more/curve/step=8000/accuracy_count",
            "bowcur6_more/colour_probe_by_layer/trained",
            "bowcur6_more/curve/step=8000/accuracy_relational",
        ),
        "**{:.1f} %** non-relational at the end, above the target's 95 %, and count, the relational type that "
        "needs only the named object's shape, at {:.1f} %. Its CNN now carries the colour (probe {:.0f}, "
        "{:.0f}, {:.0f} and {:.0f} % over its layers). Closest and furthest — the two questions that compare distances — "
        "stay at the reference, so relational accuracy is **{:.1f} %**",
        scale=100,
    ),
    Figure(
        "docs/vqa.md",
        "vqa/diagnostics.json",
        tuple(
            f"bowcur6_more2/curve/step=6000/accuracy_{t}"
            for t in ("non_relational", "relational", "closest", "furthest")
        ),
        "{:.1f} % non-relational and {:.1f} % relational, closest and furthest at {:.1f} and {:.1f} % against the "
        "reference's 66.4 and 68.7 %",
        scale=100,
    ),
    # Image captioning (chorus bench caption)
    Figure(
        "docs/benchmarks.md",
        "caption/results.json",
        ("results/summary/prefix_lm_beam/CIDEr", "results/summary/prefix_scratch_beam/CIDEr"),
        "with text-only LM pre-training {:.1f} ± {:.1f} vs {:.1f} ± {:.1f} without",
        scale=100,
    ),
    # Sort-of-CLEVR curriculum run (chorus bench vqa --preset curriculum) and its distance diagnostics
    *(
        Figure(
            "docs/vqa.md",
            "vqa/diagnostics_distance.json",
            tuple(
                f"{run}/curve/step={step}/accuracy_{t}"
                for t in ("non_relational", "relational", "closest", "furthest", "count")
            ),
            f"| `{run}` | {steps} | " + "{:.1f} | {:.1f} | {:.1f} | {:.1f} | {:.1f} |",
            scale=100,
        )
        for run, step, steps in (
            ("bowcur6_more2", 6000, "21,500"),
            ("bowcur6_more3", 10000, "31,500"),
            ("bowcur6_more4", 10000, "41,500"),
        )
    ),
    Figure(
        "docs/vqa.md",
        "vqa/diagnostics_distance.json",
        tuple(f"bowcur6_more2/beyond_reference/reference wrong/{t}/accuracy" for t in ("closest", "furthest")),
        "and furthest at {:.1f} and {:.1f} %, at or below",
        scale=100,
    ),
    Figure(
        "docs/vqa.md",
        "vqa/diagnostics_distance.json",
        tuple(
            f"bowcur6_more2/beyond_reference/reference wrong/{t}/accuracy"
            for t in ("shape", "horizontal", "vertical", "count")
        ),
        "top/bottom and count at {:.0f} % — it finds",
        scale=100,
    ),
    Figure(
        "docs/vqa.md",
        "vqa/diagnostics_distance.json",
        tuple(
            f"bowcur6_more2/beyond_reference/by_distance_margin/closest/{margin} px/accuracy"
            for margin in ("0-3", "15-100")
        ),
        "(closest: {:.1f} % within 3 pixels, {:.1f} % beyond 15)",
        scale=100,
    ),
    Figure(
        "docs/vqa.md",
        "vqa/diagnostics_distance.json",
        tuple(
            f"{run}/beyond_reference/reference wrong/{t}/accuracy"
            for t in ("closest", "furthest")
            for run in ("bowcur6_more3", "bowcur6_more4")
        ),
        "closest rises to {:.1f} and {:.1f} %\n  (`bowcur6_more3`, `bowcur6_more4`), furthest to {:.1f} and {:.1f} %",
        scale=100,
    ),
    Figure(
        "docs/vqa.md",
        "vqa/diagnostics_distance.json",
        tuple(
            f"bowcur6_more4/beyond_reference/by_distance_margin/closest/{margin} px/accuracy"
            for margin in ("0-3", "15-100")
        ),
        "grows with the margin ({:.1f} % within 3 pixels, {:.1f} % beyond 15)",
        scale=100,
    ),
    Figure(
        "docs/vqa.md",
        "vqa_curriculum/results.json",
        tuple(
            f"results/stages/relation_network/seed{k}/stage={stage}/accuracy_non_relational"
            for stage, k in ((6, 1), (6, 2), (8, 1), (8, 2), (8, 0))
        ),
        "({:.1f} and {:.1f} % non-relational at its end) and finish at {:.1f} and {:.1f} %.\n"
        "Seed 0 has not passed it after 21,500 steps ({:.1f} %)",
        scale=100,
    ),
    Figure(
        "docs/vqa.md",
        "vqa_curriculum/results.json",
        tuple(f"results/stages/relation_network/seed{k}/stage=8/accuracy_relational" for k in (0, 1, 2)),
        "the seeds reach {:.1f}, {:.1f} and {:.1f} %",
        scale=100,
    ),
    Figure(
        "docs/vqa.md",
        "vqa_curriculum/results.json",
        tuple(
            f"results/stages/relation_network/seed{k}/stage=8/accuracy_{t}"
            for t in ("count", "closest", "furthest")
            for k in (1, 2)
        ),
        "(seeds 1 and 2: {:.1f} and {:.1f} %),\nclosest and furthest lag (closest {:.1f} and {:.1f} %, "
        "furthest {:.1f} and {:.1f} %)",
        scale=100,
    ),
    Figure(
        "docs/vqa.md",
        "vqa_curriculum/results.json",
        (
            "results/stages/relation_network/seed1/stage=8/accuracy_non_relational",
            "results/stages/relation_network/seed0/stage=8/accuracy_non_relational",
            *(f"results/stages/relation_network/seed{k}/stage=8/accuracy_relational" for k in (0, 1, 2)),
        ),
        "two seeds reach {:.1f} % on non-relational questions\n(target 95 %) and the third has not bound the "
        "colour yet ({:.1f} %); relational\naccuracy is {:.1f}, {:.1f} and {:.1f} % (target 90 %)",
        scale=100,
    ),
    Figure(
        "docs/vqa.md",
        "vqa/diagnostics_distance.json",
        ("bowcur6_more4/curve/step=10000/accuracy_relational",),
        "One seed continued to 41,500 steps reaches {:.1f} % relational.",
        scale=100,
    ),
    Figure(
        "docs/vqa.md",
        "vqa_curriculum/results.json",
        tuple(
            f"results/summary/relation_network/accuracy_{t}" for t in ("non_relational", "relational", *QUESTION_TYPES)
        ),
        "| CNN + relation network |" + " {:.1f} ± {:.1f} |" * 8,
        scale=100,
    ),
    Figure(
        "docs/vqa.md",
        "vqa_curriculum/results.json",
        tuple(
            f"results/stages/relation_network/seed{k}/stage=8/accuracy_{t}"
            for t in ("non_relational", "relational")
            for k in (0, 1, 2)
        ),
        "non-relational {:.1f} / {:.1f} / {:.1f} %,\nrelational {:.1f} / {:.1f} / {:.1f} %",
        scale=100,
    ),
    Figure(
        "docs/vqa.md",
        "vqa_curriculum/results.json",
        tuple(f"results/majority/accuracy_{t}" for t in ("non_relational", "relational", *QUESTION_TYPES)),
        "| majority answer per question type |" + " {:.1f} |" * 8,
        scale=100,
    ),
    Figure(
        "docs/benchmarks.md",
        "vqa_curriculum/results.json",
        (
            *(f"results/summary/relation_network/accuracy_{t}" for t in ("non_relational", "relational")),
            *(
                f"results/stages/relation_network/seed{k}/stage=8/accuracy_{t}"
                for t in ("non_relational", "relational")
                for k in (0, 1, 2)
            ),
        ),
        "non-relational / relational {:.1f} ± {:.1f} / {:.1f} ± {:.1f} % (per seed {:.1f} / {:.1f} / {:.1f} and "
        "{:.1f} / {:.1f} / {:.1f})",
        scale=100,
    ),
    Figure(
        "docs/vqa.md",
        "vqa_curriculum/results.json",
        tuple(f"results/summary/early/accuracy_{t}" for t in ("non_relational", "relational", *QUESTION_TYPES)),
        "| CNN + MLP, the paper's baseline |" + " {:.1f} ± {:.1f} |" * 8,
        scale=100,
    ),
    Figure(
        "docs/vqa.md",
        "vqa_curriculum/results.json",
        (
            *(f"results/summary/early/accuracy_{t}" for t in ("non_relational", "relational")),
            *(f"results/stages/early/seed{k}/stage=8/accuracy_relational" for k in (0, 1, 2)),
        ),
        "reaches\n{:.1f} ± {:.1f} % non-relational and {:.1f} ± {:.1f} % relational (per seed\n{:.1f} / {:.1f} / {:.1f} %)",
        scale=100,
    ),
    Figure(
        "docs/vqa.md",
        "vqa_curriculum/results.json",
        tuple(f"results/summary/early/accuracy_{t}" for t in ("count", "closest", "furthest")),
        "count {:.1f} ± {:.1f} % (reference\n81.0), closest {:.1f} ± {:.1f} % (66.4) and furthest {:.1f} ± {:.1f} % (68.7)",
        scale=100,
    ),
    Figure(
        "docs/benchmarks.md",
        "vqa_curriculum/results.json",
        tuple(f"results/summary/early/accuracy_{t}" for t in ("non_relational", "relational")),
        "CNN + MLP {:.1f} ± {:.1f} / {:.1f} ± {:.1f}; colour-blind",
        scale=100,
    ),
    Figure(
        "docs/vqa.md",
        "vqa_stage2long/results.json",
        (
            "results/stages/relation_network/seed0/stage=1/accuracy_non_relational",
            "results/stages/relation_network/seed1/stage=1/accuracy_non_relational",
            "results/stages/relation_network/seed1/stage=2/accuracy_non_relational",
            "results/stages/relation_network/seed0/stage=2/accuracy_non_relational",
        ),
        "(seed 0: {:.1f} %, seed 1:\n{:.1f} % non-relational on red). On red and blue, seed 1 now binds within the\n"
        "stage ({:.1f} % non-relational, against 76.8 % after 1,000 steps in the\nbenchmark); seed 0 stays at {:.1f} %",
        scale=100,
    ),
    Figure(
        "docs/vqa.md",
        "vqa_twocolourstart/results.json",
        ("results/stages/relation_network/seed0/stage=1/accuracy_non_relational",),
        "It answers {:.1f} % of the non-relational questions about red and blue",
        scale=100,
    ),
    *(
        Figure(
            "docs/vqa.md", f"vqa_twocolourstart/{name}_metrics.json", ("eval/accuracy_non_relational",), fmt, scale=100
        )
        for name, fmt in (
            ("seed1", "seed 1 either\n({:.1f} %)"),
            ("lr1e-3", "half the learning rate ({:.1f} %)"),
            ("shuffle", "20 questions each ({:.1f} %)"),
            ("wide_g", "about four times the cost per step — {:.1f} %"),
        )
    ),
    Figure(
        "docs/vqa.md",
        "vqa_seed0_stage9/metrics.json",
        tuple(
            f"eval/accuracy_{k}"
            for k in ("non_relational", "shape", "horizontal", "vertical", "count", "relational", "closest", "furthest")
        ),
        "Non-relational accuracy goes from 79.2 to {:.1f} % (shape {:.1f}, left/right {:.1f},\ntop/bottom {:.1f} %) "
        "and count to {:.1f} %, so all three seeds bind the colour\ngiven enough steps; the time it takes varies with "
        "the seed. Relational\naccuracy rises to {:.1f} %, held back by closest ({:.1f} %) and furthest ({:.1f} %)",
        scale=100,
    ),
    # Speech <-> text (chorus bench speech)
    Figure(
        "docs/speech.md",
        "speech/results.json",
        ("results/recognition/ctc_beam/clean/*/wer",),
        "| CTC recogniser, beam 8 + length prior | {:.1f} ± {:.1f} | ",
        scale=100,
        seeds=True,
    ),
    Figure(
        "docs/speech.md",
        "speech/results.json",
        tuple(f"results/recognition/attention_joint/{c}/*/{m}" for c in ("clean", "noisy") for m in ("wer", "ser")),
        "| joint CTC-attention recogniser, joint decoding (beam 8, CTC weight 0.5) |" + " {:.1f} ± {:.1f} |" * 4,
        scale=100,
        seeds=True,
    ),
    Figure(
        "docs/benchmarks.md",
        "speech/results.json",
        ("results/recognition/attention_joint/clean/*/wer", "results/recognition/attention/clean/*/wer"),
        "joint CTC-attention {:.1f} ± {:.1f} % with joint decoding ({:.1f} ± {:.1f} % decoder alone)",
        scale=100,
        seeds=True,
    ),
    Figure(
        "docs/benchmarks.md",
        "speech/results.json",
        ("results/recognition/ctc_beam/clean/*/wer", "results/recognition/ctc_beam/noisy/*/wer"),
        "CTC WER on theo {:.1f} ± {:.1f} % clean, {:.1f} ± {:.1f} % at 10 dB",
        scale=100,
        seeds=True,
    ),
    Figure(
        "docs/speech.md",
        "speech_probe_perturb.json",
        ("speedvtlp8000/decoding/beam8_penalty0/clean/wer", "speedvtlp8000/decoding/beam8_penalty0/noisy/wer"),
        "{:.1f} % at 8,000 (10 dB: {:.1f} %) for training seed 0",
        scale=100,
    ),
    Figure(
        "docs/speech.md",
        "speech_probe_perturb.json",
        tuple(f"{tag}/decoding/beam8_penalty0/clean/wer" for tag in ("widevtlp4000", "speedvtlp4000")),
        "(`widevtlp4000`, seed 0) give {:.1f} % against {:.1f} %",
        scale=100,
    ),
    Figure(
        "docs/speech.md",
        "speech_probe_perturb.json",
        tuple(f"{tag}/decoding/beam8_penalty0/clean/wer" for tag in ("size2000_4000", "drop2_4000", "window8_4000")),
        "gives {:.1f} % while fitting the training voices better (1.2 % against 2.4 %); dropout 0.2 on the "
        "encoder's frames {:.1f} %; and attention limited to ±8 frames (±320 ms, about one word, `window8_4000`) {:.1f} %",
        scale=100,
    ),
    Figure(
        "docs/speech.md",
        "speech_probe_perturb.json",
        (
            *(f"{tag}/decoding/beam8_penalty0/clean/wer" for tag in ("adv0.3_4000", "adv1.0_4000", "speedvtlp4000")),
            *(f"{tag}/decoding/beam8_penalty0/noisy/wer" for tag in ("adv0.3_4000", "adv1.0_4000", "speedvtlp4000")),
        ),
        "weight 0.3 gives {:.1f} % on `theo` and weight 1 gives {:.1f} %, against {:.1f} % without the adversary; at\n"
        "10 dB {:.1f} and {:.1f} % against {:.1f} %",
        scale=100,
    ),
    Figure(
        "docs/speech.md",
        "speech_probe_perturb.json",
        tuple(
            f"{tag}/decoding/beam8_penalty0/{c}/wer"
            for c in ("clean", "noisy")
            for tag in ("wide192_4000", "speedvtlp4000")
        ),
        "reads `theo` at {:.1f} % against {:.1f} %, at 10 dB {:.1f} against {:.1f} %",
        scale=100,
    ),
    *(
        Figure(
            "docs/speech.md",
            "speech_probe_tts.json",
            tuple(f"tts300_gl32_seed{seed}/{judge}/wer" for seed in (0, 1, 2)),
            fmt,
            scale=100,
            seeds=True,
        )
        for judge, fmt in (
            ("speedvtlp8000_seed1", "have **{:.1f} ± {:.1f} %** and"),
            ("speedvtlp8000_seed2", "and **{:.1f} ± {:.1f} %** WER on the same 500 unseen strings"),
        )
    ),
    Figure(
        "docs/speech.md",
        "speech_probe_tts.json",
        tuple(
            f"tts300_gl32_seed{seed}/{judge}/wer"
            for judge in ("speedvtlp8000_seed1", "speedvtlp8000_seed2")
            for seed in (0, 1, 2)
        ),
        "{:.1f}, {:.1f}, {:.1f} % and {:.1f}, {:.1f}, {:.1f} % for synthesiser seeds 0, 1, 2",
        scale=100,
    ),
    Figure(  # the three seeds whose mean ± std the page quotes beside them
        "docs/speech.md",
        "speech_probe_perturb.json",
        tuple(f"{tag}/decoding/beam8_penalty0/clean/wer" for tag in SPEECH_SEEDS),
        "15.4 ± 0.6 %** on `theo` ({:.1f}, {:.1f}, {:.1f} %;",
        scale=100,
    ),
    Figure(
        "docs/benchmarks.md",
        "speech/results.json",
        ("results/recognition/oracle/clean/*/wer",),
        "isolated-digit classifier on oracle segments {:.1f} ± {:.1f} %",
        scale=100,
        seeds=True,
    ),
    Figure(
        "docs/speech.md",
        "speech/results.json",
        ("results/folds/*/clean", "results/folds/*/noisy", "results/folds/*/clean_adapted"),
        '**six-fold mean {0:.1f} %** (10 dB: {2:.1f} %). Adapted to each speaker ("Speaker adaptation" below), '
        "these 500-step recognisers gain nothing on average (six-fold mean {4:.1f} %;",
        scale=100,
        seeds=True,  # each path is every fold's value: the page quotes their mean
    ),
    # Speech <-> text: unsupervised speaker adaptation (python benchmarks/speech_probe.py adapt ...)
    *(
        Figure(
            "docs/speech.md",
            "speech_probe_adapt.json",
            tuple(f"{tag}/{key}/wer" for key in ("clean", "clean_adapted")),
            f"| {tag} | {fold} | {seed} | {{:.1f}} | **{{:.1f}}** |",
            scale=100,
        )
        for tag, fold, seed in (
            *((t, "theo", k) for k, t in enumerate(SPEECH_ADAPT_THEO)),
            *((f"speedvtlp4000_{f}", f, 0) for f in ("jackson", "george", "lucas", "nicolas", "yweweler")),
        )
    ),
    *(
        Figure(
            "docs/speech.md",
            "speech_probe_adapt.json",
            tuple(f"{t}/{key}/wer" for t in SPEECH_ADAPT_THEO),
            fmt,
            100,
            True,
        )
        for key, fmt in (
            ("clean", "**`theo`:** {:.1f} ± {:.1f} % →"),
            ("clean_adapted", "→ **{:.1f} ± {:.1f} %** over the three seeds"),
            ("noisy", "at 10 dB {:.1f} ± {:.1f} →"),
            ("noisy_adapted", "→ {:.1f} ± {:.1f} %. Seed 0 does not move"),
        )
    ),
    *(
        Figure(
            "docs/speech.md",
            "speech_probe_adapt.json",
            tuple(f"{t}/{key}/wer" for t in SPEECH_ADAPT_FIVE),
            fmt,
            100,
            True,
        )
        for key, fmt in (
            ("clean", "the seed-0 mean goes from {0:.1f} % to"),
            ("clean_adapted", "to {0:.1f} % WER (all six"),
        )
    ),
    Figure(
        "docs/speech.md",
        "speech_probe_adapt.json",
        tuple(
            f"speedvtlp4000_{fold}/{key}/wer"
            for fold in ("jackson", "george", "lucas", "nicolas")
            for key in ("clean_adapted_enrol200", "clean_adapted")
        ),
        "(`jackson` {:.1f} against {:.1f} %, `george` {:.1f} against {:.1f}, `lucas` {:.1f} against {:.1f}, "
        "`nicolas` {:.1f} against {:.1f})",
        scale=100,
    ),
    # Speech <-> text, long preset (chorus bench speech --preset long)
    *(
        Figure(
            "docs/speech.md",
            "speech_probe_joint.json",
            tuple(f"*/{strings}/{key}" for key in ("greedy", "0", "0.3", "0.5", "0.7", "1")),
            f"| {label} |" + "".join(f" {{{2 * k}:.1f}} |" for k in range(6)),  # the means; not the stds
            scale=100,
            seeds=True,
        )
        for strings, label in (
            ("training voices", "new strings by the training voices"),
            ("theo clean", "`theo`, clean"),
        )
    ),
    *(
        Figure(
            "docs/speech.md",
            "speech_long/results.json",
            tuple(f"results/recognition/{system}/{c}/*/{m}" for c in ("clean", "noisy") for m in ("wer", "ser")),
            f"| {label} |" + " {:.1f} ± {:.1f} |" * 4,
            scale=100,
            seeds=True,
        )
        for system, label in (
            ("oracle", "baseline (a): isolated-digit classifier on oracle word segments"),
            ("ctc_beam", "CTC recogniser, beam 8 + length prior"),
            ("ctc_adapted", "CTC recogniser, beam 8 + length prior, adapted to the speaker without transcripts"),
            ("attention", "joint CTC-attention recogniser, greedy (decoder alone)"),
            ("attention_joint", "joint CTC-attention recogniser, joint decoding (beam 8, CTC weight 0.5)"),
        )
    ),
    Figure(
        "docs/speech.md",
        "speech_long/results.json",
        tuple(f"results/recognition/{s}/{c}/*/wer" for s, c in (("attention_joint", "clean"), ("ctc_beam", "clean"))),
        "with joint decoding {:.1f} ± {:.1f} % against {:.1f} ± {:.1f} %, 1.0 point",
        scale=100,
        seeds=True,
    ),
    Figure(
        "docs/speech.md",
        "speech_long/results.json",
        ("results/tts/*/wer", "results/tts/*/string_error"),
        "| **{:.1f} ± {:.1f} %** |\n| round trip text → speech → text, string error | 53.7 ± 4.4 % | {:.1f} ± {:.1f} % |",
        scale=100,
        seeds=True,
    ),
    Figure(
        "docs/speech.md",
        "speech_long/results.json",
        ("results/tts/*/wer",),
        "{:.1f}, {:.1f} and {:.1f} % for the three synthesiser\n  seeds",
        scale=100,
    ),
    Figure(
        "docs/speech.md",
        "speech_long/results.json",
        tuple(f"results/folds/{fold}/clean" for fold in SPEAKER_FOLDS),
        "george {:.1f}, jackson {:.1f}, lucas {:.1f}, nicolas {:.1f}, theo {:.1f},\nyweweler {:.1f} % WER",
        scale=100,
    ),
    Figure(
        "docs/speech.md",
        "speech_long/results.json",
        tuple(f"results/folds/{fold}/clean_adapted" for fold in SPEAKER_FOLDS),
        "adapted to each speaker: {:.1f}, {:.1f}, {:.1f}, {:.1f}, {:.1f} and {:.1f} %",
        scale=100,
    ),
    *(
        Figure(
            "docs/speech.md",
            "speech_long/results.json",
            (f"results/folds/*/clean{adapted}", f"results/folds/*/noisy{adapted}"),
            fmt,
            scale=100,
            seeds=True,  # each path is every fold's value: the page quotes their mean
        )
        for adapted, fmt in (
            ("", "| CTC (beam) six-fold mean, clean / 10 dB (seed 0) | 30.4 / 31.0 % | {0:.1f} / {2:.1f} % |"),
            (
                "_adapted",
                '| the same, adapted to each held-out speaker ("Speaker adaptation" below) | 30.2 / 31.7 % | {0:.1f} / {2:.1f} % |',
            ),
        )
    ),
    Figure(
        "docs/benchmarks.md",
        "speech_long/results.json",
        (
            "results/recognition/ctc_beam/clean/*/wer",
            "results/recognition/ctc_beam/noisy/*/wer",
            "results/recognition/ctc_adapted/clean/*/wer",
            "results/recognition/ctc_adapted/noisy/*/wer",
            "results/recognition/attention_joint/clean/*/wer",
            "results/recognition/attention/clean/*/wer",
            "results/recognition/attention_alignment/clean/*/peak_hit",
            "results/tts/*/wer",
        ),
        "CTC WER on theo {:.1f} ± {:.1f} % clean, {:.1f} ± {:.1f} % at 10 dB (six-fold mean 14.4 %); adapted to the "
        "speaker without transcripts {:.1f} ± {:.1f} % clean, {:.1f} ± {:.1f} % at 10 dB (six-fold mean 8.3 %; settings "
        "chosen on jackson); isolated-digit classifier on oracle segments 12.5 ± 2.8 %; joint CTC-attention "
        "{:.1f} ± {:.1f} % with joint decoding "
        "({:.1f} ± {:.1f} % decoder alone), attention peaks in the "
        "right word {:.1f} ± {:.1f} % (uniform read-out 82.2 %); synthesis in theo's voice {:.1f} ± {:.1f} % WER",
        scale=100,
        seeds=True,
    ),
    # chorus serve load test (CHORUS_SERVE_LOAD_OUT=benchmarks/results/serve pytest tests/test_serve_load.py -k load_500)
    Figure(
        "docs/benchmarks.md",
        "serve/results.json",
        ("results/errors", "results/p50_ms", "results/p95_ms"),
        "8 concurrent, {:.0f} errors; p50 {:.0f} ms, p95 {:.0f} ms",
    ),
    Figure(
        "docs/benchmarks/serve.md",
        "serve/results.json",
        ("results/errors", "results/wall_s", "results/requests_per_s", "results/p50_ms", "results/p95_ms"),
        "| 500 | 8 | {:.0f} | {:.1f} s | {:.1f} req/s | {:.0f} ms | {:.0f} ms |",
    ),
    # Alignment (chorus bench align)
    Figure(
        "docs/benchmarks.md",
        "align/results.json",
        ("results/forced/tagger/*/boundary_ms", "results/speaker_dtw/posteriorgram/*/boundary_ms"),
        "forced alignment {:.1f} ± {:.1f} ms; speaker↔speaker DTW {:.1f} ± {:.1f} ms (posteriorgram)",
        seeds=True,
    ),
    Figure(
        "docs/benchmarks.md",
        "align/results.json",
        (
            "results/av/contrastive_dtw/*/segmental_frame_acc",
            "results/av/contrastive_dtw/*/frame_acc",
            "results/attention/*/peak_hit",
        ),
        "audio↔video segmental (VAD segments ↔ shots) {:.1f} ± {:.1f} % of frames, frame-level DTW {:.1f} ± {:.1f} % "
        "(diagonal 71.7 %; VAD count right on 96 % of sequences, so the segmentation does most of it); attention "
        "peaks {:.1f} ± {:.1f} %",
        scale=100,
        seeds=True,
    ),
    Figure(
        "docs/benchmarks/align.md",
        "align/results.json",
        ("results/forced/tagger/*/boundary_ms",),
        "| forced alignment | frame-label CNN + Viterbi | {:.1f} ± {:.1f} |",
        seeds=True,
    ),
    Figure(
        "docs/benchmarks/align.md",
        "align/results.json",
        ("results/forced/tagger/*/frame_acc",),
        "| frame-label CNN + Viterbi | 18.6 ± 0.2 | {:.1f} ± {:.1f} | ≤ 20 ms |",
        scale=100,
        seeds=True,
    ),
    Figure(
        "docs/benchmarks/align.md",
        "align/results.json",
        ("results/speaker_dtw/log-mel/boundary_ms", "results/speaker_dtw/MFCC/boundary_ms"),
        "| speaker ↔ speaker | DTW, log-mel | {:.1f} | 92.5 | ≤ 60 ms | | speaker ↔ speaker | DTW, MFCC + CMVN | {:.1f} |",
    ),
    Figure(
        "docs/benchmarks/align.md",
        "align/results.json",
        ("results/attention/*/peak_hit",),
        "| attention recogniser (string acc 0.3 ± 0.6 %) | – | {:.1f} ± {:.1f} | – |",
        scale=100,
        seeds=True,
    ),
    # Fusion on AV-Digits (chorus bench fusion folds=true) and its calibration (calibrate=true)
    Figure(
        "docs/benchmarks.md",
        "fusion/results.json",
        (
            "results/levels/hard/seeds/*/acc/gated",
            "results/levels/hard/seeds/*/acc/image_only",
            "results/levels/hard/seeds/*/acc/audio_only",
        ),
        "best fusion (gated) {:.1f} ± {:.1f} % vs image-only {:.1f} ± {:.1f} % / audio-only {:.1f} ± {:.1f} %",
        scale=100,
        seeds=True,
    ),
    Figure(
        "docs/benchmarks.md",
        "fusion/results.json",
        (
            "results/levels/hard/seeds/*/acc_audio_missing/cross_transformer+moddrop",
            "results/levels/hard/seeds/*/acc/image_only",
            "results/levels/hard/seeds/*/acc_image_missing/cross_transformer+moddrop",
            "results/levels/hard/seeds/*/acc/audio_only",
        ),
        "cross-transformer+moddrop with audio missing {0:.1f} % vs image-only {2:.1f} %, with image missing "
        "{4:.1f} % vs audio-only {6:.1f} %",
        scale=100,
        seeds=True,
    ),
    Figure(
        "docs/benchmarks/fusion.md",
        "fusion/results.json",
        (
            "results/levels/hard/seeds/*/acc/gated",
            "results/levels/hard/seeds/*/acc_audio_missing/gated",
            "results/levels/hard/seeds/*/acc_image_missing/gated",
        ),
        "| hard | gated | {:.1f} ± {:.1f} | {:.1f} ± {:.1f} | {:.1f} ± {:.1f} |",
        scale=100,
        seeds=True,
    ),
    Figure(
        "docs/benchmarks/fusion.md",
        "fusion/results.json",
        ("results/folds/george/audio_only", "results/folds/yweweler/audio_only"),
        "moves audio accuracy from {:.0f} % (george) to {:.0f} % (yweweler)",
        scale=100,
    ),
    Figure(
        "docs/benchmarks/fusion.md",
        "fusion_calibrate/results.json",
        (
            "results/calibration/setting=PCA variance kept 0.55, noise std 0.3/accuracy",
            "results/calibration/setting=white noise at 20.0 dB SNR/accuracy",
        ),
        "PCA keeping 55 % of the variance + noise std 0.3 ({:.1f} %); audio: white noise at 20 dB SNR ({:.1f} %)",
        scale=100,
    ),
    Figure(
        "docs/benchmarks.md",
        "speech_probe_perturb.json",
        tuple(f"{tag}/decoding/beam8_penalty0/clean/wer" for tag in SPEECH_SEEDS),
        "speed perturbation + VTLP reaches {:.1f} ± {:.1f} % on theo over 3 seeds",
        scale=100,
        seeds=True,
    ),
    # Caltech-101 zero-shot to unseen classes (chorus bench caltech_zeroshot)
    Figure(
        "docs/benchmarks.md",
        "caltech_zeroshot/results.json",
        (
            "results/summary/lit/unseen_top1",
            "results/summary/scratch/unseen_top1",
            "results/summary/lit/unseen_top5",
            "results/summary/lit/seen_top1",
            "results/summary/scratch/seen_top1",
            "results/summary/lit/train_top1",
        ),
        "unseen top-1 {:.1f} ± {:.1f} % (baseline {:.1f} ± {:.1f} %, chance 5 %), top-5 {:.1f} ± {:.1f} %; seen "
        "held-out top-1 {:.1f} ± {:.1f} % (baseline {:.1f} ± {:.1f} %); training images {:.1f} %",
        scale=100,
    ),
    Figure(
        "docs/benchmarks/caltech_zeroshot.md",
        "caltech_zeroshot/results.json",
        ("results/summary/lit/unseen_top1", "results/summary/scratch/unseen_top1"),
        "| unseen zero-shot top-1 (20-way) | **{:.1f} ± {:.1f}** | {:.1f} ± {:.1f} | 5.0 | ≥ 20 |",
        scale=100,
    ),
    Figure(
        "docs/benchmarks/caltech_zeroshot.md",
        "caltech_zeroshot/results.json",
        (
            "results/summary/lit/seen_top1",
            "results/summary/scratch/seen_top1",
            "results/summary/lit/probe_seen_top1",
            "results/summary/scratch/probe_seen_top1",
        ),
        "| seen held-out zero-shot top-1 (81-way) | **{:.1f} ± {:.1f}** | {:.1f} ± {:.1f} | 1.2 | ≥ 70 | "
        "| seen held-out linear probe top-1 (81-way) | **{:.1f} ± {:.1f}** | {:.1f} ± {:.1f} |",
        scale=100,
    ),
    Figure(
        "docs/benchmarks/caltech_zeroshot.md",
        "caltech_zeroshot/results.json",
        ("results/summary/lit/unseen_top1/lobster", "results/summary/scratch/unseen_top1/lobster"),
        "| lobster | {:.1f} ± {:.1f} | {:.1f} ± {:.1f} |",
        scale=100,
    ),
    # Translation (chorus bench translate)
    Figure(
        "docs/benchmarks.md",
        "translate/results.json",
        ("results/per_seed/*/cgan/text_accuracy",),
        "text → image cGAN {:.1f} ± {:.1f} %",
        scale=100,
        seeds=True,
    ),
    Figure(
        "docs/benchmarks.md",
        "translate/results.json",
        ("results/per_seed/*/cgan/text_accuracy", "results/per_seed/*/cvae/text_accuracy"),
        "({:.1f} / {:.1f} / {:.1f}; diversity 0.91), CVAE 92.0 ± 0.4 % ({:.1f} / {:.1f} / {:.1f}",
        scale=100,
    ),
    Figure(
        "docs/benchmarks.md",
        "translate/results.json",
        (
            "results/per_seed/*/image_to_speech/accuracy",
            "results/per_seed/*/cgan/speech_official_prior_accuracy",
            "results/per_seed/*/cgan/speech_speaker_prior_accuracy",
        ),
        "image → speech {:.1f} ± {:.1f} % (97.2 / 96.8 / 97.0; speaker-robust judge, 89.6 % on theo); speech → image, "
        "cGAN via nearest-image prior: official split {:.1f} ± {:.1f} %, held-out speaker theo {:.1f} ± {:.1f} %",
        scale=100,
        seeds=True,
    ),
    Figure(
        "docs/benchmarks/translate.md",
        "translate/results.json",
        (
            "results/per_seed/*/cgan/speech_official_prior_accuracy",
            "results/per_seed/*/cgan/speech_speaker_prior_accuracy",
        ),
        "cGAN through the nearest-image prior **{:.1f} ± {:.1f} %**",
        scale=100,
        seeds=True,
    ),
    Figure(
        "docs/benchmarks/translate.md",
        "translate/results.json",
        ("results/per_seed/*/cgan/speech_speaker_prior_accuracy",),
        "Not met for the held-out speaker theo: {:.1f} ± {:.1f} %",
        scale=100,
        seeds=True,
    ),
    Figure(
        "docs/benchmarks/translate.md",
        "translate/results.json",
        ("results/judges/image_judge_test_accuracy", "results/judges/audio_judge_heldout_speaker_accuracy"),
        "held-out test images **{:.1f} %**; FSDD `audio_cnn` tiny (speaker-robust input, below) on the held-out "
        "speaker `theo` **{:.1f} %**",
        scale=100,
    ),
    # The relation network on object lists (benchmarks/vqa_state_probe.py)
    Figure(
        "docs/vqa.md",
        "vqa/vqa_state_probe.json",
        tuple(f"runs/64/exact/*/{t}" for t in ("non_relational", "count", "closest", "furthest")),
        "it answers the non-relational questions at {:.1f} ± {:.1f} % and count at {:.1f} ± {:.1f} %, but closest "
        "and furthest at {:.1f} ± {:.1f} and {:.1f} ± {:.1f} %.",
        scale=100,
        seeds=True,
    ),
    Figure(
        "docs/vqa.md",
        "vqa/vqa_state_probe.json",
        ("runs/64/cell/*/closest", "runs/64/cell/*/furthest"),
        "cells changes neither ({:.1f} ± {:.1f} and {:.1f} ± {:.1f} %)",
        scale=100,
        seeds=True,
    ),
    Figure(
        "docs/vqa.md",
        "vqa/vqa_state_probe_long.json",
        ("runs/64/exact/*/closest", "runs/64/exact/*/furthest"),
        "trained for 12,000 steps (seed 0) they creep to {:.1f} and {:.1f} %",
        scale=100,
    ),
    Figure(
        "docs/vqa.md",
        "vqa/vqa_state_probe_distance.json",
        tuple(f"runs/64/{p}/*/{t}" for p in ("exact", "cell") for t in ("closest", "furthest")),
        "closest and furthest rise to {:.1f} ± {:.1f} and {:.1f} ± {:.1f} % in the same 4,000 steps, and to "
        "{:.1f} ± {:.1f} and {:.1f} ± {:.1f} % from the cells' centres alone",
        scale=100,
        seeds=True,
    ),
    # FiLM and question attention through the colour curriculum
    Figure(
        "docs/vqa.md",
        "vqa_curriculum_film/results.json",
        tuple(f"results/summary/film/accuracy_{t}" for t in ("non_relational", "relational", *QUESTION_TYPES)),
        "| CNN + FiLM (3 seeds) |" + " {:.1f} ± {:.1f} |" * 8,
        scale=100,
    ),
    Figure(
        "docs/vqa.md",
        "vqa_curriculum_attention/results.json",
        tuple(
            f"results/stages/question_attention/seed0/stage=8/accuracy_{t}"
            for t in ("non_relational", "relational", *QUESTION_TYPES)
        ),
        "| CNN + question attention (seed 0) |" + " {:.1f} |" * 8,
        scale=100,
    ),
    Figure(
        "docs/vqa.md",
        "vqa_curriculum_film/results.json",
        tuple(
            f"results/stages/film/seed{k}/stage=8/accuracy_{t}"
            for t in ("non_relational", "relational")
            for k in (0, 1, 2)
        ),
        "Per FiLM seed (0 / 1 / 2): non-relational {:.1f} / {:.1f} / {:.1f} %, relational\n{:.1f} / {:.1f} / {:.1f} %.",
        scale=100,
    ),
    Figure(
        "docs/vqa.md",
        "vqa_curriculum_film/results.json",
        tuple(
            f"results/stages/film/seed0/stage=8/accuracy_{t}"
            for t in ("non_relational", "relational", "closest", "furthest")
        ),
        "{:.1f} % non-relational and {:.1f} % relational, closest {:.1f} % and furthest {:.1f} %,",
        scale=100,
    ),
    Figure(
        "docs/vqa.md",
        "vqa_curriculum/results.json",
        tuple(f"results/stages/relation_network/seed2/stage=8/accuracy_{t}" for t in ("closest", "furthest")),
        "where the relation network's best seed had {:.1f} and {:.1f} %.",
        scale=100,
    ),
    Figure(
        "docs/vqa.md",
        "vqa/diagnostics_film.json",
        tuple(
            f"film_seed1/stage8/beyond_reference/by_colour/{c}/{k}/accuracy"
            for k in ("non_relational", "relational")
            for c in ("red", "blue")
        ),
        "stages: {:.1f} and {:.1f} % of the non-relational questions about them and\n{:.1f} and {:.1f} % of the "
        "relational ones",
        scale=100,
    ),
    Figure(
        "docs/vqa.md",
        "vqa/diagnostics_film.json",
        tuple(f"film_seed2/stage8/beyond_reference/by_colour/{c}/relational/accuracy" for c in ("red", "blue")),
        "its relational answers are at {:.1f} and {:.1f} % for red and\nblue",
        scale=100,
    ),
    Figure(
        "docs/vqa.md",
        "vqa_curriculum_attention/results.json",
        tuple(
            f"results/stages/question_attention/seed0/stage=8/accuracy_{t}"
            for t in ("non_relational", "count", "closest", "furthest")
        ),
        "({:.1f} %\nnon-relational, count {:.1f} %), but its closest and furthest, {:.1f} and\n{:.1f} %,",
        scale=100,
    ),
    Figure(
        "docs/vqa.md",
        "vqa_curriculum_film/results.json",
        tuple(f"results/summary/film/accuracy_{t}" for t in ("non_relational", "relational")),
        "three-seed mean is {:.1f} ± {:.1f} % and {:.1f} ± {:.1f} %",
        scale=100,
    ),
    Figure(
        "docs/benchmarks.md",
        "vqa_curriculum_film/results.json",
        (
            *(f"results/summary/film/accuracy_{t}" for t in ("non_relational", "relational")),
            *(
                f"results/stages/film/seed{k}/stage=8/accuracy_{t}"
                for t in ("non_relational", "relational")
                for k in (0, 1, 2)
            ),
        ),
        "FiLM non-relational / relational {:.1f} ± {:.1f} / {:.1f} ± {:.1f} % (per seed {:.1f} / {:.1f} / {:.1f} and "
        "{:.1f} / {:.1f} / {:.1f})",
        scale=100,
    ),
    Figure(
        "docs/benchmarks.md",
        "vqa_curriculum_attention/results.json",
        tuple(
            f"results/stages/question_attention/seed0/stage=8/accuracy_{t}" for t in ("non_relational", "relational")
        ),
        "question attention (seed 0) {:.1f} / {:.1f}",
        scale=100,
    ),
    Figure(
        "docs/vqa.md",
        "vqa/vqa_state_probe_distance.json",
        ("runs/64/cell/*/closest", "runs/64/cell/*/furthest"),
        "furthest {:.1f} ± {:.1f} and {:.1f} ± {:.1f} % after 4,000 steps, against",
        scale=100,
        seeds=True,
    ),
    Figure(
        "docs/vqa.md",
        "vqa_film_stage9/seed2_metrics.json",
        tuple(f"eval/accuracy_{k}" for k in ("non_relational", "relational", "closest", "furthest")),
        "Seed 2 reaches {:.1f} % non-relational and {:.1f} % relational (closest {:.1f} %,\nfurthest {:.1f} %)",
        scale=100,
    ),
    Figure(
        "docs/vqa.md",
        "vqa_film_stage9/seed1_metrics.json",
        tuple(f"eval/accuracy_{k}" for k in ("non_relational", "relational")),
        "seed 1 stays at {:.1f} and {:.1f} %",
        scale=100,
    ),
]


def resolve(obj: Any, path: str) -> Any:
    parts = path.split("/")
    while parts:
        if parts[0] == "*":  # every element of a list, or every value of a dict keyed by seed
            return [resolve(item, "/".join(parts[1:])) for item in (obj.values() if isinstance(obj, dict) else obj)]
        if isinstance(obj, list):
            conditions = [condition.partition("=")[::2] for condition in parts.pop(0).split("&")]
            matches = [item for item in obj if all(str(item.get(f)) == v for f, v in conditions)]
            assert len(matches) == 1, f"{conditions} selects {len(matches)} elements"
            obj = matches[0]
        else:  # the longest prefix that is a key: keys such as "eval/accuracy" contain the separator
            n = next(n for n in range(len(parts), 0, -1) if "/".join(parts[:n]) in obj)
            obj, parts = obj["/".join(parts[:n])], parts[n:]
    return obj


@cache
def load(results: str) -> Any:
    return json.loads((RESULTS / results).read_text())


def formatted(figure: Figure) -> str:
    values: list[float] = []
    resolved = [resolve(load(figure.results), path) for path in figure.paths]
    if figure.seeds and not any(isinstance(value, list) for value in resolved):
        resolved = [resolved]  # one path per seed
    for value in resolved:
        if figure.seeds:
            value = [statistics.mean(value), statistics.stdev(value)]
        values += [v * figure.scale for v in value] if isinstance(value, list) else [value * figure.scale]
    return figure.fmt.format(*values)


def normalise(text: str) -> str:
    """Pages wrap lines and write a typographic minus; compare on that footing."""
    return re.sub(r"\s+", " ", text.replace("−", "-"))


def page_text(page: str) -> str:
    return normalise((ROOT / page).read_text())


@pytest.mark.parametrize("figure", FIGURES, ids=lambda f: f"{Path(f.page).stem}:{f.results}:{f.paths[0]}")
def test_docs_quote_the_results_file(figure: Figure) -> None:
    text = normalise(formatted(figure))
    assert text in page_text(figure.page), f"{figure.page} does not quote {text!r} from {figure.results}"


def test_every_bench_run_is_quoted() -> None:
    quoted = {Path(f.results).parent for f in FIGURES}
    runs = {p.parent.relative_to(RESULTS) for p in RESULTS.glob("*/results.json")}
    assert runs <= quoted, f"results without a docs figure checked here: {sorted(map(str, runs - quoted))}"


def test_linked_results_files_exist() -> None:
    pages = [ROOT / "docs" / "benchmarks.md", *sorted((ROOT / "docs" / "benchmarks").glob("*.md"))]
    missing = []
    for page in pages:
        for link in re.findall(r"benchmarks/results/[\w./-]+\.(?:md|json|png)", page.read_text()):
            if not (ROOT / link).exists():
                missing.append(f"{page.name}: {link}")
    assert not missing, missing


def test_a_drifted_page_fails() -> None:
    """The check is not vacuous: a figure one digit off is not found on the page."""
    figure = next(f for f in FIGURES if f.results == "align_speed.json")
    value = resolve(load(figure.results), figure.paths[0])
    exact = Figure(figure.page, figure.results, figure.paths[:1], "Chorus {:.1f} ms")
    drifted = Figure(figure.page, figure.results, figure.paths[:1], "Chorus {:.1f} ms", scale=1 + 0.1 / value)
    assert normalise(formatted(exact)) in page_text(figure.page)
    assert normalise(formatted(drifted)) not in page_text(figure.page)
