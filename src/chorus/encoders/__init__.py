"""Encoders: one per modality family, each mapping a batch tensor to :class:`Encoded`.

Importing this package registers every encoder in :data:`ENCODERS`; build one
with :func:`build_encoder` (name + size + overrides). See ``docs/encoders.md``.
"""

from chorus.encoders.audio_cnn import AudioCNNEncoder
from chorus.encoders.audio_transformer import AudioTransformer
from chorus.encoders.augmented import AugmentedEncoder, augmented_image_encoder
from chorus.encoders.bag_of_words import BagOfWords
from chorus.encoders.base import Encoded
from chorus.encoders.cnn import CNNEncoder
from chorus.encoders.descriptors import ScatteringDescriptorEncoder
from chorus.encoders.factory import ENCODERS, build_encoder, encoder_modality, encoder_sizes
from chorus.encoders.minilm import MiniLMEncoder
from chorus.encoders.resnet import ResNetEncoder
from chorus.encoders.scattering import ScatteringEncoder
from chorus.encoders.text_transformer import TextTransformer
from chorus.encoders.vit import VisionTransformer

__all__ = [
    "ENCODERS",
    "AudioCNNEncoder",
    "AudioTransformer",
    "AugmentedEncoder",
    "BagOfWords",
    "CNNEncoder",
    "Encoded",
    "MiniLMEncoder",
    "ResNetEncoder",
    "ScatteringDescriptorEncoder",
    "ScatteringEncoder",
    "TextTransformer",
    "VisionTransformer",
    "augmented_image_encoder",
    "build_encoder",
    "encoder_modality",
    "encoder_sizes",
]
