"""Dependencies point one way: graphonc's parts import only downward in the order of
docs/developer.md ("Layering"), and no two parts import each other (directly or round a cycle).

The graph is read from the source with ``ast`` (every ``import`` and ``from … import``, including
those inside functions: a lazy import is still a dependency). A *part* is a subpackage
(``graphonc.model``) or a top-level module (``graphonc.config``); a few modules are placed on
their own (:data:`MODULE_PARTS`).
"""
from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "graphonc"

#: Bottom to top: a part may import parts of its own layer or of layers below it. Keep in step
#: with docs/developer.md.
LAYERS: list[tuple[str, set[str]]] = [
    ("foundation", {"graphonc", "errors", "validation", "progress", "secret_file", "threads", "text", "identifiers",
                    "paths", "layout"}),
    ("config and plots", {"config", "radiomics_config", "model_config", "plots"}),
    ("ingest", {"ingest"}),
    ("graph", {"graph"}),
    ("modalities", {"radiomics"}),
    ("store", {"store"}),
    ("model", {"model"}),
    ("search", {"search"}),
    ("report and export", {"report", "export", "export_network"}),
    ("api", {"api"}),
    ("cli and serve", {"cli", "cli_common", "cli_radiomics", "serve"}),
]

#: Modules that belong to another layer than their package (none today: the `graphonc radiomics`
#: command group moved out of the radiomics package into cli_radiomics.py).
MODULE_PARTS: dict[str, str] = {}

#: Imports that break the order today, (importing module, imported module) → why, and what removes
#: it. An entry whose importing module exists but no longer imports the other fails
#: test_each_exception_is_still_needed, so the list cannot go stale; an entry naming a module this
#: tree does not have (yet) is skipped there.
EXCEPTIONS: dict[tuple[str, str], str] = {
}


def part_of(module: str) -> str:
    if module in MODULE_PARTS:
        return MODULE_PARTS[module]
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports() -> list[tuple[str, str, str]]:
    """(importing module, imported graphonc module, "file:line") for every import in the package."""
    out = []
    for path in sorted(PACKAGE.rglob("*.py")):
        mod = module_name(path)
        package = mod if path.name == "__init__.py" else mod.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:  # relative: resolved against the importing package
                    base = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base_mod = ".".join(base + ([node.module] if node.module else []))
                else:
                    base_mod = node.module or ""
                # `from graphonc.pkg import mod` names the module graphonc.pkg.mod when that is a listed module
                targets = [f"{base_mod}.{a.name}" if f"{base_mod}.{a.name}" in MODULE_PARTS else base_mod
                           for a in node.names]
            else:
                continue
            where = f"{path.relative_to(PACKAGE.parent)}:{node.lineno}"
            out += [(mod, t, where) for t in targets if t == "graphonc" or t.startswith("graphonc.")]
    return out


def part_edges() -> dict[tuple[str, str], list[str]]:
    """(importing part, imported part) → where, for imports between parts, less the listed exceptions."""
    edges: dict[tuple[str, str], list[str]] = defaultdict(list)
    for src, dst, where in imports():
        a, b = part_of(src), part_of(dst)
        if a != b and (src, dst) not in EXCEPTIONS:
            edges[(a, b)].append(where)
    return edges


LAYER_OF = {part: i for i, (_, parts) in enumerate(LAYERS) for part in parts}


def test_every_part_has_a_layer():
    parts = {part_of(module_name(p)) for p in PACKAGE.rglob("*.py")}
    missing = sorted(parts - set(LAYER_OF))
    assert not missing, (f"place {missing} in LAYERS (tests/test_layering.py) and in the layering list of "
                         "docs/developer.md")


def test_parts_import_only_downward():
    upward = [f"{a} ({LAYERS[LAYER_OF[a]][0]}) imports {b} ({LAYERS[LAYER_OF[b]][0]}) at {', '.join(w)}"
              for (a, b), w in sorted(part_edges().items())
              if a in LAYER_OF and b in LAYER_OF and LAYER_OF[b] > LAYER_OF[a]]
    assert not upward, "imports against the layer order:\n" + "\n".join(upward)


def test_no_import_cycles_between_parts():
    graph: dict[str, set[str]] = defaultdict(set)
    for a, b in part_edges():
        graph[a].add(b)
    # Tarjan's strongly connected components: any with more than one part is a cycle
    index, low, on_stack, stack, cycles, counter = {}, {}, set(), [], [], [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.add(w)
                if w == v:
                    break
            if len(comp) > 1:
                cycles.append(sorted(comp))

    for v in list(graph):
        if v not in index:
            visit(v)
    assert not cycles, f"import cycles between parts: {cycles}"


def test_each_exception_is_still_needed():
    modules = {module_name(p) for p in PACKAGE.rglob("*.py")}
    found = {(src, dst) for src, dst, _ in imports()}
    stale = [pair for pair in EXCEPTIONS if set(pair) <= modules and pair not in found]
    assert not stale, f"these imports are gone: remove them from EXCEPTIONS: {stale}"


def test_the_checker_sees_lazy_imports_and_places_modules():
    """The reader itself: an import inside a function counts, and listed modules get their own part."""
    found = {(src, dst) for src, dst, _ in imports()}
    assert ("graphonc.search.similar", "graphonc.model.embed") in found  # lazy, inside similar_new_patients
    assert ("graphonc.cli", "graphonc.cli_radiomics") in found
    assert part_of("graphonc.cli_radiomics") == "cli_radiomics" and part_of("graphonc.model.gnn") == "model"
    assert part_of("graphonc") == "graphonc" and part_of("graphonc.errors") == "errors"
