"""The shape of the code, checked: imports point one way (rag <- ingest <- evals, ui at the edge) and there is no
import cycle, counting imports inside functions and under TYPE_CHECKING too.

    rag/     records, interfaces, the question path (Asker) and its parts; imports only rag
    ingest/  files -> collection state (Collection), the composition root (ingest.compose); imports rag, ingest
    evals/   suites, metrics, reports; imports rag, ingest, evals
    ui/      the Gradio app and the CLI; may import everything
"""

from __future__ import annotations

import ast
from pathlib import Path

from tests.conftest import REPO

PACKAGES = ("rag", "ingest", "evals", "ui")
ALLOWED = {"rag": {"rag"}, "ingest": {"rag", "ingest"}, "evals": {"rag", "ingest", "evals"},
           "ui": {"rag", "ingest", "evals", "ui"}}


def import_graph(root: Path = REPO) -> dict[str, set[str]]:
    """module -> the project modules it imports (anywhere in the file)."""
    mods: dict[str, Path] = {}
    for pkg in PACKAGES:
        for f in (root / pkg).rglob("*.py"):
            name = ".".join(f.relative_to(root).with_suffix("").parts).removesuffix(".__init__")
            mods[name] = f
    graph: dict[str, set[str]] = {m: set() for m in mods}
    for m, f in mods.items():
        for node in ast.walk(ast.parse(f.read_text(encoding="utf-8"))):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module, *(f"{node.module}.{a.name}" for a in node.names)]
            for n in names:
                while n and n not in mods:
                    n = n.rpartition(".")[0]
                if n and n != m:
                    graph[m].add(n)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_no_import_cycles() -> None:
    assert cycles(import_graph()) == []


def test_imports_point_one_way() -> None:
    wrong = sorted(
        f"{a} -> {b}" for a, deps in import_graph().items() for b in deps
        if b.split(".")[0] not in ALLOWED[a.split(".")[0]]
    )
    assert wrong == [], "rag imports only rag; ingest only rag and ingest; evals not ui"


def test_the_checker_sees_cycles_and_wrong_imports() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []
