"""Modulation by masking: partial convolution and learned soft masks."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from hadanas.spaces._registry import register_op
from hadanas.spaces.ops._common import check_stride, dw, hmul, reduce_prefix


class PartialConv(nn.Module):
    """Mask-renormalised 3x3 convolution (Liu et al., 2018, eq. 1).

    ``y = W^T (x * M) * sum(1) / sum(M) + b`` where ``M`` marks valid positions. With no
    explicit mask, the valid region is the image itself, so zero padding at the border is
    renormalised instead of biasing the output ("partial convolution based padding").
    """

    def __init__(self, C: int, stride: int) -> None:
        super().__init__()
        self.stride = stride
        self.conv = nn.Conv2d(C, C, 3, stride, 1, bias=False)
        self.bn = nn.BatchNorm2d(C)
        self.register_buffer("ones", torch.ones(1, 1, 3, 3), persistent=False)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        n, c, h, w = x.shape
        valid = x.new_ones(1, 1, h, w) if mask is None else mask
        with torch.no_grad():
            count = F.conv2d(valid.to(self.ones.dtype), self.ones, stride=self.stride, padding=1)
            ratio = 9.0 / count.clamp(min=1.0) * (count > 0)  # (1|N, 1, H', W')
        y = self.conv(x if mask is None else hmul(x, mask.to(x.dtype)))
        return self.bn(F.relu(hmul(y, ratio.to(y.dtype))))


@register_op("partial_conv", family="masking", description="mask-renormalised (partial) conv 3x3")
def partial_conv(C: int, stride: int = 1) -> nn.Module:
    check_stride(stride)
    return PartialConv(C, stride)


class SoftMask(nn.Module):
    """Learned soft mask ``x * 2 sigmoid(m(x))`` with ``m`` a depth-wise conv that starts at zero.

    At init the mask is exactly 1, so the op returns its (reduced) input unchanged; ``m``
    still receives a gradient (``d out / d m = x * 2 sigmoid'(0)``), so the mask learns.
    """

    def __init__(self, C: int, stride: int, kernel: int) -> None:
        super().__init__()
        self.pre = reduce_prefix(stride)
        self.m = dw(C, kernel, bias=True)
        nn.init.zeros_(self.m.weight)
        nn.init.zeros_(self.m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pre(x)
        return hmul(x, 2.0 * torch.sigmoid(self.m(x)))


@register_op("soft_mask", family="masking", knobs={"kernel": (3, 5)}, near_identity=True,
             description="learned soft spatial mask x * 2 sigmoid(m(x))")
def soft_mask(C: int, stride: int = 1, *, kernel: int = 3) -> nn.Module:
    check_stride(stride)
    return SoftMask(C, stride, kernel)
