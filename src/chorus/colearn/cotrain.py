"""Co-training with few labels: two views of each example label the unlabelled data for each other.

What: the data are paired examples with two modalities (an MNIST image and a
recording of the same digit), a few of them labelled. Each round,
:class:`CoTrainer` trains one classifier per modality from scratch on the
labelled pairs plus the pseudo-labels the *other* modality gave it; then each
classifier predicts the unlabelled pairs and hands its most confident
predictions, ``grow × (round + 1)`` per class, to the other modality as its
next pseudo-labels. Round 0 is training on the labels alone — the baseline.

Why it works (Blum & Mitchell, *Combining Labeled and Unlabeled Data with
Co-Training*, COLT 1998): when each view suffices to classify and the views
are conditionally independent given the class, the examples one view is
confident about are, for the other view, correctly labelled examples that
are random with respect to its own features — fresh training data rather
than its own mistakes echoed back (the failure mode of self-training). Here
the image view is much stronger with ten labels per class, so most of the
gain goes to audio; the audio view still adds examples the image view finds
hard. Selecting per class keeps the pseudo-labelled set class-balanced, as
the original algorithm adds p positives and n negatives per round.

Re-selecting from the whole pool each round (rather than freezing earlier
picks) lets a better classifier withdraw its earlier mistakes; training from
scratch each round keeps the cost per round fixed and the rounds comparable.
Baseline: the round-0 classifiers (labels only); the gain is the lift of the
final round over round 0 on held-out speakers / images.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Dataset, Subset

from chorus.classifier import Classifier
from chorus.colearn.data import Relabelled
from chorus.colearn.predict import classifier_logits
from chorus.data.base import ChorusDataset
from chorus.data.collate import Collate
from chorus.errors import ConfigError
from chorus.train import TrainConfig, Trainer, seed_everything

__all__ = ["CoTrainer", "confident_per_class"]


def confident_per_class(probs: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(positions, labels): for each predicted class, the ``k`` rows of ``probs`` [N, C] most confident in it."""
    confidence, predicted = probs.max(dim=-1)
    positions = []
    for c in range(probs.shape[1]):
        members = torch.nonzero(predicted == c).flatten()
        top = members[confidence[members].argsort(descending=True)[:k]]
        positions.append(top)
    chosen = torch.cat(positions)
    return chosen, predicted[chosen]


class CoTrainer:
    """Co-training of two :class:`~chorus.classifier.Classifier` s, one per modality.

    ``builders[m]()`` returns a fresh classifier reading modality ``m`` (two
    modalities exactly); ``train`` says how each classifier is fit each round
    (``max_steps`` keeps the cost per round fixed as the pseudo-labelled set grows).
    """

    def __init__(
        self,
        builders: Mapping[str, Callable[[], Classifier]],
        train: TrainConfig,
        run_dir: str | os.PathLike,
        rounds: int = 3,
        grow: int = 40,
    ) -> None:
        if len(builders) != 2:
            raise ConfigError(f"CoTrainer needs exactly two modalities, got {list(builders)}")
        if rounds < 0 or grow <= 0:
            raise ConfigError(f"CoTrainer needs rounds >= 0 and grow > 0, got {rounds}, {grow}")
        self.builders, self.train, self.run_dir = dict(builders), train, Path(run_dir)
        self.rounds, self.grow = rounds, grow
        self.models: dict[str, Classifier] = {}

    def _fit(self, modality: str, dataset: Dataset, round_: int) -> Classifier:
        seed_everything(self.train.seed)
        model = self.builders[modality]()
        if model.modality != modality:
            raise ConfigError(f"CoTrainer: builders[{modality!r}] made a classifier reading {model.modality!r}")
        Trainer(model, dataset, self.train, self.run_dir / f"round{round_}_{modality}", collate_fn=Collate()).fit()
        return model

    def fit(
        self,
        data: ChorusDataset,
        labelled: Sequence[int],
        unlabelled: Sequence[int],
        evaluate: Callable[[Mapping[str, Classifier]], Mapping[str, float]] | None = None,
    ) -> list[dict[str, Any]]:
        """Run round 0 (labels only) and ``rounds`` co-training rounds; return one record per round.

        ``data`` yields samples with both modalities and ``"label"``; labels are
        read only at ``labelled`` positions for training (and at the pseudo-
        labelled positions to report ``pseudo_acc_<m>``, the precision of the
        pseudo-labels modality ``m`` was trained on — a diagnostic, never a
        training signal). ``evaluate(models)`` adds held-out metrics per round.
        """
        labels = [int(y) for y in data.labels]
        labelled, unlabelled = list(labelled), list(unlabelled)
        a, b = self.builders
        pseudo: dict[str, tuple[list[int], list[int]]] = {a: ([], []), b: ([], [])}
        history: list[dict[str, Any]] = []
        for round_ in range(self.rounds + 1):
            self.models = {}
            record: dict[str, Any] = {"round": round_}
            for m in (a, b):
                idx, pl = pseudo[m]
                train = Relabelled(data, labelled + idx, [labels[i] for i in labelled] + pl)
                self.models[m] = self._fit(m, train, round_)
                record[f"n_train_{m}"] = len(train)
                if idx:
                    record[f"pseudo_acc_{m}"] = sum(labels[i] == y for i, y in zip(idx, pl)) / len(idx)
            if evaluate is not None:
                record |= dict(evaluate(self.models))
            history.append(record)
            if round_ == self.rounds or not unlabelled:
                break
            pool = Subset(data, unlabelled)
            for giver, receiver in ((a, b), (b, a)):
                probs = classifier_logits(self.models[giver], pool)[0].softmax(-1)
                positions, guesses = confident_per_class(probs, self.grow * (round_ + 1))
                pseudo[receiver] = ([unlabelled[p] for p in positions.tolist()], guesses.tolist())
        return history
