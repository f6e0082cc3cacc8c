"""Generate ``model.py``: stand-alone PyTorch source that rebuilds an exported network.

The generated file depends on torch and the standard library only. It holds the *same*
source as the library, not a rewrite: the operator classes and factories the spec uses,
the helpers they call (``spaces/ops/_common.py``) and the model builder
(``spaces/_builder.py``), copied definition by definition with their ``hadanas`` imports
and ``@register_op`` decorators removed. What those imports provided is replaced by a
small prelude: the parts of ``ArchSpec`` the builder reads, a two-line op table in place
of the registry, and ``SpecError``. ``load_weights`` reads ``weights.safetensors`` with
torch alone, so the module loads its weights with ``strict=True`` without hadanas or the
safetensors package.

An op whose source cannot be copied this way (a factory that is a lambda, defined inside
a function, or importing a third-party package) raises :class:`ExportGap`, naming it.
"""

from __future__ import annotations

import ast
import functools
import importlib
import importlib.util
import inspect
import json
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from hadanas.spaces import ArchSpec, OpRegistry, default_registry

__all__ = ["ExportGap", "generate_code", "load_generated"]

#: Top-level packages the generated file may import (torch and the standard library).
ALLOWED_IMPORTS = frozenset(sys.stdlib_module_names) | {"torch"}

#: Names the library imports from hadanas that the prelude of model.py provides instead.
_PRELUDE_NAMES = frozenset({
    "ArchSpec", "Edge", "Node", "OpRegistry", "default_registry", "SpecError", "KnobValue",
})
#: Decorators dropped from copied definitions (they register, they do not transform).
_REGISTERING = frozenset({"register_op", "register"})

_BUILDER_MODULE = "hadanas.spaces._builder"
_BUILDER_ENTRY = "HadaNet"


class ExportGap(Exception):
    """A format cannot be produced for this model; ``str(exc)`` says why."""


@dataclass
class _Def:
    module: str
    name: str
    order: int  # position in the source module
    node: ast.stmt
    text: str
    deps: set[str] = field(default_factory=set)  # names read anywhere in the definition
    early: set[str] = field(default_factory=set)  # names read when the definition runs


@dataclass
class _Module:
    name: str
    path: str
    defs: dict[str, _Def]
    imports: dict[str, tuple[str, str | None, str]]  # local -> (module, attr|None, statement)


def _names(nodes: Sequence[ast.AST]) -> set[str]:
    """Names read by ``nodes``, ignoring annotations (strings under ``from __future__``)."""
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.Name):
            found.add(node.id)
        for name, child in ast.iter_fields(node):
            if name in ("annotation", "returns"):
                continue
            for c in child if isinstance(child, list) else [child]:
                if isinstance(c, ast.AST):
                    visit(c)

    for node in nodes:
        visit(node)
    return found


def _drop_decorator(dec: ast.expr) -> bool:
    fn = dec.func if isinstance(dec, ast.Call) else dec
    if isinstance(fn, ast.Name):
        return fn.id in _REGISTERING
    return isinstance(fn, ast.Attribute) and fn.attr in _REGISTERING


def _segment(lines: list[bytes], node: ast.AST) -> str:
    """The source text of ``node`` (``ast.get_source_segment`` without re-splitting the file;
    ast offsets count UTF-8 bytes)."""
    first, last = node.lineno - 1, node.end_lineno - 1  # type: ignore[attr-defined]
    start, end = node.col_offset, node.end_col_offset  # type: ignore[attr-defined]
    if first == last:
        return lines[first][start:end].decode("utf-8")
    return b"".join([lines[first][start:], *lines[first + 1 : last], lines[last][:end]]).decode("utf-8")


@functools.lru_cache(maxsize=64)
def _parse_file(path: str, mtime_ns: int) -> tuple[ast.Module, tuple[bytes, ...]]:
    """Parsed source of ``path``, cached while the file is unchanged."""
    data = Path(path).read_bytes()
    return ast.parse(data), tuple(data.splitlines(keepends=True))


