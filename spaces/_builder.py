"""Build a ``torch.nn.Module`` from an :class:`ArchSpec`."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from hadanas.exceptions import SpecError
from hadanas.spaces._registry import OpRegistry, default_registry
from hadanas.spaces._spec import ArchSpec

__all__ = ["build_model", "HadaNet", "Cell"]


class Cell(nn.Module):
    """One cell: a DAG of nodes, each folding its edges' outputs with a binary combine."""

    def __init__(self, spec: ArchSpec, C: int, registry: OpRegistry) -> None:
        super().__init__()
        self.sources: list[list[int]] = []
        self.edges = nn.ModuleList()
        self.combines = nn.ModuleList()
        for node in spec.cell:
            self.sources.append([e.src for e in node.edges])
            self.edges.append(
                nn.ModuleList(registry.create(e.op, C, 1, **e.knob_dict()) for e in node.edges)
            )
            if len(node.edges) > 1:
                self.combines.append(
                    nn.ModuleList(
                        registry.create(node.combine, C, 1, **dict(node.combine_knobs))
                        for _ in range(len(node.edges) - 1)
                    )
                )
            else:
                self.combines.append(nn.ModuleList())
        self.outputs = spec.loose_ends()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        states = [x]
        for srcs, edges, combines in zip(self.sources, self.edges, self.combines):
            y = edges[0](states[srcs[0]])
            for k in range(1, len(srcs)):
                y = combines[k - 1](y, edges[k](states[srcs[k]]))
            states.append(y)
        out = states[self.outputs[0]]
        for i in self.outputs[1:]:
            out = out + states[i]
        return out


class ReductionBlock(nn.Module):
    """Residual stride-2 block between stages (the NAS-Bench-201 'ResNet basic block')."""

    def __init__(self, C_in: int, C_out: int) -> None:
        super().__init__()
        self.a = nn.Sequential(
            nn.ReLU(), nn.Conv2d(C_in, C_out, 3, 2, 1, bias=False), nn.BatchNorm2d(C_out)
        )
        self.b = nn.Sequential(
            nn.ReLU(), nn.Conv2d(C_out, C_out, 3, 1, 1, bias=False), nn.BatchNorm2d(C_out)
        )
        self.shortcut = nn.Sequential(
            nn.AvgPool2d(2, 2, ceil_mode=True, count_include_pad=False),
            nn.Conv2d(C_in, C_out, 1, bias=False),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.b(self.a(x)) + self.shortcut(x)


class HadaNet(nn.Module):
    """The network described by an :class:`ArchSpec`."""

    def __init__(
        self,
        spec: ArchSpec,
        input_shapes: Sequence[Sequence[int]],
        num_classes: int,
        registry: OpRegistry | None = None,
    ) -> None:
        super().__init__()
        reg = registry or default_registry
        if len(input_shapes) != len(spec.inputs):
            raise SpecError(
                f"the spec takes {len(spec.inputs)} input(s) {list(spec.inputs)}, "
                f"but {len(input_shapes)} input shape(s) were given."
            )
        image = tuple(input_shapes[0])
        if len(image) != 3:
            raise SpecError(f"the image input shape must be (C, H, W), but got {image}.")
        C0 = spec.stages[0]
        self.stem = nn.Sequential(nn.Conv2d(image[0], C0, 3, 1, 1, bias=False), nn.BatchNorm2d(C0))
        self.vector: nn.Module | None = None
        self.fuse: nn.Module | None = None
        # Head fusion: the vector meets the globally pooled image features (C_last
        # channels) just before the classifier; stem fusion: the stem output (C0).
        head_fusion = len(spec.inputs) == 2 and spec.fusion_point == "head"
        if len(spec.inputs) == 2:
            vec = tuple(input_shapes[1])
            if len(vec) != 1:
                raise SpecError(f"the vector input shape must be (D,), but got {vec}.")
            Cf = spec.stages[-1] if head_fusion else C0
            self.vector = nn.Sequential(nn.Linear(vec[0], Cf), nn.BatchNorm1d(Cf), nn.ReLU())
            assert spec.input_fusion is not None
            self.fuse = reg.create(spec.input_fusion, Cf, 1)
        body: list[nn.Module] = []
        for s, C in enumerate(spec.stages):
            if s > 0:
                body.append(ReductionBlock(spec.stages[s - 1], C))
            body.extend(Cell(spec, C, reg) for _ in range(spec.cells_per_stage))
        self.body = nn.Sequential(*body)
        C_last = spec.stages[-1]
        pool: list[nn.Module] = [
            nn.BatchNorm2d(C_last), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten()
        ]
        #: Set only for head fusion: the linear classifier after the fusion op. With stem
        #: fusion (and one input) it is the last layer of ``head``, as it always was.
        self.classifier: nn.Module | None = None
        if head_fusion:
            self.head = nn.Sequential(*pool)
            self.classifier = nn.Linear(C_last, num_classes)
        else:
            self.head = nn.Sequential(*pool, nn.Linear(C_last, num_classes))

    def forward(self, x: torch.Tensor, q: torch.Tensor | None = None) -> torch.Tensor:
        h = self.stem(x)  # (N, C0, H, W)
        v: torch.Tensor | None = None
        if self.vector is not None:
            if q is None:
                raise ValueError("this model takes two inputs (image, vector).")
            v = self.vector(q)[:, :, None, None]  # (N, C0 or C_last, 1, 1)
        if v is not None and self.fuse is not None and self.classifier is None:
            h = self.fuse(h, v)  # stem fusion
        y = self.head(self.body(h))  # (N, num_classes), or (N, C_last) for head fusion
        if self.classifier is None:
            return y
        if v is not None and self.fuse is not None:
            y = self.fuse(y[:, :, None, None], v).flatten(1)  # (N, C_last)
        return self.classifier(y)  # (N, num_classes)


def build_model(
    spec: ArchSpec,
    input_shapes: Sequence[Sequence[int]],
    num_classes: int,
    registry: OpRegistry | None = None,
) -> HadaNet:
    """Build the module for ``spec`` taking inputs of ``input_shapes`` (without batch)."""
    if num_classes < 2:
        raise SpecError(f"num_classes must be at least 2, but got {num_classes}.")
    return HadaNet(spec, input_shapes, num_classes, registry)
