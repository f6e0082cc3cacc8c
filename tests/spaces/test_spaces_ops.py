"""Every registered operator: shapes, gradients, numerics of deep stacks, near-identity init.

Parametrised over ``default_registry`` (see ``conftest.py``): each op with each knob
combination.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from hadanas.spaces import create_op, default_registry
from hadanas.spaces.ops._common import hmul, reduce_prefix

C = 8


def _randn(*shape: int, seed: int) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


# --- 1. forward + backward, shapes --------------------------------------------------


@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("hw", [(7, 7), (5, 9)], ids=["7x7", "5x9"])
def test_forward_backward_shape(op_case, stride, hw):
    """Batch 1, odd sizes, train mode: output (1, C, ceil(H/s), ceil(W/s)); every
    parameter and every input receives a finite gradient."""
    H, W = hw
    torch.manual_seed(0)
    op = op_case.create(C, stride).train()
    xs = [_randn(1, C, H, W, seed=i).requires_grad_() for i in range(op_case.arity)]
    y = op(*xs)
    assert y.shape == (1, C, math.ceil(H / stride), math.ceil(W / stride))
    assert torch.isfinite(y).all()
    y.square().mean().backward()
    for x in xs:
        assert x.grad is not None and torch.isfinite(x.grad).all()
    for name, p in op.named_parameters():
        assert p.grad is not None, f"parameter '{name}' gets no gradient"
        assert torch.isfinite(p.grad).all(), f"parameter '{name}' has a non-finite gradient"


@pytest.mark.parametrize("stride", [1, 2])
def test_binary_broadcast_second_input(binary_case, stride):
    """A second modality enters as (N, C, 1, 1) and broadcasts over the first's positions.

    Train mode at batch 2 (a BatchNorm over a (1, C, 1, 1) tensor has one value per channel,
    which train mode rejects by design) and eval mode at batch 1.
    """
    H, W = 7, 5
    expect = (math.ceil(H / stride), math.ceil(W / stride))
    for batch, train in ((2, True), (1, False)):
        torch.manual_seed(0)
        op = binary_case.create(C, stride).train(train)
        a = _randn(batch, C, H, W, seed=1).requires_grad_()
        q = _randn(batch, C, 1, 1, seed=2).requires_grad_()
        y = op(a, q)
        assert y.shape == (batch, C, *expect)
        assert torch.isfinite(y).all()
        y.square().mean().backward()
        assert q.grad is not None and q.grad.shape == q.shape and torch.isfinite(q.grad).all()


# --- 2. deep stacks: scale and finiteness ------------------------------------------

DEPTH = 8
STD_RANGE = (0.1, 10.0)
#: Ops whose output is zero by definition: the stack must be exactly zero instead.
ZERO_OPS = {"zero"}


def _stack_output(case, autocast: bool) -> torch.Tensor:
    torch.manual_seed(0)
    ops = [case.create(C, 1).train() for _ in range(DEPTH)]
    y = _randn(4, C, 8, 8, seed=1)
    seconds = [_randn(4, C, 8, 8, seed=2 + k) for k in range(DEPTH)]
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
        for op, q in zip(ops, seconds):
            y = op(y, q) if case.arity == 2 else op(y)
    return y.float()


def test_stack_of_eight_keeps_scale_fp32(op_case):
    """Eight stacked copies keep a finite output with std in [0.1, 10], in float32.

    Definition: C = 8; ``torch.manual_seed(0)`` then 8 independently initialised copies of
    the op (stride 1, the op's own init, train mode so BatchNorm uses batch statistics);
    input ``y0`` standard normal of shape (4, 8, 8, 8); ``yk = op_k(y(k-1))``, and for a
    binary op ``yk = op_k(y(k-1), qk)`` with ``qk`` a fresh standard-normal tensor of the
    same shape (another unit-scale branch). Pass: ``y8`` is finite and its standard
    deviation over all elements lies in [0.1, 10]. Ops in ``ZERO_OPS`` must give exact zeros.
    """
    y = _stack_output(op_case, autocast=False)
    assert torch.isfinite(y).all()
    if op_case.name in ZERO_OPS:
        assert torch.count_nonzero(y) == 0
        return
    std = y.std().item()
    assert STD_RANGE[0] <= std <= STD_RANGE[1], f"std after {DEPTH} copies is {std:.3g}"


def test_stack_of_eight_finite_under_bf16_autocast(op_case):
    """The stack of ``test_stack_of_eight_keeps_scale_fp32`` under
    ``torch.autocast("cpu", dtype=torch.bfloat16)``: finite, std in the same range.

    (Not compared with the float32 stack: a float32 stack of 8 random-init ops already
    amplifies a 1e-3 input perturbation 8-90x, conv ops included, so the distance between
    the two stacks measures the dynamics of the stack, not precision; see
    ``test_one_op_under_bf16_autocast_matches_fp32`` for that.)
    """
    y = _stack_output(op_case, autocast=True)
    assert torch.isfinite(y).all()
    if op_case.name in ZERO_OPS:
        assert torch.count_nonzero(y) == 0
        return
    std = y.std().item()
    assert STD_RANGE[0] <= std <= STD_RANGE[1], f"std after {DEPTH} copies is {std:.3g}"


def test_one_op_under_bf16_autocast_matches_fp32(op_case):
    """One op (train mode, unit-normal inputs of shape (4, 8, 8, 8)) under bf16 autocast
    is within 3% (relative L2) of its float32 output.

    bf16 keeps 8 significant bits (unit round-off 2^-8 ~ 0.4%); an op rounds its
    activations a handful of times, so a few 0.4% errors in quadrature stay near 1%
    (measured: at most 1.0% over the built-in ops). A product overflowing or losing its
    precision, or a normalisation statistic computed in bf16, is far outside 3%.
    """
    torch.manual_seed(0)
    op = op_case.create(C, 1).train()
    xs = [_randn(4, C, 8, 8, seed=1 + i) for i in range(op_case.arity)]
    with torch.no_grad():
        ref = op(*xs)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            low = op(*xs).float()
    assert torch.isfinite(low).all()
    if op_case.name in ZERO_OPS:
        assert torch.count_nonzero(low) == 0
        return
    rel = ((low - ref).norm() / ref.norm()).item()
    assert rel <= 0.03, f"bf16 output is {rel:.3g} (relative L2) away from float32"


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_hmul_computes_products_in_fp32(dtype):
    """``hmul`` (the Hadamard product every op uses) upcasts half-precision inputs:
    ``300 * 300`` overflows float16 (max 65504) but not float32."""
    a = torch.full((2, 3), 300.0, dtype=dtype)
    out = hmul(a, a)
    assert out.dtype == torch.float32
    assert torch.all(out == 90000.0)
    assert hmul(torch.ones(2), torch.ones(2)).dtype == torch.float32


# --- 4. near identity at init --------------------------------------------------------


def _x() -> torch.Tensor:
    return _randn(4, C, 7, 7, seed=1)


def _check_se(op: nn.Module, stride: int) -> None:
    """SE: ``x * 2 sigmoid(g)`` with the gate 1 up to the small init of its last layer.

    Tolerance |gate - 1| <= 0.05: ``g = fc2(relu(fc1(GAP x)))`` with ``fc2`` weights
    N(0, 0.01^2) and zero bias; for unit-normal ``x`` the hidden units are below 1 in
    size (GAP over 49 positions ~ N(0, 1/49); ``fc1`` weights and bias within +-1/sqrt(C)),
    so std(g) <= 0.01 * sqrt(hidden) ~ 0.014 and ``2 sigmoid(g) - 1 ~ g / 2`` has std
    <= 0.007: 0.05 is a margin of seven standard deviations.
    """
    x = _x()
    ref = reduce_prefix(stride)(x)
    out = op(x)
    mask = ref.abs() > 1e-3
    gate = out[mask] / ref[mask]
    assert (gate - 1).abs().max().item() <= 0.05


def _check_exact_input(op: nn.Module, stride: int) -> None:
    """The op returns its (reduce-prefixed) input bit for bit at init."""
    x = _x()
    assert torch.equal(op(x), reduce_prefix(stride)(x))


def _check_soft_mask(op: nn.Module, stride: int) -> None:
    """Soft mask: the mask conv starts at zero, so ``2 sigmoid(0) = 1`` exactly and the op
    returns its input; the mask still receives a non-zero gradient (it can learn)."""
    _check_exact_input(op, stride)
    op(_x()).sum().backward()
    assert op.m.weight.grad.abs().sum() > 0


def _check_film(op: nn.Module, stride: int) -> None:
    """FiLM: dgamma = beta = 0 at init, so ``(1 + 0) * a + 0`` is ``a`` exactly, whatever
    ``b`` is; the generator still receives a non-zero gradient."""
    a, b = _x(), _randn(4, C, 7, 7, seed=5)
    out = op(a, b)
    assert torch.equal(out, reduce_prefix(stride)(a))
    out.square().sum().backward()
    assert op.gen.weight.grad.abs().sum() > 0


def _check_spatial_gating(op: nn.Module, stride: int) -> None:
    """gMLP SGU: the gate ``1 + dw(N(v))`` is exactly 1 at init (the dw conv is zero);
    the gate conv still receives a non-zero gradient."""
    gates: list[torch.Tensor] = []
    handle = op.spatial.register_forward_hook(lambda m, i, o: gates.append(o))
    try:
        out = op(_x())
    finally:
        handle.remove()
    assert len(gates) == 1 and torch.count_nonzero(gates[0]) == 0
    out.square().sum().backward()
    assert op.spatial.weight.grad.abs().sum() > 0


def _relative_change_without_alpha(op: nn.Module) -> float:
    x = _x()
    with torch.no_grad():
        out = op(x)
        op.alpha.zero_()
        linear = op(x)
    return ((out - linear).norm() / linear.norm()).item()


def _check_poly_ccp(op: nn.Module, stride: int) -> None:
    """Pi-net CCP: every ``alpha`` is 0.1, and the output is the linear term's up to a
    relative L2 change between 0.5 and 2 times ``alpha sqrt(degree - 1)``.

    ``x_d = x_1 prod_n (1 + alpha N(U_n z))`` with unit-variance, nearly uncorrelated
    factors, so ``E|x_d - x_1|^2 / E|x_1|^2 = (1 + alpha^2)^(d-1) - 1 ~ (d-1) alpha^2``;
    the factor 2 covers sampling noise on 4x8x7x7 values, the lower bound shows the
    higher-order terms are live.
    """
    assert torch.equal(op.alpha.detach(), torch.full_like(op.alpha, 0.1))
    expected = 0.1 * math.sqrt(len(op.U) - 1)
    rel = _relative_change_without_alpha(op)
    assert 0.5 * expected <= rel <= 2 * expected


def _check_mu_layer(op: nn.Module, stride: int) -> None:
    """Mu-layer: ``alpha`` is 0.1 and ``a + alpha a * b`` differs from ``a`` by about
    ``alpha`` (relative L2; ``b`` is batch-normalised to unit scale): within [0.05, 0.2]."""
    assert torch.equal(op.alpha.detach(), torch.tensor(0.1))
    rel = _relative_change_without_alpha(op)
    assert 0.05 <= rel <= 0.2


NEAR_IDENTITY_CHECKS: dict[str, Callable[[nn.Module, int], None]] = {
    "se": _check_se,
    "soft_mask": _check_soft_mask,
    "film": _check_film,
    "spatial_gating": _check_spatial_gating,
    "poly_ccp": _check_poly_ccp,
    "mu_layer": _check_mu_layer,
}


@pytest.mark.parametrize("stride", [1, 2])
def test_near_identity_at_init(near_identity_case, stride):
    """Ops registered with ``near_identity=True`` start near identity in the sense their
    docstring states (one check per op, documented on the check)."""
    check = NEAR_IDENTITY_CHECKS.get(near_identity_case.name)
    if check is None:
        pytest.fail(
            f"op '{near_identity_case.name}' is registered with near_identity=True but "
            "NEAR_IDENTITY_CHECKS has no check saying what identity it starts near; add one."
        )
    torch.manual_seed(0)
    check(near_identity_case.create(C, stride).train(), stride)


def test_near_identity_checks_cover_only_flagged_ops():
    """A check for an op that is not (or no longer) flagged near-identity is stale."""
    flagged = {i.name for i in default_registry.infos() if i.near_identity}
    assert set(NEAR_IDENTITY_CHECKS) <= flagged


# --- what individual docstrings promise ------------------------------------------------


@pytest.mark.parametrize("hw", [(5, 9), (7, 7), (1, 3)], ids=["5x9", "7x7", "1x3"])
def test_hyena_fft_equals_direct_long_convolution(hw):
    """Hyena's zero-padded FFT is the linear (not circular), centred depth-wise convolution
    ``y[i, j] = sum u[i', j'] h[i - i' + H - 1, j - j' + W - 1]``, here computed with
    ``conv2d`` on the flipped filter; float32 FFT round-off is ~1e-7 relative."""
    H, W = hw
    torch.manual_seed(0)
    op = create_op("hyena", C).eval()
    with torch.no_grad():
        op.decay.fill_(-2.0)  # a wide filter, so far positions matter
        x = _randn(2, C, H, W, seed=1)
        v, g1, g2 = op.proj(x).chunk(3, dim=1)
        u = op.norm(g1) * v
        filt = op._filter(H, W, x.device)  # (C, 2H-1, 2W-1)
        y = F.conv2d(u, filt.flip(-1, -2)[:, None], padding=(H - 1, W - 1), groups=C)
        ref = op.out(torch.sigmoid(g2) * y)
        out = op(x)
    assert ((out - ref).norm() / ref.norm()).item() < 1e-5


@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("window", default_registry.get("aft_conv").knobs["window"])
def test_aft_conv_starts_as_aft_simple(window, stride):
    """AFT-conv's position biases start at zero, so with the same Q/K/V and output weights
    it computes AFT-simple (float32 round-off apart)."""
    torch.manual_seed(0)
    conv = create_op("aft_conv", C, stride, window=window).train()
    simple = create_op("aft_simple", C, stride).train()
    simple.load_state_dict({k: v for k, v in conv.state_dict().items() if k != "w"})
    x = _randn(2, C, 5, 9, seed=1)
    with torch.no_grad():
        a, b = conv(x), simple(x)
    assert ((a - b).norm() / b.norm()).item() < 1e-5


def test_aft_conv_matches_its_definition():
    """AFT-conv (Zhai et al., 2021, eq. 6) with random position biases, against a direct
    double loop over positions: ``Y_t = sigmoid(Q_t) * sum_t' exp(K_t' + w_tt') V_t' /
    sum_t' exp(K_t' + w_tt')``, ``w_tt'`` the learned bias inside the window, 0 outside."""
    torch.manual_seed(0)
    op = create_op("aft_conv", C, window=3).eval()
    with torch.no_grad():
        op.w.normal_(std=0.5)
        x = _randn(1, C, 4, 5, seed=1)
        q, k, v = op.qkv(x).chunk(3, dim=1)
        H, W, p = 4, 5, 1
        mix = torch.zeros_like(v)
        for i in range(H):
            for j in range(W):
                bias = torch.zeros(C, H, W)
                for di in range(-p, p + 1):
                    for dj in range(-p, p + 1):
                        if 0 <= i + di < H and 0 <= j + dj < W:
                            bias[:, i + di, j + dj] = op.w[:, 0, di + p, dj + p]
                weight = torch.exp(k[0] + bias)  # (C, H, W)
                mix[0, :, i, j] = (weight * v[0]).sum((1, 2)) / weight.sum((1, 2))
        ref = op.out(torch.sigmoid(q) * mix)
        out = op(x)
    assert ((out - ref).norm() / ref.norm()).item() < 1e-5


@pytest.mark.parametrize("stride", [1, 2])
def test_partial_conv_renormalises_the_border(stride):
    """Partial-convolution padding: with an all-ones kernel and an all-ones image, the conv
    output (before ReLU/BN) is ``9 C`` at every position, border included; plain zero
    padding would give 4 C at corners and 6 C on edges."""
    op = create_op("partial_conv", C, stride).train()
    seen: list[torch.Tensor] = []
    handle = op.bn.register_forward_pre_hook(lambda m, args: seen.append(args[0]))
    with torch.no_grad():
        op.conv.weight.fill_(1.0)
        op(torch.ones(2, C, 5, 6))
    handle.remove()
    assert torch.allclose(seen[0], torch.full_like(seen[0], 9.0 * C))


# --- devices ---------------------------------------------------------------------------


@pytest.mark.parametrize("stride", [1, 2])
def test_op_is_device_agnostic(op_case, stride):
    """Built and run on the ``meta`` device, the op yields a meta tensor of the right shape:
    nothing in it creates a tensor on a fixed device (the CPU-only proxy for ``cuda``)."""
    with torch.device("meta"):
        op = op_case.create(C, stride)
    xs = [torch.randn(2, C, 5, 9, device="meta") for _ in range(op_case.arity)]
    y = op(*xs)
    assert y.device.type == "meta"
    assert y.shape == (2, C, math.ceil(5 / stride), math.ceil(9 / stride))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_op_on_cuda_under_fp16_autocast(op_case):
    """On a GPU, float16 autocast (max 65504): forward + backward finite, the stack of
    eight copies finite (products run in float32 via ``hmul``)."""
    torch.manual_seed(0)
    ops = [op_case.create(C, 1).cuda().train() for _ in range(DEPTH)]
    y = torch.randn(4, C, 8, 8, device="cuda", requires_grad=True)
    h = y
    with torch.autocast("cuda", dtype=torch.float16):
        for op in ops:
            h = op(h, torch.randn_like(h)) if op_case.arity == 2 else op(h)
    assert torch.isfinite(h).all()
    h.float().square().mean().backward()
    assert torch.isfinite(y.grad).all()