def _parse_module(name: str) -> _Module:
    try:
        mod = importlib.import_module(name)
        path = inspect.getsourcefile(mod)
        if path is None:
            raise OSError("no source file")
        tree, raw = _parse_file(path, os.stat(path).st_mtime_ns)
    except (ImportError, OSError, TypeError, SyntaxError) as exc:
        raise ExportGap(f"the source of module '{name}' is not available ({exc}).") from None
    lines = list(raw)
    defs: dict[str, _Def] = {}
    imports: dict[str, tuple[str, str | None, str]] = {}
    for i, node in enumerate(tree.body):
        if isinstance(node, ast.Import):
            for a in node.names:
                local = a.asname or a.name.split(".")[0]
                stmt = f"import {a.name}" + (f" as {a.asname}" if a.asname else "")
                imports[local] = (a.name if a.asname else local, None, stmt)
        elif isinstance(node, ast.ImportFrom):
            base = "." * node.level + (node.module or "")
            if node.level:
                base = importlib.util.resolve_name(base, mod.__package__ or name)
            for a in node.names:
                local = a.asname or a.name
                stmt = f"from {base} import {a.name}" + (f" as {a.asname}" if a.asname else "")
                imports[local] = (base, a.name, stmt)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            kept = [d for d in node.decorator_list if not _drop_decorator(d)]
            text = _segment(lines, node)
            text = "".join(f"@{_segment(lines, d)}\n" for d in kept) + text
            early: list[ast.AST] = list(kept)
            if isinstance(node, ast.ClassDef):
                early += [*node.bases, *node.keywords]
                for stmt in node.body:  # class-level statements run at definition time
                    if not isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef)):
                        early.append(stmt)
                    else:
                        early += [d for d in stmt.decorator_list]
                        early += [*stmt.args.defaults, *(d for d in stmt.args.kw_defaults if d)]
            else:
                early += [*node.args.defaults, *(d for d in node.args.kw_defaults if d)]
            deps = _names([*kept, node]) - {node.name}
            defs[node.name] = _Def(name, node.name, i, node, text, deps, _names(early))
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names = [t.id for t in targets if isinstance(t, ast.Name)]
            if not names or "__all__" in names:
                continue
            text = _segment(lines, node)
            value = [node.value] if node.value is not None else []
            for n in names:
                defs[n] = _Def(name, n, i, node, text, _names(value), _names(value))
    return _Module(name, path, defs, imports)


def _defining_module(module: str, attr: str) -> str:
    """The module whose source defines ``module.attr`` (follows re-exports)."""
    obj = getattr(importlib.import_module(module), attr, None)
    defined_in = getattr(obj, "__module__", None)
    if isinstance(defined_in, str) and (inspect.isclass(obj) or inspect.isfunction(obj)):
        return defined_in
    return module


class _Collector:
    """The transitive closure of definitions reachable from some entry points."""

    def __init__(self) -> None:
        self.defs: dict[tuple[str, str], _Def] = {}
        self.imports: set[str] = set()
        self.by_name: dict[str, tuple[str, str]] = {}
        self.modules: dict[str, _Module] = {}

    def module(self, name: str) -> _Module:
        if name not in self.modules:
            self.modules[name] = _parse_module(name)
        return self.modules[name]

    def add(self, module: str, name: str, why: str) -> None:
        key = (module, name)
        if key in self.defs:
            return
        m = self.module(module)
        if name not in m.defs:
            raise ExportGap(f"{why}: '{name}' is not a top-level definition of module '{module}'.")
        other = self.by_name.get(name)
        if other is not None and other != key:
            raise ExportGap(
                f"{why}: '{name}' is defined both in '{other[0]}' and in '{module}'; model.py "
                "holds one namespace, so one of them must be renamed."
            )
        d = m.defs[name]
        self.defs[key] = d
        self.by_name[name] = key
        for dep in sorted(d.deps):
            self._resolve(m, dep, f"{why} -> {name}")

    def _resolve(self, m: _Module, name: str, why: str) -> None:
        if name in m.defs:
            self.add(m.name, name, why)
            return
        if name not in m.imports:
            return  # a builtin or a local name
        module, attr, stmt = m.imports[name]
        root = module.split(".")[0]
        if root == "hadanas":
            if name in _PRELUDE_NAMES or attr in _PRELUDE_NAMES or attr in _REGISTERING:
                return
            if attr is None:
                raise ExportGap(f"{why}: uses the module '{module}' as a whole; model.py cannot.")
            self.add(_defining_module(module, attr), attr, why)
            return
        if root == "__future__":
            return
        if root not in ALLOWED_IMPORTS:
            raise ExportGap(
                f"{why}: imports '{module}', but model.py may depend on torch and the standard "
                "library only."
            )
        self.imports.add(stmt)

    def ordered(self) -> list[_Def]:
        """Definitions so that every name read at definition time is defined before."""
        done: set[tuple[str, str]] = set()
        out: list[_Def] = []
        module_rank = {name: i for i, name in enumerate(
            sorted({m for m, _ in self.defs}, key=lambda m: (m == _BUILDER_MODULE, m)))}

        def visit(key: tuple[str, str], stack: tuple[tuple[str, str], ...]) -> None:
            if key in done:
                return
            if key in stack:
                raise ExportGap(f"circular definitions: {' -> '.join(k[1] for k in stack)}.")
            d = self.defs[key]
            for dep in sorted(d.early):
                dk = self.by_name.get(dep)
                if dk is not None and dk != key:
                    visit(dk, (*stack, key))
            done.add(key)
            out.append(d)

        for key in sorted(self.defs, key=lambda k: (module_rank[k[0]], self.defs[k].order)):
            visit(key, ())
        return out


