"""Alignment between sequences: explicit (DTW, soft-DTW, Viterbi / CTC, Sinkhorn OT) and implicit (attention).

See ``docs/align.md`` for what each method is, when to use it and runnable examples.
"""

from chorus.align.attention import CrossAttention, attention_peaks
from chorus.align.ctc import ctc_beam_decode, ctc_forced_align, ctc_greedy_decode, ctc_loss
from chorus.align.dtw import DTWResult, dtw, dtw_from_cost
from chorus.align.metrics import boundary_errors, frame_accuracy, path_to_frame_labels, peak_hit_rate
from chorus.align.monotonic import ForcedAlignment, forced_align
from chorus.align.ot import Transport, sinkhorn
from chorus.align.similarity import cosine_similarity_matrix, cost_matrix
from chorus.align.softdtw import soft_dtw, soft_dtw_from_cost

__all__ = [
    "CrossAttention",
    "DTWResult",
    "ForcedAlignment",
    "Transport",
    "attention_peaks",
    "boundary_errors",
    "cosine_similarity_matrix",
    "cost_matrix",
    "ctc_beam_decode",
    "ctc_forced_align",
    "ctc_greedy_decode",
    "ctc_loss",
    "dtw",
    "dtw_from_cost",
    "forced_align",
    "frame_accuracy",
    "path_to_frame_labels",
    "peak_hit_rate",
    "sinkhorn",
    "soft_dtw",
    "soft_dtw_from_cost",
]
