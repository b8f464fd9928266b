"""Apply one transform per sample key, e.g. ``{"image": ImageTransform(224), "audio": LogMel()}``.

A sample is a dict mixing modalities; keeping per-key transforms in one mapping
lets a dataset take a single ``transform`` callable while each modality keeps
its own preprocessing. Keys absent from a sample are ignored, so the same
``SampleTransform`` serves datasets with different modality sets.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

Sample = dict[str, Any]


class SampleTransform:
    """``sample → sample`` applying ``transforms[key]`` to each key present."""

    def __init__(self, transforms: Mapping[str, Callable[[Any], Any]]) -> None:
        self.transforms = dict(transforms)

    def __call__(self, sample: Sample) -> Sample:
        out = dict(sample)
        for key, fn in self.transforms.items():
            if key in out:
                out[key] = fn(out[key])
        return out

    def __repr__(self) -> str:
        return f"SampleTransform({self.transforms!r})"
