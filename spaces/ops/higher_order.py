"""Higher-order interactions: polynomial (Pi-net CCP), star, and Mu-layer products."""

from __future__ import annotations

import torch
from torch import nn

from hadanas.spaces._registry import register_op
from hadanas.spaces.ops._common import check_stride, dw, hmul, pw


class PolyCCP(nn.Module):
    """Pi-net CCP polynomial of degree ``k`` (Chrysos et al., 2020, eq. 5), normalised.

    ``z = dw3x3(x)``; ``x1 = N(U1 z)``; ``xn = xn-1 + alpha * N(Un z) * xn-1``.
    ``alpha`` starts at 0.1 so the polynomial starts near the linear term; the
    output is batch-normalised so stacks keep unit scale.
    """

    def __init__(self, C: int, stride: int, degree: int) -> None:
        super().__init__()
        self.z = nn.Sequential(dw(C, 3, stride), nn.BatchNorm2d(C))
        self.U = nn.ModuleList(pw(C, C) for _ in range(degree))
        self.N = nn.ModuleList(nn.BatchNorm2d(C) for _ in range(degree))
        self.alpha = nn.Parameter(torch.full((degree - 1,), 0.1))
        self.out = nn.BatchNorm2d(C)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.z(x)  # (N, C, H', W')
        y = self.N[0](self.U[0](z))
        for n in range(1, len(self.U)):
            y = y + self.alpha[n - 1] * hmul(self.N[n](self.U[n](z)), y)
        return self.out(y)


@register_op("poly_ccp", family="higher_order", knobs={"degree": (2, 3, 4)}, near_identity=True,
             description="Pi-net CCP polynomial: xn = xn-1 + a N(Un z) * xn-1")
def poly_ccp(C: int, stride: int = 1, *, degree: int = 2) -> nn.Module:
    check_stride(stride)
    return PolyCCP(C, stride, degree)


class Star(nn.Module):
    """Star operation (StarNet, Ma et al., 2024): ``W3 (N(F1 z) * N(F2 z))`` with ``z = dw3x3(x)``."""

    def __init__(self, C: int, stride: int, expansion: int) -> None:
        super().__init__()
        E = C * expansion
        self.z = nn.Sequential(dw(C, 3, stride), nn.BatchNorm2d(C))
        self.f1 = nn.Sequential(pw(C, E), nn.BatchNorm2d(E))
        self.f2 = nn.Sequential(pw(C, E), nn.BatchNorm2d(E))
        self.out = nn.Sequential(pw(E, C), nn.BatchNorm2d(C))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.z(x)
        return self.out(hmul(self.f1(z), self.f2(z)))


@register_op("star", family="higher_order", knobs={"expansion": (1, 2)},
             description="star: W (N(F1 x) * N(F2 x))")
def star(C: int, stride: int = 1, *, expansion: int = 1) -> nn.Module:
    check_stride(stride)
    return Star(C, stride, expansion)


class MuLayer(nn.Module):
    """Multiplicative interaction a + alpha * a * b with a low-rank b (MONet, Cheng et al., 2024)."""

    def __init__(self, C: int, stride: int, rank: int) -> None:
        super().__init__()
        R = max(1, C // rank)
        self.a = nn.Sequential(dw(C, 3, stride), nn.BatchNorm2d(C), pw(C, C), nn.BatchNorm2d(C))
        self.b = nn.Sequential(pw(C, R), pw(R, C), nn.BatchNorm2d(C))
        self.alpha = nn.Parameter(torch.tensor(0.1))
        self.out = nn.BatchNorm2d(C)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.a(x)
        # b is computed from a so that strides match.
        return self.out(a + self.alpha * hmul(a, self.b(a)))


@register_op("mu_layer", family="higher_order", knobs={"rank": (4, 2)}, near_identity=True,
             description="Mu-layer: a + alpha a * lowrank(a)")
def mu_layer(C: int, stride: int = 1, *, rank: int = 4) -> nn.Module:
    check_stride(stride)
    return MuLayer(C, stride, rank)
