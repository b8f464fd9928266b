"""``chorus bench fusion``: every fusion family on AV-Digits, clean and hard, with robustness curves.

What it measures: accuracy (mean ± std over seeds), parameter count and
training time of every method in :mod:`chorus.fusion` and of the two unimodal
baselines (image ``cnn``, audio ``audio_cnn``; :class:`chorus.classifier.Classifier`)
on the AV-Digits ``clean`` and ``hard`` levels (``configs/avdigits.yaml``), plus
robustness: accuracy vs image degradation, vs audio SNR, and with each modality
missing at test time. With ``folds=true`` the hard level is also run for every
one of FSDD's six leave-one-speaker-out choices (the held-out speaker moves audio
accuracy a lot). ``calibrate=true`` instead sweeps degradation strengths and
reports the unimodal accuracies, which is how the ``hard`` level was chosen.

How (budget design): per (level, seed) the two unimodal classifiers are
trained once with the one Trainer (precision auto); their encoders are then
frozen and every neural fusion head is trained on their cached intermediate
features — pooled vectors, or the token sequences (image feature-map cells,
audio frames) for the cross-modal transformer. This is *intermediate fusion on
frozen unimodal encoders*: it isolates the fusion rule (all methods see the same
features) and makes 12 methods × 2 levels × 3 seeds affordable on two CPU cores.
Each head is trained with its own ``fusion.loss`` (late fusions train their
experts separately by design). ``+moddrop`` variants are trained with
:class:`~chorus.fusion.ModalityDropout` for the missing-modality rows. The
classical methods are a multiple-kernel SVM (:class:`~chorus.fusion.MultipleKernelClassifier`,
alignment-weighted RBF kernels on the standardised pooled features) and the
graphical model (:class:`~chorus.fusion.HMMProductFusion`): per-class Gaussian
HMMs on the audio log-mel frames and a logistic model of the image features,
combined by the calibrated product rule.

Baseline every method must beat: the better unimodal model on the same level
and seed. Reference point: AV-MNIST (Vielzeuf et al., CentralNet, ECCV-W 2018;
Pérez-Rúa et al., MFAS, CVPR 2019); our data (FSDD speech, speaker held out)
differ, so the comparison is of the size of the fusion gain, not of absolute
numbers.
"""

from __future__ import annotations

import math
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch
from sklearn.preprocessing import StandardScaler
from torch import Tensor, nn
from torch.utils.data import Dataset

from chorus.bench.driver import Report
from chorus.classifier import Classifier
from chorus.data.audio import LogMel
from chorus.data.avdigits import AVDigits, Degradation, load_avdigits_config
from chorus.data.base import Sample
from chorus.data.collate import Collate
from chorus.encoders import build_encoder
from chorus.errors import ConfigError
from chorus.eval.mode import evaluating
from chorus.eval.report import MethodCard, fmt_mean_std, mean_std
from chorus.fusion import Fusion, HMMProductFusion, ModalityDropout, MultipleKernelClassifier, build_fusion
from chorus.train import TrainConfig, Trainer

MODALITIES = ("image", "audio")
NUM_CLASSES = 10
SPEAKERS = ("george", "jackson", "lucas", "nicolas", "theo", "yweweler")  # FSDD's six speakers
NEURAL = (
    "early",
    "late_average",
    "late_learned",
    "late_product",
    "hybrid",
    "tensor",
    "low_rank_tensor",
    "gated",
    "cross_transformer",
    "autoencoder",
)
CLASSICAL = ("mkl", "hmm_bayes")
UNIMODAL = ("image_only", "audio_only")
MODDROP_P = 0.5
N_MELS = 40
# Robustness sweeps around the hard level: image noise std (PCA removal fixed) and audio SNR (dB; None = clean).
IMAGE_NOISE_SWEEP = (0.0, 0.15, 0.3, 0.45, 0.6)
AUDIO_SNR_SWEEP = (None, 20.0, 10.0, 5.0, 0.0)
# calibrate=true: increasing severities per modality, image (PCA variance kept, noise std) and audio SNR (dB).
IMAGE_CALIBRATION = ((0.6, 0.2), (0.55, 0.3), (0.5, 0.4))
AUDIO_CALIBRATION = (20.0, 15.0, 10.0, 5.0)


