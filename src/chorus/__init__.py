"""Chorus: a toolkit for multimodal machine learning.

One folder per technical challenge of multimodal learning (representation in
``encoders``, ``align``, ``translate``, ``fusion``, ``colearn``) around a CLIP
engine (``contrastive``), on top of shared ``data``, one ``train.Trainer`` and
``eval`` utilities.
"""

__version__ = "0.1.0"
