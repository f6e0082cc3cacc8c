"""Static costs of a model: exact parameter count, FLOPs including element-wise work, latency.

``torch.utils.flop_counter`` counts only matmul/convolution-like ops, which makes every
Hadamard product look free. :func:`count_flops` adds the element-wise work with the
convention below (per output element unless stated):

====================================================  =====================
op                                                    FLOPs
====================================================  =====================
mul, add, sub, div, neg, addcmul (per op term)        1 (addcmul/lerp: 2)
relu, gelu, silu, sigmoid, tanh, exp, expm1, sqrt...  1
softmax / log_softmax                                 3 per input element
batch norm (inference), layer/group norm              2 per element (norms: 5)
avg / max pooling                                     kernel area
mean / sum / amax                                     1 per input element
FFT (rfft2 / irfft2)                                  5 n log2 n per transform
                                                      (n = real points of one
                                                      transform)
====================================================  =====================

Counts are for one forward pass in inference mode; matmul/conv use torch's own
formulas (2 FLOPs per multiply-accumulate).
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

__all__ = ["Costs", "count_params", "count_flops", "measure_latency", "static_costs"]


def _numel(shape: Any) -> int:
    if isinstance(shape, (tuple, list)) and shape and isinstance(shape[0], torch.Size):
        shape = shape[0]
    if isinstance(shape, torch.Size) or (
        isinstance(shape, (tuple, list)) and all(isinstance(s, int) for s in shape)
    ):
        return int(math.prod(shape))
    return 0


def _per_out(k: float):
    def f(*args: Any, out_shape: Any = None, **kwargs: Any) -> int:
        return int(k * _numel(out_shape))

    return f


def _per_in(k: float):
    def f(*args: Any, out_shape: Any = None, **kwargs: Any) -> int:
        return int(k * _numel(args[0])) if args else 0

    return f


def _pool(*args: Any, out_shape: Any = None, **kwargs: Any) -> int:
    kernel = args[1] if len(args) > 1 else kwargs.get("kernel_size", 1)
    if isinstance(kernel, int):
        kernel = (kernel, kernel)
    area = math.prod(kernel) if kernel else 1
    return int(area * _numel(out_shape))


def _fft_counter(real_side: str):
    """``5 n log2 n`` per transform of ``n`` real points, times the number of transforms.

    ``_fft_r2c(self, dim, ...)`` reads the real signal; ``_fft_c2r(self, dim, ...)`` writes
    it; ``_fft_c2c`` is complex on both sides. Every other dimension is a batch of
    independent transforms, so a batch of ``B`` transforms of ``n`` points costs
    ``B * 5 n log2 n``, not ``5 (B n) log2 (B n)``.
    """

    def f(*args: Any, out_shape: Any = None, **kwargs: Any) -> int:
        if not args:
            return 0
        shape = out_shape if real_side == "out" else args[0]
        if isinstance(shape, (tuple, list)) and shape and isinstance(shape[0], torch.Size):
            shape = shape[0]
        dims = args[1] if len(args) > 1 else kwargs.get("dim", ())
        if isinstance(dims, int):
            dims = (dims,)
        total = _numel(shape)
        if not total:
            return 0
        n = math.prod(shape[d] for d in dims) if dims else total
        return int(5 * total * math.log2(max(n, 2)))

    return f


def _mapping() -> dict[Any, Any]:
    aten = torch.ops.aten
    table: dict[str, Any] = {}
    for name in ("mul", "add", "sub", "div", "neg", "rsub", "reciprocal", "where",
                 "relu", "gelu", "silu", "sigmoid", "tanh", "exp", "expm1", "sqrt", "rsqrt",
                 "hardtanh", "leaky_relu", "softplus", "clamp", "clamp_min", "sin", "cos",
                 "pow", "abs", "gt", "lt", "maximum", "minimum", "threshold_backward"):
        table[name] = _per_out(1)
    for name in ("addcmul", "addcdiv", "lerp"):
        table[name] = _per_out(2)
    for name in ("_softmax", "_log_softmax"):
        table[name] = _per_in(3)
    for name in ("_native_batch_norm_legit_no_training", "_native_batch_norm_legit",
                 "native_batch_norm"):
        table[name] = _per_in(2)
    for name in ("native_layer_norm", "native_group_norm"):
        table[name] = _per_in(5)
    for name in ("avg_pool2d", "max_pool2d_with_indices", "max_pool2d"):
        table[name] = _pool
    for name in ("mean", "sum", "amax", "_adaptive_avg_pool2d"):
        table[name] = _per_in(1)
    table["_fft_r2c"] = _fft_counter("in")
    table["_fft_c2r"] = _fft_counter("out")
    table["_fft_c2c"] = _fft_counter("in")
    out = {}
    for name, fn in table.items():
        packet = getattr(aten, name, None)
        if packet is not None:
            out[packet] = fn
    return out


_MAPPING: dict[Any, Any] | None = None


def _inputs(input_shapes: Sequence[Sequence[int]], batch: int, device: Any) -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    return [torch.randn(batch, *s, generator=gen).to(device) for s in input_shapes]


def count_params(model: nn.Module) -> int:
    """Exact number of parameters."""
    return sum(p.numel() for p in model.parameters())


@torch.no_grad()
def count_flops(model: nn.Module, input_shapes: Sequence[Sequence[int]], batch: int = 1) -> int:
    """FLOPs of one inference forward pass at ``batch``, element-wise work included."""
    global _MAPPING
    if _MAPPING is None:
        _MAPPING = _mapping()
    was_training = model.training
    model.eval()
    try:
        device = next(iter(model.parameters()), torch.empty(0)).device
        xs = _inputs(input_shapes, batch, device)
        counter = FlopCounterMode(display=False, custom_mapping=_MAPPING)
        with counter:
            model(*xs)
        return int(counter.get_total_flops())
    finally:
        model.train(was_training)


@torch.no_grad()
def measure_latency(
    model: nn.Module,
    input_shapes: Sequence[Sequence[int]],
    batch: int = 1,
    repeats: int = 20,
    warmup: int = 5,
) -> float:
    """Median wall time in milliseconds of ``repeats`` forward passes after ``warmup``."""
    was_training = model.training
    model.eval()
    try:
        device = next(iter(model.parameters()), torch.empty(0)).device
        xs = _inputs(input_shapes, batch, device)
        sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
        for _ in range(warmup):
            model(*xs)
        sync()
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            model(*xs)
            sync()
            times.append((time.perf_counter() - t0) * 1e3)
        return float(statistics.median(times))
    finally:
        model.train(was_training)


@dataclass(frozen=True)
class Costs:
    params: int
    flops: int
    latency_ms: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"params": self.params, "flops": self.flops, "latency_ms": self.latency_ms}


def static_costs(
    model: nn.Module,
    input_shapes: Sequence[Sequence[int]],
    latency: bool = False,
    latency_batch: int = 1,
) -> Costs:
    """Params and FLOPs (batch 1); latency (median ms at ``latency_batch``) when asked."""
    lat = measure_latency(model, input_shapes, latency_batch) if latency else None
    return Costs(count_params(model), count_flops(model, input_shapes), lat)
