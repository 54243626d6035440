"""The layers of the house (docs/architecture.md), enforced on the import graph of ``hadcore``.

Every import counts, the lazy ones inside functions too (they run, just later), and so do the reader modules the
product dispatch loads by name; imports under ``if TYPE_CHECKING:`` (annotations only) do not. The registry is
the exception by design: it is the lookup a plugin system needs (name -> class, like the entry points of
third-party detectors), below the detectors so that a composite detector (the ensemble) can look its members
up; the modules it names are checked to be detectors instead.

* every module of the package belongs to exactly one layer (a new module must be placed);
* a module imports only from its own layer or lower ones;
* no import circle, within a layer either;
* detectors import nothing of the engine, io, products or scene (they see blocks, not files or executors);
* inside the engine, its modules import only those listed before them (source, plan, blocks, passes, then
  the executors, then the entry point).
"""

from __future__ import annotations

import ast
import fnmatch
from pathlib import Path
from typing import Dict, List, Set

import pytest

PKG = Path(__file__).resolve().parents[1] / "hadcore"

#: lowest first; a module may import from its own layer and the ones above it in this list
LAYERS: List[tuple] = [
    ("foundation", ["hadcore._version", "hadcore.errors", "hadcore.threads", "hadcore.params", "hadcore.progress", "hadcore.linalg",
                    "hadcore.stats", "hadcore.metrics", "hadcore.threshold", "hadcore.components",
                    "hadcore.synthetic", "hadcore.bands", "hadcore.resample", "hadcore.targets", "hadcore.cube",
                    "hadcore.context"]),
    ("engine", ["hadcore.engine", "hadcore.engine.*"]),
    ("contract", ["hadcore.base", "hadcore.registry"]),
    ("detectors", ["hadcore.detectors", "hadcore.detectors.*"]),
    ("io", ["hadcore.io", "hadcore.io.*", "hadcore.tags"]),
    ("products", ["hadcore.products", "hadcore.products.*"]),
    ("scene", ["hadcore.scene"]),
    ("application", ["hadcore", "hadcore.api", "hadcore.library", "hadcore.spectra", "hadcore.vectorize", "hadcore.benchmark", "hadcore.plots",
                     "hadcore.testing", "hadcore.distributed"]),
]

#: the engine's own order (each may import only those before it)
ENGINE_ORDER = ["hadcore.engine.source", "hadcore.engine.plan", "hadcore.engine.blocks", "hadcore.engine.passes",
                "hadcore.engine.local", "hadcore.engine.cluster", "hadcore.engine.lazy", "hadcore.engine.entry",
                "hadcore.engine"]
#: the executors and the run entry are peers of nothing below them: cluster and lazy may not import each other
ENGINE_PEERS = {("hadcore.engine.lazy", "hadcore.engine.cluster")}  # lazy asks cluster for a worker's budget

DETECTORS_NEVER = ("hadcore.engine", "hadcore.io", "hadcore.products", "hadcore.scene", "hadcore.api",
                   "hadcore.tags", "hadcore.vectorize")


