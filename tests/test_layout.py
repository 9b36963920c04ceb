"""The layout of tests/: it mirrors the packages, and no module imports a test module or
a conftest (shared helpers live in tests/support, fixtures in conftest.py files)."""

from __future__ import annotations

import ast
import tomllib
from collections.abc import Iterator
from pathlib import Path

TESTS = Path(__file__).resolve().parent
REPO = TESTS.parent
#: Where test modules live besides tests/ itself and the mirror of the packages: the whole
#: path through the CLI. tests/support holds helpers, never a test module.
OWN_FOLDERS = ("e2e",)


def names_a_test_module(dotted: str) -> bool:
    """Whether `dotted` is, or is inside, a test module (test_*) or a conftest."""
    return any(part.startswith("test_") or part == "conftest" for part in dotted.split("."))


def module_of(path: Path) -> str:
    """The dotted name `path` (a .py file under the repository) is imported as."""
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imported_modules(tree: ast.AST, module: str, is_package: bool) -> Iterator[tuple[int, str]]:
    """(line, dotted name) of every import in `tree`, relative imports resolved against
    `module`: `import X` and `from X import name` yield X; `from X import name` also
    yields X.name (which may be a module) unless X is itself a test module or a conftest."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                package = module.split(".")
                package = package if is_package else package[:-1]
                package = package[: len(package) - (node.level - 1)]
                base = ".".join([*package, *([base] if base else [])])
            yield node.lineno, base
            if not names_a_test_module(base):
                for alias in node.names:
                    yield node.lineno, f"{base}.{alias.name}"


def code_in_strings(tree: ast.AST) -> Iterator[tuple[int, ast.AST]]:
    """Python source held in string constants (a script a test runs in a subprocess)."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            if "import" not in node.value:
                continue
            try:
                yield node.lineno, ast.parse(node.value)
            except SyntaxError:
                continue


def forbidden_imports(path: Path) -> list[str]:
    """`file:line imports module` for each import in `path` of a test module or a conftest."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    module = module_of(path)
    is_package = path.name == "__init__.py"
    found = set()
    for start, each in [(1, tree), *code_in_strings(tree)]:
        for line, name in imported_modules(each, module, is_package):
            if names_a_test_module(name):
                found.add((start + line - 1, name))
    return [f"{path.relative_to(REPO)}:{line} imports {name}" for line, name in sorted(found)]


def test_no_module_imports_a_test_module_or_a_conftest() -> None:
    problems = [
        problem for path in sorted(TESTS.rglob("*.py")) for problem in forbidden_imports(path)
    ]
    assert not problems, "import helpers from tests/support instead:\n" + "\n".join(problems)


def mirrored_packages() -> list[str]:
    """The packages tests/ mirrors: the root packages the import contracts name."""
    config = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    return list(config["tool"]["importlinter"]["root_packages"])


def test_tests_mirror_the_packages() -> None:
    packages = mirrored_packages()
    assert packages
    problems = [f"tests/{name}/ is missing" for name in packages if not (TESTS / name).is_dir()]
    for path in sorted(TESTS.rglob("test_*.py")):
        folder = path.parent.relative_to(TESTS)
        if folder == Path() or folder.parts[0] in OWN_FOLDERS:
            continue
        if folder.parts[0] not in packages or not (REPO / folder / "__init__.py").is_file():
            problems.append(f"{path.relative_to(REPO)}: no package {'.'.join(folder.parts)}")
    assert not problems, "\n".join(problems)
