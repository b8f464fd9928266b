"""Word error rate, sentence error rate and a per-word confusion table for transcripts.

WER is the speech-recognition field's measure (as in NIST ``sclite`` and ``jiwer``): the minimum number of
word substitutions S, deletions D and insertions I turning the reference into the hypothesis, summed over
the corpus and divided by the number of reference words N, ``(S + D + I) / N`` — a corpus-level ratio, not a
mean of per-utterance rates. Sentence (string) error rate is the share of utterances with any error.

Why a Levenshtein here rather than a call into ``jiwer``: the per-digit confusion needs the alignment
itself (which reference word became which hypothesis word), and a 20-line dynamic programme keeps the
library free of another dependency; ``tests/test_speech.py`` checks every figure against ``jiwer``.
Ties between equally short edit scripts prefer a match or substitution over an insertion or deletion,
so counts of S, D and I agree with ``jiwer`` (RapidFuzz's Levenshtein) on the totals.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

__all__ = ["ErrorCounts", "align_words", "error_counts", "word_error_rate"]

DELETED, INSERTED = "<del>", "<ins>"


def align_words(reference: Sequence[str], hypothesis: Sequence[str]) -> list[tuple[str, str]]:
    """A minimum-edit alignment as ``(reference word, hypothesis word)`` pairs.

    A deletion pairs the reference word with ``"<del>"``, an insertion ``"<ins>"`` with the hypothesis word.
    """
    n, m = len(reference), len(hypothesis)
    cost = np.zeros((n + 1, m + 1), dtype=np.int64)
    cost[:, 0], cost[0, :] = np.arange(n + 1), np.arange(m + 1)
    for i in range(1, n + 1):
        for j in range(1, m + 1):
            diagonal = cost[i - 1, j - 1] + (reference[i - 1] != hypothesis[j - 1])
            cost[i, j] = min(diagonal, cost[i - 1, j] + 1, cost[i, j - 1] + 1)
    pairs: list[tuple[str, str]] = []
    i, j = n, m
    while i > 0 or j > 0:
        if i > 0 and j > 0 and cost[i, j] == cost[i - 1, j - 1] + (reference[i - 1] != hypothesis[j - 1]):
            pairs.append((reference[i - 1], hypothesis[j - 1]))
            i, j = i - 1, j - 1
        elif i > 0 and cost[i, j] == cost[i - 1, j] + 1:
            pairs.append((reference[i - 1], DELETED))
            i -= 1
        else:
            pairs.append((INSERTED, hypothesis[j - 1]))
            j -= 1
    return pairs[::-1]


@dataclass
class ErrorCounts:
    """Corpus totals: ``substitutions``, ``deletions``, ``insertions``, reference ``words``, ``sentences`` and
    ``sentence_errors``; ``confusion`` counts each ``(reference word, hypothesis word)`` pair (hits included)."""

    substitutions: int = 0
    deletions: int = 0
    insertions: int = 0
    words: int = 0
    sentences: int = 0
    sentence_errors: int = 0
    confusion: dict[tuple[str, str], int] = field(default_factory=dict)

    @property
    def wer(self) -> float:
        return (self.substitutions + self.deletions + self.insertions) / max(self.words, 1)

    @property
    def ser(self) -> float:
        return self.sentence_errors / max(self.sentences, 1)

    def confusion_matrix(self, vocabulary: Sequence[str]) -> np.ndarray:
        """Counts [V + 1, V + 1]: row = reference word, column = hypothesis; the last row/column is
        ``<ins>`` / ``<del>`` (a word inserted / deleted)."""
        index = {w: k for k, w in enumerate(vocabulary)} | {INSERTED: len(vocabulary), DELETED: len(vocabulary)}
        table = np.zeros((len(vocabulary) + 1, len(vocabulary) + 1), dtype=np.int64)
        for (ref, hyp), count in self.confusion.items():
            table[index[ref], index[hyp]] += count
        return table


def error_counts(references: Sequence[str], hypotheses: Sequence[str]) -> ErrorCounts:
    """Corpus error counts of whitespace-tokenised transcripts (one string per utterance)."""
    if len(references) != len(hypotheses):
        raise ValueError(f"{len(references)} references but {len(hypotheses)} hypotheses")
    counts = ErrorCounts()
    for reference, hypothesis in zip(references, hypotheses):
        ref, hyp = reference.split(), hypothesis.split()
        pairs = align_words(ref, hyp)
        counts.words += len(ref)
        counts.sentences += 1
        counts.sentence_errors += ref != hyp
        for pair in pairs:
            counts.confusion[pair] = counts.confusion.get(pair, 0) + 1
            if pair[0] == INSERTED:
                counts.insertions += 1
            elif pair[1] == DELETED:
                counts.deletions += 1
            elif pair[0] != pair[1]:
                counts.substitutions += 1
    return counts


def word_error_rate(references: Sequence[str], hypotheses: Sequence[str]) -> float:
    """Corpus WER ``(S + D + I) / N`` of whitespace-tokenised transcripts."""
    return error_counts(references, hypotheses).wer
