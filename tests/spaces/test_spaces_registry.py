"""The operator registry, and a user-registered op going through space, spec and model."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from hadanas.exceptions import SpecError
from hadanas.spaces import (
    FAMILIES,
    ArchSpec,
    OpRegistry,
    SearchSpace,
    build_model,
    create_op,
    default_registry,
    get_op,
    list_ops,
    register_op,
)

# --- the built-in registry -----------------------------------------------------------


def test_every_op_is_described_and_in_a_family(op_case):
    info = op_case.info
    assert info.family in FAMILIES
    assert info.arity in (1, 2)
    assert info.description.strip()
    assert all(len(v) >= 1 for v in info.knobs.values())


def test_list_ops_filters():
    assert list_ops("sep_conv_*") == ["sep_conv_3x3", "sep_conv_5x5"]
    assert set(list_ops(family="masking")) == {"partial_conv", "soft_mask"}
    binary = list_ops(arity=2)
    assert "film" in binary and "se" not in binary
    assert list_ops() == sorted(list_ops())


def test_unknown_op_lists_close_matches():
    with pytest.raises(SpecError, match="Did you mean 'swiglu'"):
        create_op("swigl", 8)


@pytest.mark.parametrize(
    "knobs,fragment",
    [({"reduction": 3}, "must be one of [4, 8]"), ({"ratio": 4}, "Did you mean 'reduction'"),
     ({"reduction": 4.0}, "got 4.0")],
)
def test_create_op_rejects_bad_knobs(knobs, fragment):
    with pytest.raises(SpecError) as info:
        create_op("se", 8, **knobs)
    assert fragment in str(info.value)


def test_register_rejects_bad_declarations():
    reg = OpRegistry()
    with pytest.raises(ValueError, match="Did you mean 'gating'"):
        reg.register("x", family="gatting")
    with pytest.raises(ValueError, match="arity"):
        reg.register("x", family="gating", arity=3)
    with pytest.raises(ValueError, match="at least one choice"):
        reg.register("x", family="gating", knobs={"k": ()})
    reg.register("x", family="gating")(lambda C, stride=1: nn.Identity())
    with pytest.raises(ValueError, match="already registered"):
        reg.register("x", family="gating")(lambda C, stride=1: nn.Identity())


# --- a user's op ---------------------------------------------------------------------


class ScaledSkip(nn.Module):
    """``scale * x`` (mean-pooled when strided); counts its calls."""

    calls = 0

    def __init__(self, stride: int, scale: float) -> None:
        super().__init__()
        self.pool = nn.AvgPool2d(3, stride, 1, count_include_pad=False) if stride > 1 else None
        self.scale = nn.Parameter(torch.tensor(scale))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        type(self).calls += 1
        x = self.pool(x) if self.pool is not None else x
        return self.scale * x


class Mean(nn.Module):
    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return 0.5 * (a + b)


def _register_user_ops(reg_scaled, reg_mean) -> None:
    @reg_scaled("user_scaled_skip", family="gating", knobs={"scale": (1.0, 2.0)},
                description="scale * x")
    def user_scaled_skip(C: int, stride: int = 1, *, scale: float = 1.0) -> nn.Module:
        return ScaledSkip(stride, scale)

    @reg_mean("user_mean", family="fusion", arity=2, description="(a + b) / 2")
    def user_mean(C: int, stride: int = 1) -> nn.Module:
        return Mean()


def _exercise(space: SearchSpace, registry: OpRegistry | None) -> None:
    """Sample, round-trip, build and run specs of ``space`` until the user op ran."""
    ScaledSkip.calls = 0
    used = 0
    for seed in range(10):
        spec = space.sample(seed)
        assert space.check(spec) is None
        assert ArchSpec.from_dict(spec.to_dict(), registry) == spec
        torch.manual_seed(0)
        model = build_model(spec, [(3, 7, 7)], 4, registry=registry)
        y = model(torch.randn(2, 3, 7, 7))
        assert y.shape == (2, 4) and torch.isfinite(y).all()
        used += spec.ops().count("user_scaled_skip")
    assert used > 0 and ScaledSkip.calls > 0


def test_user_op_in_a_fresh_registry():
    reg = OpRegistry()
    _register_user_ops(reg.register, reg.register)
    assert reg.list() == ["user_mean", "user_scaled_skip"]
    assert "user_scaled_skip" not in default_registry
    space = SearchSpace(name="user", edge_ops=("user_scaled_skip",), combines=("user_mean",),
                        widths=(8,), registry=reg)
    # 3 nodes x 2 edges: (i srcs * 2 scale knobs)^2 per node, one combine.
    assert space.size() == (1 * 2) ** 2 * (2 * 2) ** 2 * (3 * 2) ** 2
    _exercise(space, reg)
    # The default registry does not know the user's op.
    with pytest.raises(SpecError, match="unknown op 'user_"):
        ArchSpec.from_dict(space.sample(0).to_dict())


@pytest.fixture
def user_ops_in_default_registry():
    _register_user_ops(register_op, register_op)
    try:
        yield
    finally:
        default_registry.unregister("user_scaled_skip")
        default_registry.unregister("user_mean")
    assert "user_scaled_skip" not in default_registry and "user_mean" not in default_registry


def test_user_op_in_the_default_registry(user_ops_in_default_registry):
    assert get_op("user_scaled_skip").knobs == {"scale": (1.0, 2.0)}
    op = create_op("user_scaled_skip", 8, 2, scale=2.0)
    x = torch.randn(1, 8, 5, 5)
    assert op(x).shape == (1, 8, 3, 3)
    assert "user_mean" in list_ops(arity=2, family="fusion")
    space = SearchSpace(name="user", edge_ops=("skip", "user_scaled_skip"),
                        combines=("sum", "user_mean"), widths=(8,))
    assert space.families() == ["conventional", "gating", "fusion"]
    _exercise(space, None)
