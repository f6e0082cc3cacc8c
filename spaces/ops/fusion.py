"""Fusion of two inputs (node combines): sum, concat, star, FiLM, MLB, MUTAN.

Every binary op maps ``(a, b)``, both ``(N, C, H, W)``, to ``(N, C, H', W')``. A second
modality given as a vector enters as ``(N, C, 1, 1)`` and broadcasts.
"""

from __future__ import annotations

import torch
from torch import nn

from hadanas.spaces._registry import register_op
from hadanas.spaces.ops._common import check_stride, hmul, pw, reduce_prefix


class _Binary(nn.Module):
    def __init__(self, stride: int) -> None:
        super().__init__()
        self.pre = reduce_prefix(stride)

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return self.combine(self.pre(a), self.pre(b))

    def combine(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:  # pragma: no cover
        raise NotImplementedError


class Sum(_Binary):
    def combine(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return a + b


@register_op("sum", family="conventional", arity=2, description="a + b")
def sum_(C: int, stride: int = 1) -> nn.Module:
    check_stride(stride)
    return Sum(stride)


class Concat(_Binary):
    def __init__(self, C: int, stride: int) -> None:
        super().__init__(stride)
        self.proj = nn.Sequential(nn.ReLU(), pw(2 * C, C), nn.BatchNorm2d(C))

    def combine(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        b = b.expand_as(a) if b.shape[2:] != a.shape[2:] else b
        return self.proj(torch.cat([a, b], dim=1))


@register_op("concat", family="conventional", arity=2, description="1x1 conv of [a, b]")
def concat(C: int, stride: int = 1) -> nn.Module:
    check_stride(stride)
    return Concat(C, stride)


class StarFusion(_Binary):
    """``N(a) * N(b)``: the star product used as a node combine."""

    def __init__(self, C: int, stride: int) -> None:
        super().__init__(stride)
        self.na = nn.BatchNorm2d(C)
        self.nb = nn.BatchNorm2d(C)

    def combine(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return hmul(self.na(a), self.nb(b))


@register_op("star_fusion", family="fusion", arity=2, description="N(a) * N(b)")
def star_fusion(C: int, stride: int = 1) -> nn.Module:
    check_stride(stride)
    return StarFusion(C, stride)


class FiLM(_Binary):
    """Feature-wise linear modulation of ``a`` by ``b`` (Perez et al., 2018).

    ``(1 + dgamma(b)) * a + beta(b)``; the generator starts at zero, so at init the
    combine returns ``a``.
    """

    def __init__(self, C: int, stride: int) -> None:
        super().__init__(stride)
        self.gen = pw(C, 2 * C, bias=True)
        nn.init.zeros_(self.gen.weight)
        nn.init.zeros_(self.gen.bias)

    def combine(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        dgamma, beta = self.gen(b).chunk(2, dim=1)
        return hmul(1.0 + dgamma, a) + beta


@register_op("film", family="fusion", arity=2, near_identity=True,
             description="FiLM: (1 + dgamma(b)) * a + beta(b)")
def film(C: int, stride: int = 1) -> nn.Module:
    check_stride(stride)
    return FiLM(C, stride)


class MLB(_Binary):
    """Low-rank bilinear pooling ``P^T (tanh(U a) * tanh(V b))`` (Kim et al., 2017)."""

    def __init__(self, C: int, stride: int, rank: int) -> None:
        super().__init__(stride)
        R = C * rank
        self.u = pw(C, R, bias=True)
        self.v = pw(C, R, bias=True)
        self.p = nn.Sequential(pw(R, C), nn.BatchNorm2d(C))

    def combine(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return self.p(hmul(torch.tanh(self.u(a)), torch.tanh(self.v(b))))


@register_op("mlb", family="fusion", arity=2, knobs={"rank": (1, 2)},
             description="MLB: P (tanh(U a) * tanh(V b))")
def mlb(C: int, stride: int = 1, *, rank: int = 1) -> nn.Module:
    check_stride(stride)
    return MLB(C, stride, rank)


class MUTAN(_Binary):
    """Tucker fusion with a rank-R core (Ben-younes et al., 2017, eq. 9).

    ``z = sum_r (W_r tanh(U a)) * (V_r tanh(U' b))``, then a 1x1 projection.
    """

    def __init__(self, C: int, stride: int, rank: int) -> None:
        super().__init__(stride)
        self.rank = rank
        self.ta = pw(C, C, bias=True)
        self.tb = pw(C, C, bias=True)
        self.wa = pw(C, rank * C)
        self.wb = pw(C, rank * C)
        self.out = nn.Sequential(pw(C, C), nn.BatchNorm2d(C))

    def combine(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        za = self.wa(torch.tanh(self.ta(a)))  # (N, R*C, H, W)
        zb = self.wb(torch.tanh(self.tb(b)))
        z = hmul(za, zb)
        n, _, h, w = z.shape
        z = z.reshape(n, self.rank, -1, h, w).sum(1)  # (N, C, H, W)
        return self.out(z)


@register_op("mutan", family="fusion", arity=2, knobs={"rank": (2, 3, 5)},
             description="MUTAN: Tucker fusion with rank-R core")
def mutan(C: int, stride: int = 1, *, rank: int = 2) -> nn.Module:
    check_stride(stride)
    return MUTAN(C, stride, rank)
