"""Translation between speech, text and handwritten digits through one shared embedding space.

Retrieval (:mod:`~chorus.translate.retrieval`) returns nearest neighbours of
another modality; generation conditions a model on the source's embedding:
:class:`~chorus.translate.cvae.ConditionalVAE` and the projection cGAN
(:mod:`~chorus.translate.cgan`) for text/speech → image, and
:class:`~chorus.translate.mel_decoder.MelDecoder` + Griffin-Lim
(:mod:`~chorus.translate.griffinlim`) for image → speech. The space is built
by :mod:`~chorus.translate.space`; judges and diversity live in
:mod:`~chorus.translate.judges`. See ``docs/translate.md``.
"""

from chorus.translate.cgan import Generator, ProjectionDiscriminator, train_cgan
from chorus.translate.conditions import ConditionedTargets, nearest_image_prior
from chorus.translate.cvae import ConditionalVAE
from chorus.translate.digits import DigitData, load_digit_data
from chorus.translate.griffinlim import griffin_lim, log_mel_to_audio, mel_to_linear, spectral_convergence
from chorus.translate.judges import diversity, judge_predictions, train_judge
from chorus.translate.mel_decoder import MelDecoder, SpeechTargets, time_normalise
from chorus.translate.retrieval import chance_recall, class_retrieval
from chorus.translate.space import SharedSpace, SpaceConfig, bind_audio, train_space

__all__ = [
    "ConditionalVAE",
    "ConditionedTargets",
    "DigitData",
    "Generator",
    "MelDecoder",
    "ProjectionDiscriminator",
    "SharedSpace",
    "SpeechTargets",
    "bind_audio",
    "chance_recall",
    "class_retrieval",
    "diversity",
    "griffin_lim",
    "judge_predictions",
    "load_digit_data",
    "log_mel_to_audio",
    "mel_to_linear",
    "nearest_image_prior",
    "spectral_convergence",
    "time_normalise",
    "train_cgan",
    "train_judge",
    "train_space",
    "SpaceConfig",
]
