"""Every third-party module the project imports comes from a requirement it declares.

A module that is installed only because some other package happens to pull it in (click
through an old typer) works on the developer's machine and breaks on a new user's. The check
reads the imports of every file in streamcam/, tests/ and scripts/ with `ast`, maps each
top-level module to its distributions with importlib.metadata.packages_distributions(), and
compares them with the requirements in the installed metadata of streamcam itself:
- streamcam/ may use core requirements, and extras for optional features;
- tests/ may use core requirements and the `test` extra (what the README installs);
- scripts/ may use any declared requirement.
"""

from __future__ import annotations

import ast
import importlib.metadata as md
import re
import sys
from pathlib import Path

import pytest

from conftest import REPO

_MARKER_EXTRA = re.compile(r"""extra\s*==\s*["']([^"']+)["']""")


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def declared_requirements() -> dict[str, set[str]]:
    """{normalised distribution name: extras it belongs to ('' = core)} from streamcam's metadata."""
    found: dict[str, set[str]] = {}
    for line in md.requires("streamcam") or []:
        name = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", line).group(1)
        marker = _MARKER_EXTRA.search(line)
        found.setdefault(_normalise(name), set()).add(marker.group(1) if marker else "")
    return found


def imported_modules(path: Path) -> set[str]:
    """Top-level names of the absolute imports in one file (relative imports are the package's own)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def _local_modules(folder: Path) -> set[str]:
    """Sibling modules a file in `folder` imports by name (tests' conftest/videos, the package itself)."""
    return {p.stem for p in folder.glob("*.py")} | {p.name for p in folder.iterdir() if (p / "__init__.py").exists()}


def third_party_imports(folder: Path) -> dict[str, list[str]]:
    """{module: [files importing it]} for every file under folder, leaving out stdlib and local modules."""
    local = _local_modules(folder) | {"streamcam"}
    if folder.name == "scripts":  # scripts may reuse the tests' helpers (scripts/live_bench.py: the stream sources)
        local |= _local_modules(folder.parent / "tests")
    found: dict[str, list[str]] = {}
    for path in sorted(folder.rglob("*.py")):
        for module in imported_modules(path) - local - set(sys.stdlib_module_names):
            found.setdefault(module, []).append(path.name)
    return found


def undeclared(folder: Path, allowed_extras: set[str] | None) -> list[str]:
    """Problems for one folder; allowed_extras None means any extra will do."""
    declared = declared_requirements()
    providers = md.packages_distributions()
    problems = []
    for module, files in third_party_imports(folder).items():
        # A module that is not installed here (torch for a side script) must be named by a requirement itself.
        dists = {_normalise(d) for d in providers.get(module, [module])}
        extras = set().union(*(declared.get(d, set()) for d in dists))
        ok = bool(extras) if allowed_extras is None else bool(extras & ({""} | allowed_extras))
        if not ok:
            where = f"declared only in extras {sorted(extras)}" if extras else "not declared"
            problems.append(f"{module} (from {', '.join(sorted(dists))}; {where}) imported by {files[0]}")
    return problems


@pytest.mark.parametrize(("folder", "extras"), [("streamcam", None), ("tests", {"test"}), ("scripts", None)])
def test_every_import_is_a_declared_requirement(folder, extras):
    assert third_party_imports(REPO / folder)  # the scan found something to check
    assert undeclared(REPO / folder, extras) == []


def test_the_check_sees_imports_and_catches_an_undeclared_one(tmp_path):
    """The check itself can fail: a file importing click (installed here, declared nowhere) is caught."""
    (tmp_path / "helper.py").write_text("X = 1\n")
    (tmp_path / "uses.py").write_text("import os\nimport numpy as np\nfrom helper import X\nfrom . import y\nimport click.core\n")
    assert imported_modules(tmp_path / "uses.py") == {"os", "numpy", "helper", "click"}
    problems = undeclared(tmp_path, {"test"})
    assert len(problems) == 1 and problems[0].startswith("click ") and "not declared" in problems[0]
    declared = declared_requirements()
    assert {"numpy", "av", "typer", "tensorflow"} <= {d for d, e in declared.items() if "" in e}
    assert "pytest" in declared and "test" in declared["pytest"]
    assert "click" not in declared
