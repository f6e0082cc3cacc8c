"""Conventional operators: zero, skip, pools, convolutions, and token mixers for images."""

from __future__ import annotations

import torch
from torch import nn

from hadanas.spaces._registry import register_op
from hadanas.spaces.ops._common import ConvBN, check_stride, reduce_prefix


class Zero(nn.Module):
    """Outputs zeros of the output shape (removes an edge)."""

    def __init__(self, stride: int) -> None:
        super().__init__()
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (N, C, H, W)
        return x[:, :, :: self.stride, :: self.stride].mul(0.0)


@register_op("zero", family="conventional", description="no connection (zeros)")
def zero(C: int, stride: int = 1) -> nn.Module:
    check_stride(stride)
    return Zero(stride)


@register_op("skip", family="conventional", description="identity (3x3 average pool when strided)")
def skip(C: int, stride: int = 1) -> nn.Module:
    check_stride(stride)
    return reduce_prefix(stride)


@register_op("max_pool_3x3", family="conventional", description="3x3 max pooling")
def max_pool_3x3(C: int, stride: int = 1) -> nn.Module:
    check_stride(stride)
    return nn.MaxPool2d(3, stride=stride, padding=1)


@register_op("avg_pool_3x3", family="conventional", description="3x3 average pooling")
def avg_pool_3x3(C: int, stride: int = 1) -> nn.Module:
    check_stride(stride)
    return nn.AvgPool2d(3, stride=stride, padding=1, count_include_pad=False)


@register_op("conv_1x1", family="conventional", description="ReLU-conv 1x1-BN")
def conv_1x1(C: int, stride: int = 1) -> nn.Module:
    check_stride(stride)
    return ConvBN(C, C, 1, stride)


@register_op("conv_3x3", family="conventional", description="ReLU-conv 3x3-BN")
def conv_3x3(C: int, stride: int = 1) -> nn.Module:
    check_stride(stride)
    return ConvBN(C, C, 3, stride)


def _sep(C: int, kernel: int, stride: int) -> nn.Module:
    # DARTS separable conv: the (depth-wise, point-wise) pair applied twice.
    return nn.Sequential(
        ConvBN(C, C, kernel, stride, groups=C),
        nn.Conv2d(C, C, 1, bias=False),
        nn.BatchNorm2d(C),
        ConvBN(C, C, kernel, 1, groups=C),
        nn.Conv2d(C, C, 1, bias=False),
        nn.BatchNorm2d(C),
    )


@register_op("sep_conv_3x3", family="conventional", description="separable conv 3x3 (twice)")
def sep_conv_3x3(C: int, stride: int = 1) -> nn.Module:
    check_stride(stride)
    return _sep(C, 3, stride)


@register_op("sep_conv_5x5", family="conventional", description="separable conv 5x5 (twice)")
def sep_conv_5x5(C: int, stride: int = 1) -> nn.Module:
    check_stride(stride)
    return _sep(C, 5, stride)


@register_op("dil_conv_3x3", family="conventional", description="dilated (2) separable conv 3x3")
def dil_conv_3x3(C: int, stride: int = 1) -> nn.Module:
    check_stride(stride)
    return nn.Sequential(
        ConvBN(C, C, 3, stride, dilation=2, groups=C),
        nn.Conv2d(C, C, 1, bias=False),
        nn.BatchNorm2d(C),
    )


class MHSA(nn.Module):
    """Multi-head self-attention over the H*W positions (quadratic in tokens)."""

    def __init__(self, C: int, stride: int, heads: int) -> None:
        super().__init__()
        if C % heads:
            heads = 1
        self.pre = reduce_prefix(stride)
        self.heads = heads
        self.qkv = nn.Conv2d(C, 3 * C, 1, bias=False)
        self.proj = nn.Conv2d(C, C, 1, bias=False)
        self.bn = nn.BatchNorm2d(C)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pre(x)
        n, c, h, w = x.shape
        q, k, v = self.qkv(x).reshape(n, 3, self.heads, c // self.heads, h * w).unbind(1)
        # (N, heads, T, d)
        q, k, v = (t.transpose(-1, -2) for t in (q, k, v))
        attn = torch.softmax(q @ k.transpose(-1, -2) * (c // self.heads) ** -0.5, dim=-1)
        y = (attn @ v).transpose(-1, -2).reshape(n, c, h, w)
        return self.bn(self.proj(y))


@register_op("mhsa", family="conventional", knobs={"heads": (2, 4)},
             description="multi-head self-attention over positions")
def mhsa(C: int, stride: int = 1, *, heads: int = 2) -> nn.Module:
    check_stride(stride)
    return MHSA(C, stride, heads)


@register_op("ffn", family="conventional", knobs={"expansion": (2, 4)},
             description="point-wise feed-forward: 1x1 expand, GELU, 1x1 project")
def ffn(C: int, stride: int = 1, *, expansion: int = 2) -> nn.Module:
    check_stride(stride)
    return nn.Sequential(
        reduce_prefix(stride),
        nn.Conv2d(C, C * expansion, 1, bias=False),
        nn.GELU(),
        nn.Conv2d(C * expansion, C, 1, bias=False),
        nn.BatchNorm2d(C),
    )
