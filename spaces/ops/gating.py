"""Modulation by gating: squeeze-excitation, GLU / SwiGLU, spatial gating (gMLP), gated conv."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from hadanas.spaces._registry import register_op
from hadanas.spaces.ops._common import check_stride, dw, hmul, pw, reduce_prefix


class SqueezeExcite(nn.Module):
    """``x * 2 sigmoid(MLP(GAP x))`` (Hu et al., 2018); the gate starts at 1 (identity)."""

    def __init__(self, C: int, stride: int, reduction: int) -> None:
        super().__init__()
        hidden = max(2, C // reduction)
        self.pre = reduce_prefix(stride)
        self.fc1 = nn.Conv2d(C, hidden, 1)
        self.fc2 = nn.Conv2d(hidden, C, 1)
        nn.init.normal_(self.fc2.weight, std=1e-2)
        nn.init.zeros_(self.fc2.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pre(x)
        g = self.fc2(F.relu(self.fc1(x.mean((2, 3), keepdim=True))))  # (N, C, 1, 1)
        return hmul(x, 2.0 * torch.sigmoid(g))


@register_op("se", family="gating", knobs={"reduction": (4, 8)}, near_identity=True,
             description="squeeze-excitation channel gate")
def se(C: int, stride: int = 1, *, reduction: int = 4) -> nn.Module:
    check_stride(stride)
    return SqueezeExcite(C, stride, reduction)


class GLU(nn.Module):
    """Gated linear unit on channels: ``W3 (N(W1 x) * act(W2 x))`` (Dauphin 2017; Shazeer 2020)."""

    def __init__(self, C: int, stride: int, expansion: int, act: str) -> None:
        super().__init__()
        E = C * expansion
        self.pre = reduce_prefix(stride)
        self.w1 = nn.Sequential(pw(C, E), nn.BatchNorm2d(E))
        self.w2 = pw(C, E, bias=True)
        self.act = torch.sigmoid if act == "sigmoid" else F.silu
        self.out = nn.Sequential(pw(E, C), nn.BatchNorm2d(C))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pre(x)
        return self.out(hmul(self.w1(x), self.act(self.w2(x))))


@register_op("glu", family="gating", knobs={"expansion": (1, 2)},
             description="GLU: (W1 x) * sigmoid(W2 x)")
def glu(C: int, stride: int = 1, *, expansion: int = 1) -> nn.Module:
    check_stride(stride)
    return GLU(C, stride, expansion, "sigmoid")


@register_op("swiglu", family="gating", knobs={"expansion": (1, 2)},
             description="SwiGLU: (W1 x) * SiLU(W2 x)")
def swiglu(C: int, stride: int = 1, *, expansion: int = 1) -> nn.Module:
    check_stride(stride)
    return GLU(C, stride, expansion, "silu")


class SpatialGating(nn.Module):
    """gMLP spatial gating unit with a depth-wise conv (works at any resolution).

    ``u, v = split(W1 x)``; ``y = W2 (u * (1 + dw(N(v))))``; the dw conv starts at zero
    so the gate starts at one (Liu et al., 2021, sec. 2.1).
    """

    def __init__(self, C: int, stride: int, kernel: int) -> None:
        super().__init__()
        self.pre = reduce_prefix(stride)
        self.w1 = nn.Sequential(pw(C, 2 * C), nn.BatchNorm2d(2 * C))
        self.norm = nn.BatchNorm2d(C)
        self.spatial = dw(C, kernel, bias=True)
        nn.init.zeros_(self.spatial.weight)
        nn.init.zeros_(self.spatial.bias)
        self.out = nn.Sequential(pw(C, C), nn.BatchNorm2d(C))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        u, v = F.gelu(self.w1(self.pre(x))).chunk(2, dim=1)
        return self.out(hmul(u, 1.0 + self.spatial(self.norm(v))))


@register_op("spatial_gating", family="gating", knobs={"kernel": (3, 5)}, near_identity=True,
             description="gMLP spatial gating unit with depth-wise conv")
def spatial_gating(C: int, stride: int = 1, *, kernel: int = 3) -> nn.Module:
    check_stride(stride)
    return SpatialGating(C, stride, kernel)


class GatedConv(nn.Module):
    """Gated convolution ``N(tanh(Wf * x) * sigmoid(Wg * x))`` (van den Oord et al., 2016)."""

    def __init__(self, C: int, stride: int) -> None:
        super().__init__()
        self.f = nn.Sequential(nn.Conv2d(C, C, 3, stride, 1, bias=False), nn.BatchNorm2d(C))
        self.g = nn.Conv2d(C, C, 3, stride, 1)
        nn.init.constant_(self.g.bias, 1.0)
        self.out = nn.BatchNorm2d(C)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(hmul(torch.tanh(self.f(x)), torch.sigmoid(self.g(x))))


@register_op("gated_conv", family="gating", description="gated conv: tanh(Wf*x) * sigmoid(Wg*x)")
def gated_conv(C: int, stride: int = 1) -> nn.Module:
    check_stride(stride)
    return GatedConv(C, stride)
