"""Caption metrics: BLEU-4 (Papineni et al. 2002) and CIDEr-D (Vedantam et al. 2015) from ``pycocoevalcap``.

Why the reference implementation: published COCO captioning figures (ClipCap,
Show-and-Tell, …) come from the COCO caption evaluation code, whose BLEU uses
the *closest* reference length for the brevity penalty and whose CIDEr is the
CIDEr-D variant (idf from the test references, clipped counts, a Gaussian
length penalty with σ = 6, ×10). Re-implementing either invites silent drift,
so the scorers are ``pycocoevalcap``'s pure-Python ones (extra ``caption``).

Tokenisation: the COCO code runs the Stanford PTB tokenizer, which needs Java.
:func:`tokenize` is the documented stand-in: lower-case, every character that
is not a letter, digit, apostrophe or space becomes a space, then split on
whitespace (so "A man, riding." → "a man riding"). Like the COCO pipeline
(PTB tokenizer, then its punctuation filter) it drops sentence punctuation; it
differs on hyphenated words ("t-shirt" → "t shirt", PTB keeps one token) and
contractions ("don't" stays one token, PTB splits "do n't"), both rare in COCO
captions.
"""

from __future__ import annotations

import contextlib
import io
import re
from collections.abc import Mapping, Sequence
from typing import Any

from chorus.errors import ConfigError, DataError

_NOT_WORD = re.compile(r"[^a-z0-9' ]+")


def tokenize(text: str) -> str:
    """Lower-case, punctuation → space, whitespace-normalised: the tokens joined by single spaces."""
    return " ".join(_NOT_WORD.sub(" ", text.lower()).split())


def _scorers() -> tuple[Any, Any]:
    try:
        from pycocoevalcap.bleu.bleu import Bleu
        from pycocoevalcap.cider.cider import Cider
    except ImportError:
        raise ConfigError("caption metrics need pycocoevalcap: pip install 'chorus[caption]'") from None
    return Bleu, Cider


def require_caption_metrics() -> None:
    """Raise the one-line missing-extra error now, before any training starts."""
    _scorers()


def _prepare(
    hypotheses: Mapping[Any, str], references: Mapping[Any, Sequence[str]]
) -> tuple[dict[Any, list[str]], dict[Any, list[str]]]:
    if set(hypotheses) != set(references):
        raise DataError(
            f"caption metrics: hypotheses cover {len(hypotheses)} items, references {len(references)}; "
            "they must name the same items"
        )
    if not hypotheses:
        raise DataError("caption metrics: no captions to score")
    res = {k: [tokenize(h)] for k, h in hypotheses.items()}
    gts = {k: [tokenize(r) for r in refs] for k, refs in references.items()}
    empty = [k for k, refs in gts.items() if not refs or not all(refs)]
    if empty:
        raise DataError(f"caption metrics: item {empty[0]!r} has no (or an empty) reference caption")
    return res, gts


def caption_scores(hypotheses: Mapping[Any, str], references: Mapping[Any, Sequence[str]]) -> dict[str, float]:
    """Corpus ``BLEU-1`` … ``BLEU-4`` and ``CIDEr`` (CIDEr-D) of one caption per item against its references.

    ``hypotheses``: item → generated caption; ``references``: item → reference
    captions (COCO: five). Both are tokenised with :func:`tokenize`. CIDEr's idf
    comes from the references given, so it is a property of the whole test set
    (score the 50 test images together, not one by one).
    """
    Bleu, Cider = _scorers()
    res, gts = _prepare(hypotheses, references)
    with contextlib.redirect_stdout(io.StringIO()):  # the BLEU scorer prints its n-gram counts
        bleu, _ = Bleu(4).compute_score(gts, res, verbose=0)
    cider, _ = Cider().compute_score(gts, res)
    return {**{f"BLEU-{n + 1}": float(b) for n, b in enumerate(bleu)}, "CIDEr": float(cider)}


def consensus_index(candidates: Sequence[str]) -> int:
    """Index of the candidate caption with the highest CIDEr-D against all the *other* candidates.

    The consensus re-ranking of Devlin et al. 2015 ("Exploring Nearest
    Neighbor Approaches for Image Captioning"): among the captions of an
    image's nearest neighbours, the one most like the rest says what they have
    in common, which is what a neighbour-based guess can say reliably.
    """
    if len(candidates) < 2:
        if not candidates:
            raise DataError("consensus of no captions")
        return 0
    _, Cider = _scorers()
    res = {i: [tokenize(c)] for i, c in enumerate(candidates)}
    gts = {i: [tokenize(c) for j, c in enumerate(candidates) if j != i] for i in range(len(candidates))}
    _, per_item = Cider().compute_score(gts, res)
    return int(max(range(len(candidates)), key=lambda i: per_item[i]))
