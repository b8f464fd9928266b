"""Datasets, per-modality transforms, tokenizers, batching and the bad-data policy.

Typical use::

    from chorus.data import build_dataset, Collate, ImageTransform, SampleTransform
    ds = build_dataset("caltech101", split="all", transform=SampleTransform({"image": ImageTransform(96)}))
    loader = DataLoader(ds, batch_size=32, collate_fn=Collate())

See ``docs/data.md`` for each dataset's layout, sample dict and download.
"""

from chorus.data.audio import LogMel, load_audio, mel_filterbank, resample
from chorus.data.avdigits import AVDigits, Degradation, load_avdigits_config
from chorus.data.base import ChorusDataset, split_indices
from chorus.data.caltech101 import Caltech101, download_caltech101
from chorus.data.coco_captions import COCOCaptions, download_coco_captions
from chorus.data.collate import Collate
from chorus.data.decode import decode_audio, decode_image
from chorus.data.digits import Digits
from chorus.data.fetch import extract, fetch
from chorus.data.fsdd import FSDD, download_fsdd
from chorus.data.image import CLIP_MEAN, CLIP_STD, ImageTransform
from chorus.data.mnist import MNIST, download_mnist
from chorus.data.registry import (
    DATASETS,
    DOWNLOADS,
    build_dataset,
    dataset_info,
    download,
    format_info,
    parse_spec,
)
from chorus.data.root import data_root
from chorus.data.sequences import AVSequences, DigitStrings, trim_silence
from chorus.data.sort_of_clevr import SortOfCLEVR
from chorus.data.text import BPETokenizer, ClipTokenizer, SubwordTokenizer, WordPieceTokenizer
from chorus.data.transforms import SampleTransform
from chorus.data.userdata import FolderDataset, ManifestDataset

__all__ = [
    "CLIP_MEAN",
    "CLIP_STD",
    "DATASETS",
    "DOWNLOADS",
    "FSDD",
    "MNIST",
    "BPETokenizer",
    "COCOCaptions",
    "FolderDataset",
    "ManifestDataset",
    "format_info",
    "parse_spec",
    "AVDigits",
    "AVSequences",
    "Degradation",
    "DigitStrings",
    "Caltech101",
    "ChorusDataset",
    "ClipTokenizer",
    "Collate",
    "Digits",
    "ImageTransform",
    "LogMel",
    "SampleTransform",
    "SortOfCLEVR",
    "SubwordTokenizer",
    "WordPieceTokenizer",
    "build_dataset",
    "data_root",
    "dataset_info",
    "decode_audio",
    "decode_image",
    "download",
    "download_caltech101",
    "download_coco_captions",
    "download_fsdd",
    "download_mnist",
    "extract",
    "fetch",
    "load_audio",
    "load_avdigits_config",
    "mel_filterbank",
    "resample",
    "split_indices",
    "trim_silence",
]