def _factory_location(name: str, registry: OpRegistry) -> tuple[str, str]:
    info = registry.get(name)
    f = info.factory
    module, qual = getattr(f, "__module__", None), getattr(f, "__qualname__", "")
    if not module or not qual or "<" in qual or "." in qual:
        raise ExportGap(
            f"op '{name}' is registered with factory {qual or f!r}, which is not a top-level "
            "function or class of a module, so model.py cannot copy its source."
        )
    return module, qual


def _literal(value: Any) -> str:
    return json.dumps(value, sort_keys=True)


_PRELUDE = '''
class SpecError(ValueError):
    """An architecture spec is malformed (stands in for hadanas.exceptions.SpecError)."""


class Edge:
    """One edge of a cell: ``op(node src)`` with the op's knobs."""

    def __init__(self, src: int, op: str, knobs: dict) -> None:
        self.src, self.op, self.knobs = src, op, tuple(sorted(knobs.items()))

    def knob_dict(self) -> dict:
        return dict(self.knobs)


class Node:
    """A cell node: its edges folded with a binary ``combine`` op."""

    def __init__(self, edges: tuple, combine: str, combine_knobs: dict) -> None:
        self.edges, self.combine = edges, combine
        self.combine_knobs = tuple(sorted(combine_knobs.items()))


class ArchSpec:
    """The parts of hadanas' ArchSpec that the builder reads, from the spec's JSON dict."""

    def __init__(self, data: dict) -> None:
        self.inputs = tuple(data.get("inputs", ["image"]))
        self.input_fusion = data.get("input_fusion")
        self.fusion_point = data.get("fusion_point", "stem")
        self.stages = tuple(data["stages"])
        self.cells_per_stage = int(data.get("cells_per_stage", 1))
        self.cell = tuple(
            Node(tuple(Edge(e["src"], e["op"], e.get("knobs", {})) for e in n["edges"]),
                 n.get("combine", "sum"), n.get("combine_knobs", {}))
            for n in data["cell"]
        )

    def loose_ends(self) -> list:
        used = {e.src for n in self.cell for e in n.edges}
        return [i for i in range(1, len(self.cell) + 1) if i not in used]


class OpRegistry:
    """Op name -> (factory, default knobs): what the builder needs of hadanas' registry."""

    def __init__(self, ops: dict) -> None:
        self.ops = ops

    def create(self, name: str, C: int, stride: int = 1, **knobs) -> nn.Module:
        factory, defaults = self.ops[name]
        return factory(C, stride, **{**defaults, **knobs})
'''

