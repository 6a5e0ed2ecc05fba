"""The layout holds: no two modules of rag/ import each other (directly or round a loop), and no
module imports from a higher layer.  Every import counts, also one inside a function or under
``TYPE_CHECKING``: a loop through a lazy import is still a loop in the design.

Layers, lowest first (a module imports from its own layer or below):

0. ``rag`` itself, errors, config, models, text, spans, prompts
1. adapters
2. indexing, answering (which never import each other: they meet in the runtime and front ends)
3. runtime, evaluation, feedback (marks on answers: store, export)
4. api, cli, mcp (the MCP server: the API's services for agents), integrations (rag used
   from other frameworks)
"""

from __future__ import annotations

import ast
from pathlib import Path

RAG = Path(__file__).resolve().parents[1] / "rag"

BASE = {"rag", "rag.errors", "rag.config", "rag.models", "rag.text", "rag.spans", "rag.prompts"}
PARTS = [  # (prefix, layer)
    ("rag.adapters", 1),
    ("rag.indexing", 2),
    ("rag.answering", 2),
    ("rag.runtime", 3),
    ("rag.evaluation", 3),
    ("rag.feedback", 3),
    ("rag.api", 4),
    ("rag.cli", 4),
    ("rag.mcp", 4),
    ("rag.integrations", 4),
]
APART = {("rag.indexing", "rag.answering"), ("rag.answering", "rag.indexing")}


def modules(root: Path = RAG) -> dict[str, Path]:
    out = {}
    for path in sorted(root.rglob("*.py")):
        parts = ("rag", *path.relative_to(root).with_suffix("").parts)
        name = ".".join(parts).removesuffix(".__init__")
        out[name] = path
    return out


def imports(mods: dict[str, Path]) -> dict[str, set[str]]:
    """Which modules of rag/ each module imports (``from a import b`` counts a.b if a module)."""
    graph: dict[str, set[str]] = {m: set() for m in mods}
    for name, path in mods.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join([*anchor, base] if base else anchor)
                targets = [base, *(f"{base}.{a.name}" for a in node.names)]
            graph[name] |= {t for t in targets if t in mods and t != name}
    return graph


def part(module: str) -> tuple[str, int]:
    if module in BASE:
        return module, 0
    for prefix, layer in PARTS:
        if module == prefix or module.startswith(prefix + "."):
            return prefix, layer
    raise AssertionError(f"{module} belongs to no layer: add it to tests/test_layout.py")


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Groups of modules that import each other round a loop (Tarjan's components)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def violations(graph: dict[str, set[str]]) -> list[str]:
    out = []
    for src, targets in sorted(graph.items()):
        src_part, src_layer = part(src)
        for dst in sorted(targets):
            dst_part, dst_layer = part(dst)
            if dst_layer > src_layer:
                out.append(f"{src} (layer {src_layer}) imports {dst} (layer {dst_layer})")
            elif (src_part, dst_part) in APART:
                out.append(f"{src} imports {dst}: indexing and answering stay apart")
    return out


def test_every_module_has_a_layer() -> None:
    mods = modules()
    assert "rag.runtime" in mods and "rag.adapters.store" in mods  # the walk finds the package
    for name in mods:
        part(name)


def test_no_import_loops() -> None:
    loops = cycles(imports(modules()))
    assert not loops, "import loops:\n" + "\n".join(" <-> ".join(c) for c in loops)


def test_no_import_points_up_a_layer() -> None:
    bad = violations(imports(modules()))
    assert not bad, "\n".join(bad)


def test_the_checks_see_a_loop_and_an_upward_import(tmp_path: Path) -> None:
    """The walk itself: a made-up package with a loop and an upward import is caught."""
    root = tmp_path / "rag"
    (root / "adapters").mkdir(parents=True)
    (root / "indexing").mkdir()
    (root / "__init__.py").write_text("")
    (root / "adapters" / "__init__.py").write_text("")
    (root / "indexing" / "__init__.py").write_text("")
    (root / "adapters" / "a.py").write_text("from rag.indexing import b\n")
    (root / "indexing" / "b.py").write_text("def f():\n    from ..adapters.a import x\n")
    graph = imports(modules(root))
    assert graph["rag.adapters.a"] == {"rag.indexing", "rag.indexing.b"}
    assert graph["rag.indexing.b"] == {"rag.adapters.a"}
    assert cycles(graph) == [["rag.adapters.a", "rag.indexing.b"]]
    assert violations(graph) == [
        "rag.adapters.a (layer 1) imports rag.indexing (layer 2)",
        "rag.adapters.a (layer 1) imports rag.indexing.b (layer 2)",
    ]


def test_every_error_rag_raises_is_in_rag_errors() -> None:
    """One documented tree: no RagError subclass is defined outside rag/errors.py, and the
    module's docstring names every class it defines."""
    mods = modules()
    tree = ast.parse(mods["rag.errors"].read_text())
    errors = {n.name for n in tree.body if isinstance(n, ast.ClassDef)}
    doc = ast.get_docstring(tree) or ""
    assert [e for e in sorted(errors) if e not in doc] == []
    outside = []
    for name, path in mods.items():
        if name == "rag.errors":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef):
                bases = {getattr(b, "id", getattr(b, "attr", "")) for b in node.bases}
                if bases & errors:
                    outside.append(f"{name}.{node.name}")
    assert outside == [], f"errors defined outside rag/errors.py: {outside}"
