"""build_model: shapes, bit-for-bit determinism, a model using every registered op."""

from __future__ import annotations

import pytest
import torch

from hadanas.exceptions import SpecError
from hadanas.spaces import ArchSpec, build_model, get_space, list_ops, list_spaces

IMAGE = (3, 9, 9)  # odd: 9 -> 5 -> 3 through the reductions
VECTOR = (5,)


def _shapes(spec: ArchSpec) -> list[tuple[int, ...]]:
    return [IMAGE, VECTOR] if len(spec.inputs) == 2 else [IMAGE]


def _inputs(spec: ArchSpec, batch: int = 2) -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(123)
    return [torch.randn(batch, *s, generator=gen) for s in _shapes(spec)]


def _build(spec: ArchSpec, seed: int) -> torch.nn.Module:
    torch.manual_seed(seed)
    return build_model(spec, _shapes(spec), 10).train()


def _assert_deterministic(spec: ArchSpec) -> None:
    """Same seed and spec: bit-identical weights and output. Another seed: another output."""
    xs = _inputs(spec)
    a, b, c = _build(spec, 0), _build(spec, 0), _build(spec, 1)
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    ya, yb, yc = a(*xs), b(*xs), c(*xs)
    assert ya.shape == (2, 10) and torch.isfinite(ya).all()
    assert torch.equal(ya, yb)
    assert not torch.equal(ya, yc)


@pytest.mark.parametrize("space_name", list_spaces())
def test_build_is_deterministic_for_samples_of_every_space(space_name):
    _assert_deterministic(get_space(space_name).sample(0))


def _every_op_spec(two_inputs: bool) -> ArchSpec:
    """One cell that uses every registered unary op on an edge and every binary op as a
    combine (default knobs): node k+1 folds op(node k) and op(cell input)."""
    unary, binary = list_ops(arity=1), list_ops(arity=2)
    cell = []
    for k in range(max((len(unary) + 1) // 2, len(binary))):
        edges = [
            {"src": k, "op": unary[(2 * k) % len(unary)]},
            {"src": 0, "op": unary[(2 * k + 1) % len(unary)]},
        ]
        cell.append({"combine": binary[k % len(binary)], "edges": edges})
    data = {"stages": [8, 16], "cells_per_stage": 1, "cell": cell}
    if two_inputs:
        data.update(inputs=["image", "vector"], input_fusion=binary[-1])
    return ArchSpec.from_dict(data)


@pytest.mark.parametrize("two_inputs", [False, True], ids=["image", "image+vector"])
def test_model_with_every_op(two_inputs):
    """Every registered op in one model: deterministic, finite, and every parameter learns."""
    spec = _every_op_spec(two_inputs)
    assert set(spec.ops()) == set(list_ops())
    _assert_deterministic(spec)
    model = _build(spec, 0)
    model(*_inputs(spec)).logsumexp(1).mean().backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name


def test_two_input_model_needs_the_vector():
    spec = get_space("fusion").sample(0)
    model = _build(spec, 0)
    with pytest.raises(ValueError, match="two inputs"):
        model(_inputs(spec)[0])


@pytest.mark.parametrize(
    "shapes,num_classes,fragment",
    [
        ([IMAGE], 1, "num_classes"),
        ([IMAGE, VECTOR], 10, "1 input"),
        ([(9, 9)], 10, "(C, H, W)"),
    ],
    ids=["classes", "count", "image-dims"],
)
def test_build_model_rejects_bad_arguments(shapes, num_classes, fragment):
    with pytest.raises(SpecError) as info:
        build_model(get_space("full").sample(0), shapes, num_classes)
    assert fragment in str(info.value)


def test_vector_shape_is_checked():
    with pytest.raises(SpecError, match=r"\(D,\)"):
        build_model(get_space("fusion").sample(0), [IMAGE, (5, 2)], 10)


def test_model_is_device_agnostic():
    """The whole every-op model built and run on the ``meta`` device stays on it."""
    spec = _every_op_spec(two_inputs=True)
    with torch.device("meta"):
        model = build_model(spec, _shapes(spec), 10)
    y = model(*(torch.empty(2, *s, device="meta") for s in _shapes(spec)))
    assert y.device.type == "meta" and y.shape == (2, 10)


# --- head fusion ---------------------------------------------------------------------


def _fusion_spec(fusion: str, point: str, knobs: dict | None = None) -> ArchSpec:
    cell = [
        {"combine": "sum", "edges": [{"src": 0, "op": "conv_3x3"}, {"src": 0, "op": "skip"}]},
        {"combine": "sum", "edges": [{"src": 1, "op": "se"}]},
    ]
    return ArchSpec.from_dict({"inputs": ["image", "vector"], "input_fusion": fusion,
                               "fusion_point": point, "stages": [8, 16], "cell": cell})


@pytest.mark.parametrize("fusion", list_ops(arity=2))
def test_head_fusion_builds_with_every_fusion_op(fusion):
    """Head fusion: the vector (encoded to C_last) meets the pooled (N, C_last) features; the
    classifier reads the fused features. Deterministic, and every parameter gets a gradient."""
    spec = _fusion_spec(fusion, "head")
    _assert_deterministic(spec)
    model = _build(spec, 0)
    assert model.classifier is not None and model.classifier.in_features == 16
    assert model.vector[0].out_features == 16  # C_last, not the stem's 8
    assert isinstance(model.head[-1], torch.nn.Flatten)  # the linear layer moved out of head
    model(*_inputs(spec)).logsumexp(1).mean().backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
    # The vector reaches the logits (FiLM starts as the identity: move its generator first).
    with torch.no_grad():
        for p in model.fuse.parameters():
            p.add_(0.1)
    image, vector = _inputs(spec)
    model.eval()
    assert not torch.equal(model(image, vector), model(image, vector + 1.0))


def test_stem_fusion_keeps_its_layout():
    """Specs without 'fusion_point' build the model they always built: the vector encoded to
    the stem width, the linear classifier as the last layer of 'head', no 'classifier'."""
    spec = _fusion_spec("film", "stem")
    model = _build(spec, 0)
    assert model.classifier is None and model.vector[0].out_features == 8
    keys = model.state_dict().keys()
    assert "head.4.weight" in keys and not any(k.startswith("classifier") for k in keys)
    head = _build(_fusion_spec("film", "head"), 0).state_dict().keys()
    assert "classifier.weight" in head and "head.4.weight" not in head


def test_head_fusion_needs_the_vector():
    spec = _fusion_spec("sum", "head")
    with pytest.raises(ValueError, match="two inputs"):
        _build(spec, 0)(_inputs(spec)[0])
