"""Input checks shared by the encoders.

A wrong shape otherwise surfaces deep inside a conv or matmul as an opaque
size mismatch; checking at the encoder boundary names the tensor and the
expected shape instead (as :class:`chorus.errors.DataError`).
"""

from __future__ import annotations

import torch
from torch import Tensor

from chorus.errors import DataError


def check_image(x: Tensor, mask: Tensor | None, in_channels: int, image_size: int, who: str) -> None:
    """``x`` must be [B, in_channels, image_size, image_size]; images carry no mask."""
    if mask is not None:
        raise DataError(f"{who}: images take no mask, got one of shape {tuple(mask.shape)}")
    if x.dim() != 4 or x.shape[1] != in_channels or tuple(x.shape[2:]) != (image_size, image_size):
        raise DataError(f"{who}: expected image [B, {in_channels}, {image_size}, {image_size}], got {tuple(x.shape)}")


def check_sequence(x: Tensor, mask: Tensor | None, dims: int, who: str) -> None:
    """``x`` must have ``dims`` dims with the sequence on the last axis (ids [B, L], log-mel
    [B, n_mels, T]); ``mask``, if given, must be a bool [B, T] matching ``x``'s batch and length."""
    if x.dim() != dims:
        raise DataError(f"{who}: expected a {dims}-D input, got shape {tuple(x.shape)}")
    if mask is None:
        return
    if mask.dtype != torch.bool:
        raise DataError(f"{who}: mask must be bool (True = real), got {mask.dtype}")
    if tuple(mask.shape) != (x.shape[0], x.shape[-1]):
        raise DataError(
            f"{who}: mask shape {tuple(mask.shape)} does not match input {tuple(x.shape)} "
            f"(expected [{x.shape[0]}, {x.shape[-1]}])"
        )


def check_token_ids(x: Tensor, mask: Tensor | None, vocab_size: int, max_length: int, who: str) -> None:
    """``x`` must be integer ids [B, L] in ``[0, vocab_size)`` with ``L <= max_length``.

    Checked up front because an out-of-range id on a GPU is a device-side
    assert that kills the whole CUDA context rather than a readable error.
    """
    check_sequence(x, mask, 2, who)
    if x.is_floating_point() or x.dtype == torch.bool:
        raise DataError(f"{who}: token ids must be an integer tensor, got {x.dtype}")
    if x.shape[1] > max_length:
        raise DataError(f"{who}: {x.shape[1]} tokens exceed the maximum length {max_length}")
    if x.numel() and not 0 <= int(x.min()) <= int(x.max()) < vocab_size:
        raise DataError(f"{who}: token ids must lie in [0, {vocab_size}), got [{int(x.min())}, {int(x.max())}]")