@dataclass(frozen=True)
class Config:
    """Every setting of the benchmark (``key=value`` overrides on the command line)."""

    seeds: tuple[int, ...] = (0, 1, 2)
    data_root: str | None = None
    config: str | None = None  # AV-Digits YAML (None: configs/avdigits.yaml)
    levels: tuple[str, ...] = ("clean", "hard")  # AV-Digits levels (none: only the folds)
    methods: tuple[str, ...] = NEURAL + CLASSICAL  # fusion methods (the unimodal baselines always run)
    epochs: int = 15  # unimodal encoder training epochs
    head_epochs: int = 30  # fusion head epochs (cross_transformer: half)
    hmm_iter: int = 15  # Baum-Welch iterations per class HMM
    train_limit: int | None = None  # class-stratified subset of the training split
    test_limit: int | None = None  # class-stratified subset of the test split
    robustness: bool = True  # the degradation sweeps around the hard level
    folds: bool = False  # also run the hard level for all six held-out speakers
    calibrate: bool = False  # instead: sweep degradations, report unimodal accuracies
    device: str | None = None  # torch device (None: cuda if available)
    threads: int | None = None  # torch CPU threads (None: torch's own choice)

    def __post_init__(self) -> None:
        unknown = sorted(set(self.methods) - set(NEURAL + CLASSICAL))
        if unknown:
            raise ConfigError(f"unknown fusion methods {unknown}; available: {', '.join(NEURAL + CLASSICAL)}")


PRESETS = {
    "full": Config(),
    # One seed, class-stratified subsets (600 train / 200 test), short training, no sweeps.
    "quick": replace(
        Config(), seeds=(0,), epochs=12, head_epochs=8, hmm_iter=5, train_limit=600, test_limit=200, robustness=False
    ),
}


# ----------------------------------------------------------------------------- data


