"""Cost model: FLOPs against hand counts (element-wise work included), exact params, latency.

Hand counts follow the table in ``hadanas/spaces/_costs.py``: conv = 2 * MACs (torch's
formula, bias not counted); one FLOP per output element of an element-wise op
(mul, add, relu, sigmoid, ...); batch norm 2 per element; mean 1 per input element;
FFT 5 n log2 n per transform of n real points. All at C = 8, 5x5, batch 1, eval mode.
"""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from hadanas.spaces import (
    Costs,
    build_model,
    count_flops,
    count_params,
    create_op,
    get_space,
    measure_latency,
    static_costs,
)

C, H, W = 8, 5, 5
CHW = C * H * W  # 200 elements in one (1, C, H, W) map
ONE = [(C, H, W)]
TWO = [(C, H, W), (C, H, W)]

FLOP_CASES = [
    # name, knobs, stride, input shapes, hand count
    ("conv_1x1", {}, 1, ONE,
     CHW            # ReLU
     + 2 * C * C * H * W  # 1x1 conv: 2 * C_in * C_out per position
     + 2 * CHW),    # BN
    ("conv_3x3", {}, 1, ONE,
     CHW + 2 * C * C * 9 * H * W + 2 * CHW),
    ("conv_3x3", {}, 2, ONE,  # 5x5 -> 3x3 output
     CHW + 2 * C * C * 9 * 3 * 3 + 2 * C * 3 * 3),
    ("se", {"reduction": 4}, 1, ONE,  # hidden = max(2, 8 // 4) = 2
     CHW            # GAP: mean over every input element
     + 2 * C * 2    # fc1 (8 -> 2) on one position
     + 2            # ReLU
     + 2 * 2 * C    # fc2 (2 -> 8)
     + C            # sigmoid
     + C            # 2 * sigmoid
     + CHW),        # x * gate: the Hadamard product
    ("star_fusion", {}, 1, TWO,
     2 * CHW + 2 * CHW  # BN of a, BN of b
     + CHW),            # N(a) * N(b)
    ("glu", {"expansion": 1}, 1, ONE,
     (2 * C * C * H * W + 2 * CHW)  # W1 x, BN
     + 2 * C * C * H * W            # W2 x
     + CHW                          # sigmoid
     + CHW                          # product
     + (2 * C * C * H * W + 2 * CHW)),  # output 1x1 conv, BN
    ("soft_mask", {"kernel": 3}, 1, ONE,
     2 * CHW * 9    # depth-wise 3x3: 2 * 9 MACs per output element
     + CHW          # sigmoid
     + CHW          # 2 * sigmoid
     + CHW),        # x * mask
    ("star", {"expansion": 1}, 1, ONE,
     (2 * CHW * 9 + 2 * CHW)                  # z = BN(dw3x3 x)
     + 2 * (2 * C * C * H * W + 2 * CHW)      # F1 z, F2 z with their BNs
     + CHW                                    # the star product
     + (2 * C * C * H * W + 2 * CHW)),        # W3, BN
]


@pytest.mark.parametrize(
    "name,knobs,stride,shapes,expected", FLOP_CASES,
    ids=[f"{c[0]}-s{c[2]}" for c in FLOP_CASES],
)
def test_flops_match_hand_count(name, knobs, stride, shapes, expected):
    op = create_op(name, C, stride, **knobs)
    assert count_flops(op, shapes) == expected


def test_hand_counts_in_numbers():
    """The same counts as plain numbers, as they appear in the report."""
    expected = {f"{c[0]}-s{c[2]}": c[4] for c in FLOP_CASES}
    assert expected == {
        "conv_1x1-s1": 3800, "conv_3x3-s1": 29400, "conv_3x3-s2": 10712, "se-s1": 482,
        "star_fusion-s1": 1000, "glu-s1": 10800, "soft_mask-s1": 4200, "star-s1": 15000,
    }


class _Hadamard(nn.Module):
    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return a * b


def test_hadamard_product_is_counted_but_not_by_the_stock_counter():
    """``a * b`` of two (1, C, H, W) maps costs C*H*W FLOPs; torch's stock counter says 0."""
    assert count_flops(_Hadamard(), TWO) == CHW
    stock = FlopCounterMode(display=False)
    with stock:
        _Hadamard()(torch.randn(1, C, H, W), torch.randn(1, C, H, W))
    assert stock.get_total_flops() == 0


