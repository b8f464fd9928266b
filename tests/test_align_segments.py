"""Segmental alignment (:mod:`chorus.align.segments`) on hand-made signals whose units are known."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from chorus.align.segments import (
    energy_segments,
    monotone_segment_path,
    pool_segments,
    runs,
    segment_frame_pairs,
    shot_segments,
)


def test_runs_finds_every_true_stretch() -> None:
    mask = np.array([0, 1, 1, 0, 0, 1, 0, 1, 1, 1], dtype=bool)
    assert runs(mask).tolist() == [[1, 3], [5, 6], [7, 10]]
    assert runs(np.zeros(4, dtype=bool)).shape == (0, 2)


def test_energy_segments_bridge_closures_and_drop_clicks() -> None:
    floor, speech = -10.0, -4.0
    energy = np.full(120, floor)
    energy[10:30] = speech  # word 1 ...
    energy[31:40] = speech  # ... with a 1-frame closure inside
    energy[60:90] = speech  # word 2
    energy[100:103] = speech  # a 3-frame click
    energy += np.random.default_rng(0).normal(0.0, 0.01, energy.shape)
    assert energy_segments(energy).tolist() == [[10, 40], [60, 90]]
    # The threshold is relative: the same utterance 30 dB louder gives the same segments.
    assert energy_segments(energy + 7.0).tolist() == [[10, 40], [60, 90]]
    # Only gaps shorter than min_gap are bridged: with min_gap 25 the 20-frame pause joins the two words.
    assert len(energy_segments(energy, min_gap=25)) == 1


def test_shot_segments_cut_where_the_picture_changes() -> None:
    a, b = torch.zeros(1, 4, 4), torch.ones(1, 4, 4)
    video = torch.stack([a, a, a, b, b, a, a])
    video[1] += 0.001  # jitter below the tolerance is not a cut
    assert shot_segments(video).tolist() == [[0, 3], [3, 5], [5, 7]]


def test_equal_counts_give_the_diagonal_whatever_the_cost() -> None:
    cost = np.random.default_rng(1).random((4, 4))
    cost[0, 3] = cost[3, 0] = -100.0  # cheap off-diagonal cells cannot pull a 1:1 path
    assert monotone_segment_path(cost).tolist() == [[i, i] for i in range(4)]


@pytest.mark.parametrize("transpose", [False, True])
def test_surplus_units_merge_where_the_cost_is_low(transpose: bool) -> None:
    # 5 audio units, 3 shots: unit 2 belongs with shot 0 by its cost (the cheap cells are the truth).
    truth = [0, 0, 0, 1, 2]
    cost = np.ones((5, 3))
    cost[np.arange(5), truth] = 0.0
    path = monotone_segment_path(cost.T if transpose else cost)
    if transpose:
        path = path[:, ::-1]
    assert path.tolist() == [[i, t] for i, t in enumerate(truth)]
    assert len(path) == 5  # every unit of the longer side exactly once


def test_segment_frame_pairs_split_a_shared_unit_in_time() -> None:
    audio = np.array([[0, 10], [20, 30]])
    shots = np.array([[0, 2], [2, 3], [3, 5]])
    path = np.array([[0, 0], [0, 1], [1, 2]])  # audio unit 0 covers shots 0 and 1
    pairs = segment_frame_pairs(path, audio, shots)
    audio_of = {v: sorted(set(pairs[pairs[:, 0] == v, 1].tolist())) for v in range(5)}
    assert audio_of[0] == audio_of[1] == list(range(0, 5))
    assert audio_of[2] == list(range(5, 10))
    assert audio_of[3] == audio_of[4] == list(range(20, 30))


def test_pool_segments_gives_unit_means() -> None:
    frames = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 2.0], [0.0, 4.0]])
    pooled = pool_segments(frames, np.array([[0, 2], [2, 4]]))
    assert torch.allclose(pooled, torch.tensor([[1.0, 0.0], [0.0, 1.0]]))