def load_split(
    cfg: Config, split: str, degradation: Degradation, test_speakers: Sequence[str], limit: int | None
) -> list[Sample]:
    """AV-Digits samples (image [1, 28, 28], log-mel audio [40, T], label), computed once and kept in memory.

    ``limit`` takes a class-stratified, seeded subset (the quick preset).
    """
    indices = None
    if limit is not None:
        labels = np.asarray(
            AVDigits(
                cfg.data_root, split=split, level=degradation, config=cfg.config, test_speakers=test_speakers
            ).labels
        )
        rng = np.random.default_rng(0)
        per_class = max(1, limit // NUM_CLASSES)
        indices = sorted(
            int(i) for c in range(NUM_CLASSES) for i in rng.permutation(np.flatnonzero(labels == c))[:per_class]
        )
    ds = AVDigits(
        cfg.data_root,
        split=split,
        level=degradation,
        config=cfg.config,
        test_speakers=test_speakers,
        features=LogMel(n_mels=N_MELS),
        cache=True,
        indices=indices,
    )
    samples = []
    for i in range(len(ds)):
        s = ds[i]
        assert s is not None  # on_error="raise": no item is skipped
        samples.append({"image": s["image"], "audio": s["audio"], "label": s["label"]})
    return samples


class FeatureSet(Dataset):
    """Rows of cached encoder outputs: ``{m: pooled [D]}`` or, with ``tokens``, ``{m: [T, D], m_mask: [T]}``."""

    def __init__(self, feats: Mapping[str, Mapping[str, Tensor]], label: Tensor, tokens: bool) -> None:
        self.tokens = tokens
        self.feats = feats
        self.label = label

    def __len__(self) -> int:
        return len(self.label)

    def __getitem__(self, i: int) -> dict[str, Tensor]:
        row: dict[str, Tensor] = {"label": self.label[i]}
        for m in MODALITIES:
            if self.tokens:
                row[m], row[f"{m}_mask"] = self.feats[m]["tokens"][i], self.feats[m]["mask"][i]
            else:
                row[m] = self.feats[m]["pooled"][i]
        return row


def collate_features(rows: list[dict[str, Tensor]]) -> dict[str, Tensor]:
    """Stack rows; token sequences are cut to the longest real sequence in the batch (less padding to attend over)."""
    batch = {k: torch.stack([r[k] for r in rows]) for k in rows[0]}
    for m in MODALITIES:
        if f"{m}_mask" in batch:
            length = int(batch[f"{m}_mask"].any(0).nonzero().max()) + 1
            batch[m], batch[f"{m}_mask"] = batch[m][:, :length], batch[f"{m}_mask"][:, :length]
    return batch


# ----------------------------------------------------------------------------- models


def train_config(cfg: Config, epochs: int, seed: int, **kw: Any) -> TrainConfig:
    return TrainConfig(
        epochs=epochs,
        batch_size=64,
        lr=3e-3,
        seed=seed,
        progress=False,
        tensorboard=False,
        log_every=10_000,
        device=cfg.device,
        **kw,
    )


def train_unimodal(cfg: Config, modality: str, train: list[Sample], seed: int) -> tuple[Classifier, float]:
    """The unimodal baseline (encoder + linear head), trained with precision auto; returns it and its seconds."""
    torch.manual_seed(seed)
    if modality == "image":
        encoder = build_encoder("cnn", "tiny", in_channels=1, image_size=28)
    else:
        encoder = build_encoder("audio_cnn", "tiny", n_mels=N_MELS)
    model = Classifier(encoder, NUM_CLASSES, modality, dropout=0.1)
    train_cfg = train_config(
        cfg, cfg.epochs, seed, precision="auto", weight_decay=0.05, channels_last=modality == "image"
    )
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as run_dir:
        Trainer(model, train, train_cfg, run_dir, collate_fn=Collate()).fit()
    return model, time.perf_counter() - start


TOKEN_GRID = 4  # image feature map pooled to 4×4 cells
TOKEN_STRIDE = 4  # audio frames averaged in windows of 4


def shorten(modality: str, tokens: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
    """Fewer, coarser tokens for the cross-modal transformer (attention cost ∝ T_image · T_audio).

    Image: the 7×7 feature-map cells average-pooled to a 4×4 grid. Audio: masked
    mean over windows of 4 frames (a window is real if any of its frames is).
    """
    if modality == "image":
        side = math.isqrt(tokens.shape[1])
        grid = tokens.transpose(1, 2).unflatten(2, (side, side))
        pooled = nn.functional.adaptive_avg_pool2d(grid, TOKEN_GRID).flatten(2).transpose(1, 2)
        return pooled, torch.ones(pooled.shape[:2], dtype=torch.bool, device=pooled.device)
    pad = -tokens.shape[1] % TOKEN_STRIDE
    tokens = nn.functional.pad(tokens, (0, 0, 0, pad)).unflatten(1, (-1, TOKEN_STRIDE))
    weight = nn.functional.pad(mask, (0, pad)).unflatten(1, (-1, TOKEN_STRIDE)).to(tokens.dtype).unsqueeze(-1)
    pooled = (tokens * weight).sum(2) / weight.sum(2).clamp_min(1.0)
    return pooled, weight.squeeze(-1).sum(2) > 0


def encode(model: Classifier, samples: list[Sample], device: torch.device) -> dict[str, Tensor]:
    """Frozen encoder outputs (float32, CPU): ``pooled`` [N, D], ``logits`` [N, 10] and shortened ``tokens``
    [N, T, D] with ``mask`` [N, T] (see :func:`shorten`)."""
    collate = Collate()
    pooled, tokens, masks, logits = [], [], [], []
    with evaluating(model), torch.autocast(device.type, dtype=torch.bfloat16):
        for i in range(0, len(samples), 256):
            batch = collate(samples[i : i + 256])
            assert batch is not None  # Collate gives None only when every sample was skipped
            x = batch[model.modality].to(device)
            mask = batch.get(f"{model.modality}_mask")
            out = model.encoder(x, mask=None if mask is None else mask.to(device))
            pooled.append(out.pooled.float().cpu())
            logits.append(model.head(out.pooled).float().cpu())
            short, short_mask = shorten(model.modality, out.tokens.float(), out.mask)
            tokens.append(short.cpu())
            masks.append(short_mask.cpu())
    longest = max(t.shape[1] for t in tokens)
    tokens = [nn.functional.pad(t, (0, 0, 0, longest - t.shape[1])) for t in tokens]
    masks = [nn.functional.pad(m, (0, longest - m.shape[1])) for m in masks]
    return {
        "pooled": torch.cat(pooled),
        "tokens": torch.cat(tokens),
        "mask": torch.cat(masks),
        "logits": torch.cat(logits),
    }


class FusionHead(nn.Module):
    """A fusion module trained on frozen features: ``forward(batch)`` → its own ``loss`` (+ accuracy).

    ``ModalityDropout`` (identity when ``p == 0`` or in eval mode) draws which
    modalities each training sample keeps.
    """

    def __init__(self, fusion: Fusion, p_drop: float) -> None:
        super().__init__()
        self.fusion = fusion
        self.drop = ModalityDropout(p_drop)

    def inputs(self, batch: Mapping[str, Tensor]) -> tuple[dict[str, Tensor], dict[str, dict[str, Tensor]]]:
        features = {m: batch[m] for m in MODALITIES}
        masks = {m: batch[f"{m}_mask"] for m in MODALITIES if f"{m}_mask" in batch}
        return features, ({"masks": masks} if masks else {})

    def forward(self, batch: Mapping[str, Tensor]) -> dict[str, Tensor]:
        features, extra = self.inputs(batch)
        present = self.drop(features)
        out = self.fusion.loss(features, batch["label"], present, **extra)
        return out

    def logits(self, batch: Mapping[str, Tensor], present: Mapping[str, Tensor]) -> Tensor:
        features, extra = self.inputs(batch)
        return self.fusion(features, present, **extra)


def train_fusion(
    cfg: Config, name: str, data: FeatureSet, dims: Mapping[str, int], seed: int, p_drop: float
) -> tuple[FusionHead, float]:
    torch.manual_seed(seed)
    hyper = {"d_model": 32, "heads": 4} if name == "cross_transformer" else {}
    head = FusionHead(build_fusion(name, dims, NUM_CLASSES, **hyper), p_drop)
    epochs = cfg.head_epochs // 2 if name == "cross_transformer" else cfg.head_epochs
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as run_dir:
        Trainer(head, data, train_config(cfg, max(1, epochs), seed), run_dir, collate_fn=collate_features).fit()
    return head, time.perf_counter() - start


def head_predictions(head: FusionHead, data: FeatureSet, missing: str | None, device: torch.device) -> Tensor:
    """Predicted classes [N]; ``missing`` names a modality marked absent for every test sample."""
    preds = []
    with evaluating(head):
        for i in range(0, len(data), 256):
            batch = collate_features([data[j] for j in range(i, min(i + 256, len(data)))])
            batch = {k: v.to(device) for k, v in batch.items()}
            n = len(batch["label"])
            present = {m: torch.full((n,), m != missing, dtype=torch.bool, device=device) for m in MODALITIES}
            preds.append(head.logits(batch, present).argmax(-1).cpu())
    return torch.cat(preds)


def frame_sequences(samples: list[Sample]) -> list[np.ndarray]:
    """Each clip's log-mel frames [T, n_mels]: the HMMs' observation sequences."""
    return [s["audio"].numpy().T for s in samples]


class Standardiser:
    """Per-feature standardisation of pooled features, fitted on the training split only."""

    def __init__(self, train: Mapping[str, Mapping[str, Tensor]]) -> None:
        self.scalers = {m: StandardScaler().fit(train[m]["pooled"].numpy()) for m in MODALITIES}

    def __call__(self, feats: Mapping[str, Mapping[str, Tensor]]) -> dict[str, dict[str, Tensor]]:
        out = {}
        for m in MODALITIES:
            scaled = self.scalers[m].transform(feats[m]["pooled"].numpy())
            out[m] = {**feats[m], "pooled": torch.from_numpy(scaled).float()}
        return out


# ----------------------------------------------------------------------------- one level × seed


def count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


class Trained:
    """Everything trained for one (level, seed): unimodal models, fusion heads, classical models, and their costs."""

    def __init__(self) -> None:
        self.unimodal: dict[str, Classifier] = {}
        self.heads: dict[str, FusionHead] = {}
        self.standardiser: Standardiser | None = None
        self.mkl: MultipleKernelClassifier | None = None
        self.graphical: HMMProductFusion | None = None
        self.params: dict[str, int] = {}
        self.seconds: dict[str, float] = {}


def fit_all(cfg: Config, train: list[Sample], seed: int, methods: Sequence[str], moddrop: bool) -> Trained:
    device = torch.device(cfg.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    t = Trained()
    y = torch.tensor([s["label"] for s in train])
    for m in MODALITIES:
        t.unimodal[m], t.seconds[f"{m}_only"] = train_unimodal(cfg, m, train, seed)
        t.params[f"{m}_only"] = count(t.unimodal[m])
        print(f"[fusion]   {m}_only: {t.seconds[f'{m}_only']:.1f} s", flush=True)
    encoders = sum(t.seconds[f"{m}_only"] for m in MODALITIES)
    enc_params = sum(count(t.unimodal[m].encoder) for m in MODALITIES)
    raw = {m: encode(t.unimodal[m], train, device) for m in MODALITIES}
    t.standardiser = Standardiser(raw)
    feats = t.standardiser(raw)
    dims = {m: feats[m]["pooled"].shape[1] for m in MODALITIES}
    pooled_set, token_set = FeatureSet(feats, y, tokens=False), FeatureSet(feats, y, tokens=True)
    for name in (n for n in methods if n in NEURAL):
        variants = [(name, 0.0)] + ([(f"{name}+moddrop", MODDROP_P)] if moddrop else [])
        for label, p in variants:
            data = token_set if name == "cross_transformer" else pooled_set
            t.heads[label], seconds = train_fusion(cfg, name, data, dims, seed, p)
            t.seconds[label] = encoders + seconds
            print(f"[fusion]   {label}: {seconds:.1f} s", flush=True)
            t.params[label] = enc_params + count(t.heads[label].fusion)
    x = np.concatenate([feats[m]["pooled"].numpy() for m in MODALITIES], 1)
    if "mkl" in methods:
        start = time.perf_counter()
        d = dims["image"]
        t.mkl = MultipleKernelClassifier(blocks=[slice(0, d), slice(d, x.shape[1])], probability=False).fit(
            x, y.numpy()
        )
        t.seconds["mkl"] = encoders + time.perf_counter() - start
        t.params["mkl"] = enc_params + int(t.mkl.svm_.X_fit_.size + t.mkl.svm_.svc_.dual_coef_.size)
    if "hmm_bayes" in methods:
        start = time.perf_counter()
        t.graphical = HMMProductFusion(n_iter=cfg.hmm_iter, random_state=seed).fit(
            frame_sequences(train), feats["image"]["pooled"].numpy(), y.numpy()
        )
        t.seconds["hmm_bayes"] = t.seconds["image_only"] + time.perf_counter() - start
        t.params["hmm_bayes"] = count(t.unimodal["image"].encoder) + t.graphical.num_parameters()
    return t


def evaluate(cfg: Config, t: Trained, test: list[Sample], missing: str | None = None) -> dict[str, float]:
    """Test accuracy of every trained method (``missing``: modality marked absent for all samples)."""
    device = torch.device(cfg.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    y = torch.tensor([s["label"] for s in test])
    raw = {m: encode(t.unimodal[m], test, device) for m in MODALITIES}
    acc: dict[str, float] = {}
    for m in MODALITIES:
        if missing != m:
            acc[f"{m}_only"] = float((raw[m]["logits"].argmax(1) == y).float().mean())
    assert t.standardiser is not None  # fit_all fits it
    feats = t.standardiser(raw)
    pooled_set, token_set = FeatureSet(feats, y, tokens=False), FeatureSet(feats, y, tokens=True)
    for label, head in t.heads.items():
        data = token_set if label.startswith("cross_transformer") else pooled_set
        acc[label] = float((head_predictions(head, data, missing, device) == y).float().mean())
    x = np.concatenate([feats[m]["pooled"].numpy() for m in MODALITIES], 1)
    if t.mkl is not None and missing is None:  # an SVM on a summed kernel has no notion of a missing block
        acc["mkl"] = float(np.mean(t.mkl.predict(x) == y.numpy()))
    if t.graphical is not None:
        block = {"image": "vector", "audio": "sequence", None: None}[missing]
        pred = t.graphical.predict(frame_sequences(test), feats["image"]["pooled"].numpy(), block)
        acc["hmm_bayes"] = float(np.mean(pred == y.numpy()))
    return acc


# ----------------------------------------------------------------------------- the benchmark


def run(cfg: Config, report: Report) -> None:
    """Every fusion method and the unimodal baselines per level and seed; robustness sweeps; folds."""
    if cfg.threads:
        torch.set_num_threads(cfg.threads)  # small models: one thread copes best with a shared CPU
    if cfg.calibrate:
        calibrate(cfg, report)
        return
    av = load_avdigits_config(cfg.config)
    unknown = sorted(set(cfg.levels) - set(av.levels))
    if unknown:
        raise ConfigError(f"levels {unknown} not in {sorted(av.levels)} (configs/avdigits.yaml)")
    results = report.results
    results.update({"test_speakers": list(av.test_speakers), "levels": {}})
    hard_models: list[Trained] = []
    for level in cfg.levels:
        deg = av.levels[level]
        train = load_split(cfg, "train", deg, av.test_speakers, cfg.train_limit)
        test = load_split(cfg, "test", deg, av.test_speakers, cfg.test_limit)
        per_seed: dict[str, Any] = {}
        for seed in cfg.seeds:
            t = fit_all(cfg, train, seed, cfg.methods, moddrop=level == "hard")
            per_seed[str(seed)] = {
                "acc": evaluate(cfg, t, test),
                "acc_image_missing": evaluate(cfg, t, test, missing="image"),
                "acc_audio_missing": evaluate(cfg, t, test, missing="audio"),
                "params": t.params,
                "train_s": t.seconds,
            }
            print(
                f"[fusion] {level} seed {seed}: "
                + ", ".join(f"{k} {v:.3f}" for k, v in per_seed[str(seed)]["acc"].items()),
                flush=True,
            )
            if level == "hard":
                hard_models.append(t)
        results["levels"][level] = {
            "degradation": vars(deg),
            "n_train": len(train),
            "n_test": len(test),
            "seeds": per_seed,
        }
    if hard_models and cfg.robustness:
        results["robustness"] = robustness(cfg, hard_models, av.levels["hard"], av.test_speakers)
    if cfg.folds and "hard" in av.levels:
        results["folds"] = folds(cfg, av.levels["hard"])
    write_outputs(report, results)


def robustness(cfg: Config, models: list[Trained], hard: Degradation, test_speakers: Sequence[str]) -> dict[str, Any]:
    """Accuracy of the hard-level models on test sets with one modality's degradation varied."""
    sweeps = {
        "image_noise_std": [replace(hard, image_noise_std=s) for s in IMAGE_NOISE_SWEEP],
        "audio_snr_db": [replace(hard, audio_snr_db=s) for s in AUDIO_SNR_SWEEP],
    }
    xs = {
        "image_noise_std": list(IMAGE_NOISE_SWEEP),
        "audio_snr_db": [s if s is not None else "clean" for s in AUDIO_SNR_SWEEP],
    }
    out: dict[str, Any] = {}
    for axis, degradations in sweeps.items():
        curves: dict[str, list[list[float]]] = {}
        for deg in degradations:
            test = load_split(cfg, "test", deg, test_speakers, cfg.test_limit)
            accs = [evaluate(cfg, t, test) for t in models]
            for method in accs[0]:
                curves.setdefault(method, []).append([a[method] for a in accs])
        out[axis] = {"x": xs[axis], "acc": curves}
    return out


def folds(cfg: Config, hard: Degradation) -> dict[str, dict[str, float]]:
    """Hard level, first seed, for each held-out speaker (leave-one-speaker-out), all methods but the slow ones."""
    methods = [m for m in cfg.methods if m not in ("cross_transformer", "mkl", "hmm_bayes")]
    out = {}
    for speaker in SPEAKERS:
        train = load_split(cfg, "train", hard, [speaker], cfg.train_limit)
        test = load_split(cfg, "test", hard, [speaker], cfg.test_limit)
        t = fit_all(cfg, train, cfg.seeds[0], methods, moddrop=False)
        out[speaker] = evaluate(cfg, t, test)
        print(f"[fusion] fold {speaker}: " + ", ".join(f"{k} {v:.3f}" for k, v in out[speaker].items()), flush=True)
    return out


def calibrate(cfg: Config, report: Report) -> None:
    """Unimodal test accuracy (first seed) at increasing degradation of each modality: how ``hard`` is chosen.

    Each modality is swept on its own (the other's degradation does not affect a unimodal model), so every
    grid point trains one model.
    """
    av = load_avdigits_config(cfg.config)
    device = torch.device(cfg.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    points = [("image", Degradation(image_pca_variance=pca, image_noise_std=std)) for pca, std in IMAGE_CALIBRATION]
    points += [("audio", Degradation(audio_snr_db=snr)) for snr in AUDIO_CALIBRATION]
    rows: list[dict[str, Any]] = []
    for modality, deg in points:
        train = load_split(cfg, "train", deg, av.test_speakers, cfg.train_limit)
        test = load_split(cfg, "test", deg, av.test_speakers, cfg.test_limit)
        y = torch.tensor([s["label"] for s in test])
        model, _ = train_unimodal(cfg, modality, train, cfg.seeds[0])
        acc = float((encode(model, test, device)["logits"].argmax(1) == y).float().mean())
        setting = (
            f"PCA variance kept {deg.image_pca_variance}, noise std {deg.image_noise_std}"
            if modality == "image"
            else f"white noise at {deg.audio_snr_db} dB SNR"
        )
        rows.append({"modality": modality, "setting": setting, "accuracy": acc})
        print(f"[calibrate] {rows[-1]}", flush=True)
    report.results.update({"test_speakers": list(av.test_speakers), "seed": cfg.seeds[0], "calibration": rows})
    report.table(
        f"Calibration: seed {cfg.seeds[0]}, {cfg.epochs} epochs",
        ["modality", "degradation", "unimodal test accuracy %"],
        [[r["modality"], r["setting"], 100 * r["accuracy"]] for r in rows],
    )


# ----------------------------------------------------------------------------- reporting


def summary_rows(results: Mapping[str, Any]) -> list[list[Any]]:
    rows = []
    for level, res in results["levels"].items():
        seeds = list(res["seeds"].values())
        methods = list(seeds[0]["acc"])
        base_time = mean_std([s["train_s"]["image_only"] for s in seeds])[0]
        for method in methods:
            accs = [s["acc"][method] for s in seeds]
            times = [s["train_s"][method] for s in seeds]
            miss_img = [s["acc_image_missing"].get(method, math.nan) for s in seeds]
            miss_aud = [s["acc_audio_missing"].get(method, math.nan) for s in seeds]
            rows.append(
                [
                    level,
                    method,
                    fmt_mean_std(accs),
                    fmt_mean_std(miss_aud) if not math.isnan(miss_aud[0]) else "—",
                    fmt_mean_std(miss_img) if not math.isnan(miss_img[0]) else "—",
                    f"{seeds[0]['params'][method]:,}",
                    f"{mean_std(times)[0] / base_time:.2f}",
                ]
            )
    return rows


def write_outputs(report: Report, results: dict[str, Any]) -> None:
    headers = [
        "level",
        "method",
        "accuracy %",
        "audio missing %",
        "image missing %",
        "params",
        "train time (× image-only)",
    ]
    report.table("Accuracy, missing modalities, size and cost", headers, summary_rows(results))
    if "folds" in results:
        methods = list(next(iter(results["folds"].values())))
        rows = [[sp] + [100 * results["folds"][sp][m] for m in methods] for sp in results["folds"]]
        rows.append(
            ["mean ± std"] + [fmt_mean_std([results["folds"][sp][m] for sp in results["folds"]]) for m in methods]
        )
        report.table("Hard level, leave-one-speaker-out (first seed), accuracy %", ["held-out speaker"] + methods, rows)
    if "robustness" in results:
        plot_robustness(report, results["robustness"])
    if results["levels"]:
        plot_missing(report, results)
        for card in method_cards(results):
            report.card(card)


def plot_robustness(report: Report, robustness: Mapping[str, Any]) -> None:
    for axis, data in robustness.items():
        with report.figure(f"robustness_{axis}", figsize=(7, 4.2)) as (_, ax):
            x = np.arange(len(data["x"]))
            for method, per_point in data["acc"].items():
                if method.endswith("+moddrop"):
                    continue
                style = "--" if method in UNIMODAL else "-"
                ax.plot(x, [100 * np.mean(p) for p in per_point], style, marker="o", ms=3, label=method)
            ax.set_xticks(x, [str(v) for v in data["x"]])
            ax.set_xlabel(axis.replace("_", " ") + " (other modality at the hard level)")
            ax.set_ylabel("test accuracy %")
            ax.axhline(100 / NUM_CLASSES, color="grey", lw=0.8, ls=":")
            ax.legend(fontsize=6, ncol=2)
            ax.set_title(f"AV-Digits hard-level models vs {axis.replace('_', ' ')}")


def plot_missing(report: Report, results: Mapping[str, Any]) -> None:
    level = "hard" if "hard" in results["levels"] else next(iter(results["levels"]))
    seeds = list(results["levels"][level]["seeds"].values())
    methods = [m for m in seeds[0]["acc"] if m not in UNIMODAL]
    with report.figure("missing_modality", figsize=(9, 4)) as (_, ax):
        x = np.arange(len(methods))
        for i, (key, name) in enumerate(
            [("acc", "both"), ("acc_audio_missing", "audio missing"), ("acc_image_missing", "image missing")]
        ):
            vals = [100 * np.mean([s[key].get(m, np.nan) for s in seeds]) for m in methods]
            ax.bar(x + (i - 1) * 0.27, vals, 0.27, label=name)
        for m, color in (("image_only", "C1"), ("audio_only", "C2")):
            ax.axhline(100 * np.mean([s["acc"][m] for s in seeds]), color=color, ls="--", lw=1, label=f"{m} model")
        ax.set_xticks(x, methods, rotation=60, ha="right", fontsize=7)
        ax.set_ylabel("test accuracy %")
        ax.set_title(f"{level} level: accuracy with a modality missing at test time")
        ax.legend(fontsize=7)


def method_cards(results: Mapping[str, Any]) -> list[MethodCard]:
    """One card per fusion method, against the better unimodal model on the hard level (else the first level)."""
    level = "hard" if "hard" in results["levels"] else next(iter(results["levels"]))
    seeds = list(results["levels"][level]["seeds"].values())
    best_uni = max(UNIMODAL, key=lambda m: np.mean([s["acc"][m] for s in seeds]))
    base = [s["acc"][best_uni] for s in seeds]
    cards = []
    for method in (m for m in seeds[0]["acc"] if m not in UNIMODAL):
        accs = [s["acc"][method] for s in seeds]
        gain = 100 * (np.mean(accs) - np.mean(base))
        why, reference = CARD_TEXT[method.split("+")[0]]
        cards.append(
            MethodCard(
                method=method,
                why=why,
                backbone="frozen `cnn`-tiny (image, 28×28) and `audio_cnn`-tiny (40-band log-mel) encoders of the "
                "unimodal baselines; the fusion is trained on their features",
                baseline=f"best unimodal model on the {level} level ({best_uni}: {fmt_mean_std(base)} %)",
                result=f"{fmt_mean_std(accs)} % on {level} ({gain:+.1f} points vs {best_uni})",
                reference=reference,
            )
        )
    return cards


AVMNIST = (
    "on AV-MNIST (MNIST + TIDIGITS, a different audio set) CentralNet (Vielzeuf et al. 2018) and MFAS "
    "(Pérez-Rúa et al., CVPR 2019) report ~65 % image-only, ~42 % audio-only and 72-88 % fused"
)
CARD_TEXT: dict[str, tuple[str, str]] = {
    "early": (
        "an MLP on the concatenated features sees both modalities jointly and can model any interaction",
        f"Snoek et al., ACM MM 2005; {AVMNIST}",
    ),
    "late_average": (
        "averaging per-modality posteriors: errors of independent experts partly cancel",
        f"Snoek et al., ACM MM 2005; {AVMNIST}",
    ),
    "late_learned": (
        "a learned weight per modality trusts the more reliable expert more",
        f"Snoek et al., ACM MM 2005; {AVMNIST}",
    ),
    "late_product": (
        "product of experts: each modality adds independent log-evidence, a confident expert outvotes an uncertain one",
        f"Hinton 2002; Kittler et al., TPAMI 1998; {AVMNIST}",
    ),
    "hybrid": (
        "an early branch for interactions mixed with unimodal experts that keep working alone",
        f"Baltrušaitis et al., TPAMI 2019; {AVMNIST}",
    ),
    "tensor": (
        "the outer product of [h; 1] vectors holds every uni- and bimodal multiplicative interaction",
        f"Zadeh et al., EMNLP 2017 (TFN); {AVMNIST}",
    ),
    "low_rank_tensor": (
        "the tensor product's weight factorised at low rank: same interactions, linear cost",
        f"Liu et al., ACL 2018 (LMF); {AVMNIST}",
    ),
    "gated": (
        "per-unit gates computed from both inputs decide which modality to trust per sample",
        f"Arevalo et al., ICLR-W 2017 (GMU); {AVMNIST}",
    ),
    "cross_transformer": (
        "each modality's tokens attend to the other's, aligning unsynchronised sequences",
        f"Tsai et al., ACL 2019 (MulT); {AVMNIST}",
    ),
    "autoencoder": (
        "a joint code trained to reconstruct both modalities, also from one alone",
        f"Ngiam et al., ICML 2011; {AVMNIST}",
    ),
    "mkl": (
        "one RBF kernel per modality, mixed by centered-kernel alignment, in an SVM",
        f"Gönen & Alpaydın, JMLR 2011; Cortes et al., JMLR 2012; {AVMNIST}",
    ),
    "hmm_bayes": (
        "class HMMs model the temporal order of speech frames; calibrated posteriors are multiplied "
        "under conditional independence",
        f"Rabiner 1989; Kittler et al., TPAMI 1998; {AVMNIST}",
    ),
}
