"""The package's shape: folders are layers, imports point down, no cycles, no private imports, small modules.

Layers, lowest first (a module may import its own folder and any lower layer, never a higher one):

    models, quantisers  ->  weights  ->  engine  ->  frames  ->  video  ->  training  ->  apps, vapoursynth

``vsjpegfix/__init__.py`` (the public API) and ``__main__.py`` sit on top. Function-level (lazy)
imports count as imports. Run ``python -m pytest -q tests/test_layers.py`` after moving code.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "vsjpegfix"
SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"
RANK = {"models": 0, "quantisers": 0, "weights": 1, "engine": 2, "frames": 3, "video": 4, "training": 5, "apps": 6, "vapoursynth": 6}
MAX_MODULE_LINES = 400
MAX_SCRIPT_LINES = 200


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def imports(name: str, path: Path) -> list[tuple[str, list[str]]]:
    """``(imported module, names taken from it)`` for every import in the module, lazy ones included."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(a.name, []) for a in node.names if a.name.split(".")[0] == "vsjpegfix"]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] == "vsjpegfix":
                found.append((target, [a.name for a in node.names]))
    return found


def layer(name: str) -> str | None:
    parts = name.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in RANK else None


def resolve(target: str, names: list[str], known: dict[str, Path]) -> list[str]:
    """The package modules an import refers to (``from vsjpegfix.weights import download`` is the module)."""
    out = [target] if target in known else []
    out += [f"{target}.{n}" for n in names if f"{target}.{n}" in known]
    return out


def graph() -> dict[str, set[str]]:
    known = modules()
    return {name: {m for t, ns in imports(name, path) for m in resolve(t, ns, known) if m != name} for name, path in known.items()}


def test_every_module_is_in_a_layer_folder():
    loose = [n for n in modules() if layer(n) is None and n not in ("vsjpegfix", "vsjpegfix.__main__", "vsjpegfix._shipped")]
    assert not loose, f"modules outside the layer folders: {loose}"


def test_imports_point_down():
    wrong = []
    for name, targets in graph().items():
        mine = layer(name)
        for t in targets:
            theirs = layer(t)
            if mine is None or theirs is None or theirs == mine:
                continue
            if RANK[theirs] >= RANK[mine]:
                wrong.append(f"{name} -> {t}")
            if t == "vsjpegfix" and mine is not None:  # only __version__ may come from the top
                pass
    assert not wrong, "imports that point up or sideways:\n" + "\n".join(wrong)


def test_no_import_cycles():
    g = graph()
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:  # Tarjan's strongly connected components
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in g.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for v in sorted(g):
        if v not in index:
            visit(v)
    # a package's __init__ re-exporting its own modules is not a cycle of behaviour
    cycles = [c for c in cycles if not (len(c) == 2 and any(m == c[0].rsplit(".", 1)[0] or m == c[1].rsplit(".", 1)[0] for m in c))]
    assert not cycles, f"import cycles: {cycles}"


def test_no_private_names_are_imported_from_other_modules():
    known = modules()
    wrong = [f"{name}: from {t} import {n}" for name, path in known.items() for t, ns in imports(name, path) for n in ns
             if n.startswith("_") and not n.startswith("__") and t != name and f"{t}.{n}" not in known]
    assert not wrong, "private helpers imported across modules (make them public in the lower module):\n" + "\n".join(wrong)


@pytest.mark.parametrize("path", sorted(PACKAGE.rglob("*.py")), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_modules_are_small(path):
    lines = len(path.read_text(encoding="utf-8").splitlines())
    assert lines <= MAX_MODULE_LINES, f"{path.relative_to(PACKAGE.parent)} has {lines} lines (at most {MAX_MODULE_LINES})"


@pytest.mark.parametrize("path", sorted(SCRIPTS.glob("*.py")), ids=lambda p: p.name)
def test_scripts_are_thin(path):
    """``scripts/*.py`` parse options and print; the work lives in the package (mostly ``vsjpegfix/training``)."""
    lines = len(path.read_text(encoding="utf-8").splitlines())
    assert lines <= MAX_SCRIPT_LINES, f"scripts/{path.name} has {lines} lines (at most {MAX_SCRIPT_LINES})"


def test_the_runtime_never_imports_training_code():
    runtime = ("engine", "frames", "video", "apps", "vapoursynth", "weights", "models", "quantisers")
    wrong = [f"{n} -> {t}" for n, ts in graph().items() if layer(n) in runtime for t in ts if layer(t) == "training"]
    assert not wrong, "\n".join(wrong)


def test_every_imported_name_exists():
    """``from vsjpegfix.x import name`` in the package, the scripts and the tests: each name is defined there."""
    import importlib

    root = PACKAGE.parent
    missing = []
    for path in [*PACKAGE.rglob("*.py"), *SCRIPTS.glob("*.py"), *(root / "tests").rglob("*.py")]:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not (isinstance(node, ast.ImportFrom) and not node.level and (node.module or "").startswith("vsjpegfix")):
                continue
            module = importlib.import_module(node.module)
            for alias in node.names:
                if not hasattr(module, alias.name):
                    try:
                        importlib.import_module(f"{node.module}.{alias.name}")
                    except ImportError:
                        missing.append(f"{path.relative_to(root)}: from {node.module} import {alias.name}")
    assert not missing, "\n".join(missing)


@pytest.mark.parametrize("path", sorted(PACKAGE.rglob("*.py")), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_function_or_class_is_defined_twice(path):
    """A second top-level ``def``/``class`` of a name silently replaces the first (a merge left both)."""
    seen: dict[str, int] = {}
    twice = []
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            if node.name in seen:
                twice.append(f"{node.name} (lines {seen[node.name]} and {node.lineno})")
            seen[node.name] = node.lineno
    assert not twice, f"{path.relative_to(PACKAGE.parent)} defines twice: {', '.join(twice)}"
