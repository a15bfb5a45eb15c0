"""Rules of the layout that a review would otherwise have to keep: read from the source, so a new copy fails here.

- A private name (``_x``, or a module ``_x``) is imported only from inside the package that holds it: what another
  package needs is made public there.
- A topic's name is written only in ``schemas/topics.py``; everything else refers to it by its constant.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

from schemas import topics

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("schemas", "plumbing", "providers", "services", "warden")
SCANNED = (*PACKAGES, "bench")
TOPIC_NAMES = frozenset(value for name, value in vars(topics).items() if name.isupper() and isinstance(value, str))


def _sources() -> Iterator[Path]:
    for top in SCANNED:
        yield from sorted(p for p in (ROOT / top).rglob("*.py") if ".venv" not in p.parts)


def _module_of(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _package_of(path: Path) -> str:
    """The package a source file belongs to (a package's ``__init__`` belongs to that package)."""
    return ".".join(path.relative_to(ROOT).parent.parts)


def _private(segment: str) -> bool:
    return segment.startswith("_") and not segment.startswith("__")


def _owner(dotted: str) -> str | None:
    """The package that holds the first private segment of ``a.b._c.d``: ``a.b`` when that is a package, ``a`` when
    it is a module (its siblings may share its private helpers); None when nothing is private."""
    parts = dotted.split(".")
    for i, segment in enumerate(parts):
        if _private(segment):
            holder = parts[:i]
            return ".".join(holder if ROOT.joinpath(*holder).is_dir() else holder[:-1])
    return None


def _inside(package: str, owner: str) -> bool:
    return package == owner or package.startswith(owner + ".")


def _resolve(path: Path, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    base = _package_of(path).split(".")
    base = base[: len(base) - (node.level - 1)]
    return ".".join([*base, *([node.module] if node.module else [])])


def private_imports(path: Path, tree: ast.AST) -> list[str]:
    """Each import of a first-party private name or module from outside the package that holds it."""
    package = _package_of(path)
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            module = _resolve(path, node)
            targets = [f"{module}.{alias.name}" for alias in node.names]
        elif isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        else:
            continue
        for target in targets:
            if target.split(".")[0] not in PACKAGES:
                continue  # a third-party module's privates are its own business
            owner = _owner(target)
            if owner is not None and not _inside(package, owner):
                found.append(f"{path.relative_to(ROOT)}:{node.lineno} imports {target}")
    return found


def topic_literals(path: Path, tree: ast.AST) -> list[str]:
    if path == ROOT / "schemas" / "topics.py":
        return []
    return [
        f"{path.relative_to(ROOT)}:{node.lineno} writes {node.value!r}"
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value in TOPIC_NAMES
    ]


@pytest.fixture(scope="module")
def trees() -> list[tuple[Path, ast.AST]]:
    return [(path, ast.parse(path.read_text(), str(path))) for path in _sources()]


def test_the_scan_reads_every_package(trees) -> None:
    read = {path.relative_to(ROOT).parts[0] for path, _ in trees}
    assert read == set(SCANNED)
    assert {"services.ingress.app", "bench.guard_eval", "schemas.topics"} <= {_module_of(p) for p, _ in trees}


def test_no_package_imports_another_packages_private_names(trees) -> None:
    assert [found for path, tree in trees for found in private_imports(path, tree)] == []


def test_topic_names_are_written_only_in_schemas_topics(trees) -> None:
    assert [found for path, tree in trees for found in topic_literals(path, tree)] == []


@pytest.mark.parametrize(
    ("where", "source", "offending"),
    [
        ("bench/x.py", "from services.guard.detectors import _detect_cached", True),
        ("bench/x.py", "from services.guard.detectors.pii import find_pii", False),
        ("services/console/x.py", "from services.ingress._private import thing", True),
        ("services/console/x.py", "import services.ingress._private", True),
        ("services/guard/x.py", "from services.guard.detectors._hits import Hit", True),
        ("services/guard/detectors/x.py", "from services.guard.detectors._hits import Hit", False),
        ("services/guard/detectors/x.py", "from ._hits import Hit", False),
        ("services/guard/detectors/x.py", "from services.guard.detectors.pii import _valid_phone", False),
        ("services/guard/x.py", "from services.guard.detectors.pii import _valid_phone", True),
        ("services/detection/x.py", "from re import _parser", False),
        ("services/detection/x.py", "from schemas.events import __doc__", False),
    ],
)
def test_the_private_import_rule(where: str, source: str, offending: bool) -> None:
    assert bool(private_imports(ROOT / where, ast.parse(source))) is offending


def test_the_topic_rule() -> None:
    assert topic_literals(ROOT / "bench/x.py", ast.parse('bus.publish("llm.requests", key, event)'))
    assert topic_literals(ROOT / "bench/x.py", ast.parse(f"PROFILES = {topics.PROFILES!r}"))
    assert not topic_literals(ROOT / "bench/x.py", ast.parse('"""Read from ``llm.requests``."""'))
    assert not topic_literals(ROOT / "bench/x.py", ast.parse("bus.publish(topics.REQUESTS, key, event)"))