_LOADER = '''
_DTYPES = {
    "F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
    "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8,
    "U8": torch.uint8, "BOOL": torch.bool,
}


def load_weights(path) -> dict:
    """Read a ``.safetensors`` file with torch alone (8-byte header size, JSON header, data)."""
    if sys.byteorder != "little":
        raise RuntimeError("load_weights reads little-endian safetensors on little-endian machines only.")
    data = Path(path).read_bytes()
    size = int.from_bytes(data[:8], "little")
    header = json.loads(data[8 : 8 + size])
    base = 8 + size
    tensors = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        start, end = info["data_offsets"]
        dtype = _DTYPES[info["dtype"]]
        flat = (torch.frombuffer(bytearray(data[base + start : base + end]), dtype=dtype)
                if end > start else torch.empty(0, dtype=dtype))
        tensors[name] = flat.reshape(info["shape"]).clone()
    return tensors


def build(weights=None) -> nn.Module:
    """The network in eval mode; with ``weights`` (a .safetensors path) its trained weights."""
    model = HadaNet(ArchSpec(SPEC), INPUT_SHAPES, NUM_CLASSES, default_registry)
    if weights is not None:
        model.load_state_dict(load_weights(weights), strict=True)
    return model.eval()


if __name__ == "__main__":
    here = Path(__file__).resolve().parent
    path = Path(sys.argv[1]) if len(sys.argv) > 1 else here / "weights.safetensors"
    net = build(path if path.exists() else None)
    with torch.no_grad():
        logits = net(*(torch.zeros(2, *shape) for shape in INPUT_SHAPES))
    print(f"{type(net).__name__}: {sum(p.numel() for p in net.parameters())} parameters, "
          f"weights {path if path.exists() else 'random'}, logits {tuple(logits.shape)}")
'''

_HEADER_IMPORTS = ("import json", "import sys", "from pathlib import Path", "import torch",
                   "from torch import nn")


def generate_code(
    spec: ArchSpec,
    input_shapes: Sequence[Sequence[int]],
    num_classes: int,
    *,
    registry: OpRegistry | None = None,
    title: str = "",
) -> str:
    """Python source (torch only) whose ``build(weights)`` returns the network of ``spec``.

    Raises :class:`ExportGap` when an op's source cannot be copied into a stand-alone file.
    """
    reg = registry or default_registry
    col = _Collector()
    table: dict[str, tuple[str, dict[str, Any]]] = {}
    for name in sorted(set(spec.ops())):
        module, qual = _factory_location(name, reg)
        col.add(module, qual, f"op '{name}'")
        table[name] = (qual, reg.get(name).default_knobs())
    col.add(_BUILDER_MODULE, _BUILDER_ENTRY, "the model builder")
    for stmt in _HEADER_IMPORTS:
        col.imports.add(stmt)

    def import_key(stmt: str) -> tuple[int, str]:
        root = stmt.split()[1].split(".")[0]
        return (root == "torch", stmt)

    from hadanas import __version__

    lines = [
        f'"""{title or "A network found by hadanas"}: stand-alone PyTorch code (torch only).',
        "",
        f"Generated by hadanas {__version__} from spec {spec.fingerprint()}. The classes below are",
        "copied from the hadanas sources named in the section comments. Usage::",
        "",
        "    from model import build",
        '    net = build("weights.safetensors")   # eval mode, weights loaded with strict=True',
        "    logits = net(*inputs)                 # inputs shaped (batch, *INPUT_SHAPES[i])",
        '"""',
        "",
        "from __future__ import annotations",
        "",
        *sorted(col.imports, key=import_key),
        "",
        "SPEC = json.loads(" + repr(spec.to_json()) + ")",
        f"INPUT_SHAPES = {_literal([list(s) for s in input_shapes])}",
        f"NUM_CLASSES = {int(num_classes)}",
        f"INPUT_NAMES = {_literal(list(spec.inputs))}",
        "",
        _PRELUDE.strip("\n"),
    ]
    current = None
    for d in col.ordered():
        if d.module != current:
            current = d.module
            rel = col.module(d.module).path
            for marker in ("/spaces/", "/search/", "/trainers/"):
                if marker in rel:
                    rel = marker[1:] + rel.split(marker, 1)[1]
                    break
            lines += ["", "", f"# --- from {d.module} ({Path(rel).as_posix()}) " + "-" * 20]
        lines += ["", "", d.text] if isinstance(d.node, (ast.ClassDef, ast.FunctionDef)) else [d.text]
    entries = ",\n".join(f"    {_literal(n)}: ({q}, {_literal(k)})" for n, (q, k) in table.items())
    lines += ["", "", "default_registry = OpRegistry({\n" + entries + ",\n})" if entries
              else "default_registry = OpRegistry({})", "", _LOADER.rstrip("\n"), ""]
    return "\n".join(lines)


def load_generated(path: str | Path, name: str = "hadanas_generated_model") -> ModuleType:
    """Import a generated ``model.py`` under ``name`` (not added to ``sys.modules``)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(name, str(path))
    if spec is None or spec.loader is None:  # pragma: no cover - a plain .py path
        raise ExportGap(f"cannot import '{path}'.")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
