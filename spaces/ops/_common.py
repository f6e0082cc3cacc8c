"""Building blocks shared by the operator families."""

from __future__ import annotations

import torch
from torch import nn

_LOW = (torch.float16, torch.bfloat16)


def hmul(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Hadamard product computed in float32 when either input is half precision.

    Products of linear maps multiply variances; in fp16/bf16 a few stacked products
    overflow or lose all precision, so the product itself always runs in fp32.
    """
    if a.dtype in _LOW or b.dtype in _LOW:
        return a.float() * b.float()
    return a * b


def reduce_prefix(stride: int) -> nn.Module:
    """The shared, parameter-free reduce prefix used by ops that have no spatial conv.

    ``stride == 2`` maps ``H -> ceil(H / 2)`` with a 3x3 average pool, like every
    strided conv in the library.
    """
    if stride == 1:
        return nn.Identity()
    return nn.AvgPool2d(3, stride=stride, padding=1, count_include_pad=False)


def check_stride(stride: int) -> None:
    if stride not in (1, 2):
        raise ValueError(f"stride must be 1 or 2, but got {stride!r}.")


class ConvBN(nn.Sequential):
    """ReLU -> Conv -> BN (the NAS-Bench-201 / DARTS ordering)."""

    def __init__(
        self,
        C_in: int,
        C_out: int,
        kernel: int,
        stride: int = 1,
        dilation: int = 1,
        groups: int = 1,
        relu: bool = True,
    ) -> None:
        pad = dilation * (kernel - 1) // 2
        layers: list[nn.Module] = [nn.ReLU()] if relu else []
        layers += [
            nn.Conv2d(C_in, C_out, kernel, stride, pad, dilation=dilation, groups=groups, bias=False),
            nn.BatchNorm2d(C_out),
        ]
        super().__init__(*layers)


def pw(C_in: int, C_out: int, bias: bool = False) -> nn.Conv2d:
    """1x1 (point-wise) convolution."""
    return nn.Conv2d(C_in, C_out, 1, bias=bias)


def dw(C: int, kernel: int = 3, stride: int = 1, bias: bool = False) -> nn.Conv2d:
    """Depth-wise convolution with 'same' padding."""
    return nn.Conv2d(C, C, kernel, stride, kernel // 2, groups=C, bias=bias)