class _FFTRoundTrip(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.fft.irfft2(torch.fft.rfft2(x), s=x.shape[-2:])


def test_fft_counts_per_transform():
    """(1, 8, 4, 8): 8 transforms of 32 points each way: 2 * 8 * 5 * 32 * log2(32)."""
    assert count_flops(_FFTRoundTrip(), [(8, 4, 8)]) == 2 * 8 * 5 * 32 * int(math.log2(32))


def test_flops_scale_with_batch():
    op = create_op("glu", C)
    assert count_flops(op, ONE, batch=3) == 3 * count_flops(op, ONE)


def test_model_flops_exceed_stock_counter():
    """For a whole model the element-wise work is a visible share of the count."""
    torch.manual_seed(0)
    spec = get_space("full").sample(0)
    model = build_model(spec, [(3, 8, 8)], 10)
    ours = count_flops(model, [(3, 8, 8)])
    stock = FlopCounterMode(display=False)
    with stock, torch.no_grad():
        model.eval()(torch.randn(1, 3, 8, 8))
    assert ours > stock.get_total_flops() > 0


def test_counting_leaves_the_model_untouched():
    """count_flops runs in eval mode and restores train mode; BN running stats unchanged."""
    torch.manual_seed(0)
    model = build_model(get_space("nb201").sample(0), [(3, 8, 8)], 10).train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    count_flops(model, [(3, 8, 8)])
    measure_latency(model, [(3, 8, 8)], repeats=2, warmup=1)
    assert model.training
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


# --- params --------------------------------------------------------------------------

PARAM_CASES = [
    ("conv_1x1", {}, C * C + 2 * C),  # 1x1 conv without bias, BN weight + bias
    ("se", {"reduction": 4}, (C * 2 + 2) + (2 * C + C)),  # fc1 8->2, fc2 2->8, with biases
    ("glu", {"expansion": 2}, (C * 16 + 2 * 16) + (C * 16 + 16) + (16 * C + 2 * C)),
    ("film", {}, C * 2 * C + 2 * C),  # generator 1x1 conv C -> 2C with bias
    ("poly_ccp", {"degree": 3}, (9 * C + 2 * C) + 3 * C * C + 3 * 2 * C + 2 + 2 * C),
    ("skip", {}, 0),
]


@pytest.mark.parametrize("name,knobs,expected", PARAM_CASES, ids=[c[0] for c in PARAM_CASES])
def test_params_match_hand_count(name, knobs, expected):
    assert count_params(create_op(name, C, 1, **knobs)) == expected


def test_param_hand_counts_in_numbers():
    assert [c[2] for c in PARAM_CASES] == [80, 42, 448, 144, 346, 0]


# --- latency and static costs --------------------------------------------------------


def test_latency_is_a_positive_median():
    model = create_op("conv_3x3", C).train()
    ms = measure_latency(model, ONE, batch=2, repeats=5, warmup=1)
    assert math.isfinite(ms) and ms > 0
    assert model.training
    # A module with no parameters runs on the CPU.
    assert measure_latency(create_op("skip", C), ONE, repeats=3, warmup=1) > 0


def test_static_costs():
    torch.manual_seed(0)
    spec = get_space("conventional").sample(1)
    model = build_model(spec, [(3, 8, 8)], 10)
    costs = static_costs(model, [(3, 8, 8)])
    assert isinstance(costs, Costs) and costs.latency_ms is None
    assert costs.params == count_params(model) and costs.flops == count_flops(model, [(3, 8, 8)])
    timed = static_costs(model, [(3, 8, 8)], latency=True)
    assert timed.latency_ms is not None and timed.latency_ms > 0
    assert set(timed.to_dict()) == {"params", "flops", "latency_ms"}


# --- whole two-input models: stem vs head fusion -----------------------------------------


def _tiny_fusion(point: str) -> nn.Module:
    """Stem conv, one skip cell, FiLM fusion at ``point``; C=4, 5x5 image, 6-vector, 3 classes."""
    from hadanas.spaces import ArchSpec

    spec = ArchSpec.from_dict({
        "inputs": ["image", "vector"], "input_fusion": "film", "fusion_point": point,
        "stages": [4], "cell": [{"edges": [{"src": 0, "op": "skip"}]}],
    })
    return build_model(spec, [(1, 5, 5), (6,)], 3)


def test_head_and_stem_fusion_flops_match_hand_count():
    """C = 4, HW = 25, D = 6, K = 3. Both models share: stem conv 2*1*4*9*25 = 1800 and BN
    200; the skip cell 0; head BN 200, ReLU 100, global pool 100 (1 per input element);
    vector Linear 2*6*4 = 48 (matmul only), BN1d 8, ReLU 4; classifier 2*4*3 = 24.
    FiLM: its generator (1x1 conv C -> 2C) reads the (4, 1, 1) vector at either point:
    2*4*8 = 64, and 1 + dgamma 4; the product and + beta (1 per output element) run on the
    pooled (4, 1, 1) features at the head (4 + 4), on the (4, 5, 5) stem output at the
    stem (100 + 100)."""
    shared = 1800 + 200 + 200 + 100 + 100 + 48 + 8 + 4 + 24
    head, stem = _tiny_fusion("head"), _tiny_fusion("stem")
    assert count_flops(head, [(1, 5, 5), (6,)]) == shared + 64 + 4 + 4 + 4 == 2560
    assert count_flops(stem, [(1, 5, 5), (6,)]) == shared + 64 + 4 + 100 + 100 == 2752
    # Params: stem 36 + BN 8; vector 6*4 + 4 and BN 8; FiLM 4*8 + 8; head BN 8; Linear 4*3 + 3.
    assert count_params(head) == count_params(stem) == 44 + 36 + 40 + 8 + 15 == 143
