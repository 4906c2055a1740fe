"""The package's imports flow one way, and no module imports itself back through others.

Every import in streamcam/ (deferred imports inside functions included: they are dependencies
all the same) is read with `ast`. Two rules:
- no cycle between modules;
- a module imports only from its own part of the package or from a layer below its own
  (LAYERS, top first; parts on one line are peers and import neither each other).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from conftest import REPO

# The layers, top first. The one place they are written.
LAYERS = (
    ("__main__",),  # python -m streamcam
    ("cli", "__init__"),  # the command line | the public API (streamcam/__init__.py re-exports lazily)
    ("apps",),  # one module or package per command
    ("outputs",),  # drawing, files, pictures, the review page, the shared run sinks
    ("explain", "video"),  # the engine and CAM methods | decoding and encoding
    ("models",),  # classifiers and their weights
    ("backends",),  # which Keras (TensorFlow or JAX); models need the choice made before they load
    ("core",),  # frames, pipeline, errors, labels, paths, preprocessing, progress
)


def module_name(path: Path, root: Path) -> tuple[str, bool]:
    """('streamcam.apps.live.session', False) for a file; packages are named by their folder."""
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        return ".".join(parts[:-1]), True
    return ".".join(parts), False


def imports_of(path: Path, root: Path, modules: set[str]) -> set[str]:
    """The package's own modules one file imports (a name imported from a package counts as its
    submodule when it is one)."""
    name, is_package = module_name(path, root)
    package = name if is_package else name.rsplit(".", 1)[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            for alias in node.names:
                found.add(f"{target}.{alias.name}" if f"{target}.{alias.name}" in modules else target)
    return {m for m in found if m in modules and m != name}


def import_graph(root: Path) -> dict[str, set[str]]:
    files = sorted(root.rglob("*.py"))
    modules = {module_name(p, root)[0] for p in files}
    return {module_name(p, root)[0]: imports_of(p, root, modules) for p in files}


def part_of(module: str) -> str:
    """The part a module belongs to: 'streamcam.apps.live.session' -> 'apps', 'streamcam' -> '__init__'."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def layer_of(part: str) -> int:
    for rank, names in enumerate(LAYERS):
        if part in names:
            return rank
    raise AssertionError(f"streamcam.{part} is in no layer: add it to LAYERS in {Path(__file__).name}")


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Each strongly connected group of two or more modules (Tarjan), as a sorted list."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def layer_violations(graph: dict[str, set[str]]) -> list[str]:
    problems = []
    for module, targets in sorted(graph.items()):
        here = part_of(module)
        for target in sorted(targets):
            there = part_of(target)
            if there != here and layer_of(there) <= layer_of(here):
                problems.append(f"{module} imports {target}: {there} is not below {here}")
    return problems


def test_the_package_has_no_import_cycle():
    graph = import_graph(REPO / "streamcam")
    assert len(graph) > 50  # the walk found the package
    assert cycles(graph) == []


def test_imports_flow_down_the_layers():
    graph = import_graph(REPO / "streamcam")
    assert {part_of(m) for m in graph} == {p for names in LAYERS for p in names}  # every part is placed
    assert layer_violations(graph) == []


def _write(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / "streamcam" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root / "streamcam"


def test_the_checks_catch_a_cycle_and_an_upward_import(tmp_path):
    """The checks can fail: a deferred import back up (models -> explain) closes a cycle and breaks the layers."""
    root = _write(
        tmp_path,
        {
            "__init__.py": "",
            "core/__init__.py": "",
            "core/errors.py": "import os\n",
            "models/__init__.py": "def load():\n    from streamcam.explain import engine\n",
            "explain/__init__.py": "",
            "explain/engine.py": "from streamcam.models import load\nfrom ..core.errors import X\n",
        },
    )
    graph = import_graph(root)
    assert graph["streamcam.explain.engine"] == {"streamcam.models", "streamcam.core.errors"}
    assert graph["streamcam.models"] == {"streamcam.explain.engine"}
    assert cycles(graph) == [["streamcam.explain.engine", "streamcam.models"]]
    assert layer_violations(graph) == ["streamcam.models imports streamcam.explain.engine: explain is not below models"]


def test_peers_in_one_layer_do_not_import_each_other(tmp_path):
    root = _write(
        tmp_path,
        {
            "__init__.py": "",
            "video/__init__.py": "",
            "video/source.py": "from streamcam.explain import tiling\n",
            "explain/__init__.py": "",
            "explain/tiling.py": "",
        },
    )
    assert layer_violations(import_graph(root)) == ["streamcam.video.source imports streamcam.explain.tiling: explain is not below video"]


def test_a_part_outside_the_layers_is_named():
    with pytest.raises(AssertionError, match=r"streamcam\.plugins is in no layer"):
        layer_of("plugins")


def script_imports(folder: Path) -> dict[str, set[str]]:
    """{script: the other modules of `folder` it imports by name}."""
    local = {p.stem for p in folder.glob("*.py")}
    found = {}
    for path in sorted(folder.glob("*.py")):
        names = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
            if isinstance(node, ast.Import):
                names.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
        found[path.stem] = (names & local) - {path.stem}
    return found


SHARED_SCRIPT_MODULES = {"benchlib"}  # what the benchmark scripts share; it imports no script itself


def test_no_script_imports_another_script():
    imports = script_imports(REPO / "scripts")
    assert imports["benchlib"] == set()
    assert {script: names - SHARED_SCRIPT_MODULES for script, names in imports.items() if names - SHARED_SCRIPT_MODULES} == {}
    assert {s for s, names in imports.items() if "benchlib" in names} >= {
        "bench",
        "pipeline_bench",
        "backend_bench",
        "batch_bench",
        "live_bench",
    }


def test_the_script_check_catches_one_script_importing_another(tmp_path):
    (tmp_path / "bench.py").write_text("import pipeline_bench\nfrom benchlib import timed\n")
    (tmp_path / "pipeline_bench.py").write_text("from bench import make_clip\n")
    (tmp_path / "benchlib.py").write_text("import numpy\n")
    assert script_imports(tmp_path) == {"bench": {"pipeline_bench", "benchlib"}, "pipeline_bench": {"bench"}, "benchlib": set()}
