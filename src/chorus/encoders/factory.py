"""Build any encoder by name and size: ``build_encoder("vit", "small", image_size=28)``.

Configs name an encoder and a size; each encoder class declares its sizes
(``tiny``/``small``/``base`` hyper-parameter sets) and its modality as class
attributes, so adding an encoder is one decorated class and nothing else.
Overrides replace any size default, and a misspelt key fails loudly instead of
being silently ignored.
"""

from __future__ import annotations

import inspect
from typing import Any, ClassVar, Literal, Protocol

from torch import nn

from chorus.errors import ConfigError
from chorus.registry import Registry

Modality = Literal["image", "text", "audio"]


class EncoderClass(Protocol):
    """What a registered encoder class provides besides its constructor."""

    modality: ClassVar[Modality]
    sizes: ClassVar[dict[str, dict[str, Any]]]

    def __call__(self, **kwargs: Any) -> nn.Module: ...


ENCODERS: Registry[nn.Module] = Registry("encoder")


def _encoder_class(name: str) -> EncoderClass:
    return ENCODERS.get(name)  # type: ignore[return-value]


def encoder_modality(name: str) -> Modality:
    """``"image"``, ``"text"`` or ``"audio"``: what the named encoder reads."""
    return _encoder_class(name).modality


def encoder_sizes(name: str) -> list[str]:
    """The size names the named encoder offers."""
    return list(_encoder_class(name).sizes)


def build_encoder(name: str, size: str = "small", **overrides: Any) -> nn.Module:
    """The named encoder with the hyper-parameters of ``size``, any of them replaced by ``overrides``.

    Raises ConfigError for an unknown name, size, or override key (naming it
    and listing the valid ones).
    """
    cls = _encoder_class(name)
    if size not in cls.sizes:
        raise ConfigError(f"encoder {name!r} has no size {size!r}; available: {', '.join(cls.sizes)}")
    params = list(inspect.signature(cls).parameters)
    unknown = sorted(set(overrides) - set(params))
    if unknown:
        raise ConfigError(
            f"encoder {name!r} has no option(s) {', '.join(map(repr, unknown))}; valid: {', '.join(params)}"
        )
    return cls(**{**cls.sizes[size], **overrides})