def _modules() -> Dict[str, Path]:
    mods = {}
    for p in PKG.rglob("*.py"):
        parts = list(p.relative_to(PKG.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        mods[".".join(parts)] = p
    return mods


def _resolve(mod: str, is_pkg: bool, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    base = mod.split(".") if is_pkg else mod.split(".")[:-1]
    base = base[:len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


#: package-internal imports that name no module (filled by import_graph)
UNRESOLVED: Set[str] = set()


def import_graph() -> Dict[str, Set[str]]:
    mods = _modules()
    graph: Dict[str, Set[str]] = {}
    for mod, path in mods.items():
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):  # annotations only: not an import at run time
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
                node.body = []
        out: Set[str] = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                out.update(a.name for a in node.names)
            elif isinstance(node, ast.ImportFrom):
                target = _resolve(mod, path.name == "__init__.py", node)
                for a in node.names:
                    full = f"{target}.{a.name}"
                    out.add(full if full in mods else target)
            elif (isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", None)) == "import_module"
                  and node.args and isinstance(node.args[0], ast.Constant)):
                out.add(str(node.args[0].value))
        graph[mod] = {t for t in out if t in mods and t != mod}
        UNRESOLVED.update(f"{mod} imports {t}" for t in out if (t == "hadcore" or t.startswith("hadcore."))
                          and t not in mods)
    # modules loaded by name: the product readers
    import hadcore.products as products

    graph["hadcore.products"] |= {f"hadcore.products.{m}" for m in products.READER_MODULES}
    return graph


def layer_of(mod: str) -> int:
    hits = [i for i, (_, pats) in enumerate(LAYERS) if any(fnmatch.fnmatchcase(mod, p) for p in pats)]
    assert len(hits) == 1, f"{mod} belongs to {len(hits)} layers: place it in tests/test_architecture.py LAYERS"
    return hits[0]


@pytest.fixture(scope="module")
def graph():
    return import_graph()


def test_every_module_has_one_layer(graph):
    for mod in graph:
        layer_of(mod)


def test_no_import_from_a_lower_layer_to_a_higher_one(graph):
    bad = [f"{a} ({LAYERS[layer_of(a)][0]}) imports {b} ({LAYERS[layer_of(b)][0]})"
           for a, targets in graph.items() for b in targets if layer_of(b) > layer_of(a)]
    assert not bad, "\n".join(sorted(bad))


def _cycles(graph: Dict[str, Set[str]]) -> List[List[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index: Dict[str, int] = {}
    low: Dict[str, int] = {}
    stack: List[str] = []
    on: Set[str] = set()
    out: List[List[str]] = []
    counter = 0
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on.add(root)
        while work:
            v, it = work[-1]
            for w in it:
                if w not in index:
                    index[w] = low[w] = counter
                    counter += 1
                    stack.append(w)
                    on.add(w)
                    work.append((w, iter(sorted(graph[w]))))
                    break
                if w in on:
                    low[v] = min(low[v], index[w])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[v])
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
    return out


def test_every_internal_import_names_a_module(graph):
    """A lazy import of a module that moved fails only when its function runs: catch it here."""
    assert not UNRESOLVED, "\n".join(sorted(UNRESOLVED))


def test_no_import_circle(graph):
    assert _cycles(graph) == []


def test_cycle_finder_finds_a_circle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_the_registry_names_detector_modules_only(graph):
    from hadcore import registry

    for name, target in registry._BUILTIN.items():
        module = target.partition(":")[0]
        assert module in graph and LAYERS[layer_of(module)][0] == "detectors", (name, module)


def test_detectors_see_blocks_not_files_or_executors(graph):
    bad = [f"{a} imports {b}" for a, targets in graph.items()
           if a.startswith("hadcore.detectors") for b in targets
           if any(b == n or b.startswith(n + ".") for n in DETECTORS_NEVER)]
    assert not bad, "\n".join(sorted(bad))


def test_engine_modules_import_only_those_before_them(graph):
    pos = {m: i for i, m in enumerate(ENGINE_ORDER)}
    assert set(pos) == {m for m in graph if m == "hadcore.engine" or m.startswith("hadcore.engine.")}
    bad = [f"{a} imports {b}" for a in ENGINE_ORDER for b in graph[a]
           if b in pos and pos[b] >= pos[a] and (a, b) not in ENGINE_PEERS]
    assert not bad, "\n".join(bad)


def test_the_rule_sees_lazy_imports(tmp_path):
    """A lazy import inside a function is an edge; a TYPE_CHECKING one is not (checked on real modules)."""
    g = import_graph()
    assert "hadcore.detectors.kdad_nets" in g["hadcore.detectors.kdad"]  # imported inside a method
    assert "hadcore.base" not in g["hadcore.engine.plan"]  # annotations only


def test_docs_architecture_lists_the_layers_in_order():
    """docs/architecture.md draws the layers top (application) to bottom (foundation): the same names, in the
    order of LAYERS (the page and the rule cannot drift apart)."""
    text = (PKG.parent / "docs" / "architecture.md").read_text(encoding="utf-8")
    drawn = [line.split()[1] for line in text.splitlines() if line.startswith(" │ ") and len(line.split()) > 1
             and line.split()[1] in {name for name, _ in LAYERS}]
    assert drawn == [name for name, _ in reversed(LAYERS)]
    assert "tests/test_architecture.py" in text
