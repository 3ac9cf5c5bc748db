"""The architecture rules, checked by reading the source of ``src/rnnkit`` with :mod:`ast` (no
module is imported, so this runs in well under a second and without the C extension).

The import graph
    One node per module: ``rnnkit.x.y`` is ``rnnkit/x/y.py``, the package ``rnnkit.x`` is
    ``rnnkit/x/__init__.py``. Every ``import`` statement of an rnnkit module adds edges, wherever
    it is: at the top, inside a function (a lazy import: it runs on the first call, and a cycle
    through it still ties the two modules together) or in a class body. Only the blocks under
    ``if TYPE_CHECKING:`` are skipped (they never run).

    An import in module A adds an edge to the module it names, B:

    - ``import rnnkit.x.y`` and ``from rnnkit.x.y import name``: B = ``rnnkit.x.y``;
    - ``from rnnkit.x import y`` where ``rnnkit/x/y.py`` (or ``y/``) exists: B = ``rnnkit.x.y``,
      else (y is a name of the package) B = ``rnnkit.x``, the package's ``__init__``;
    - relative imports are resolved first and follow the same rules;

    and an edge to each package Python initialises on the way to B (``rnnkit.x`` for
    ``rnnkit.x.y``), except the packages that contain A: Python has started those before A's
    first line runs, so importing through them creates no new dependency. This is what makes a
    package's ``__init__`` importing its own children normal: ``rnnkit.cells`` ->
    ``rnnkit.cells.lstm`` is an edge, but ``rnnkit.cells.lstm`` importing its sibling
    ``rnnkit.cells.base`` adds no edge back to ``rnnkit.cells``. A child that takes a name
    *defined by* its package's ``__init__`` (``from rnnkit.cells import CellParams`` inside
    ``rnnkit/cells/gru.py``) does add that edge, and that is a cycle even when one of the two
    imports is lazy: the child depends on code of a module that depends on the child.

Rules
    1. The graph has no cycle (each is reported as a chain of imports with file and line).
    2. ``rnnkit.cells`` never reaches ``rnnkit.runtime.kernels``: the reference layer imports and
       runs with no compiled code.
    3. The core (``import rnnkit`` itself, and cells, nn, optim, training, data, losses, init,
       gradcheck, checkpoint, _checks) never reaches ``rnnkit.apps``; nor does ``rnnkit.runtime``.
    4. No module reads another module's private names: ``obj._name`` where ``obj`` is not
       ``self``, ``cls``, ``super()`` or ``type(self)``, ``getattr(obj, "_name")`` and the like,
       ``from rnnkit.m import _name``, and a private module ``rnnkit.p._m`` imported from outside
       ``rnnkit.p``. Allowed: names that the same module defines (its own functions, classes,
       globals, and the attributes its classes set), the NamedTuple API (``_replace``, ...), and
       attributes of third-party modules (``np.``, ``sys.``: outside rnnkit's encapsulation).

Each checker is also run on a small synthetic package in ``tmp_path`` with one violation of its
rule, so that a checker that finds nothing is seen to be able to find something.
"""

from __future__ import annotations

import ast
import textwrap
from collections import deque
from dataclasses import dataclass
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "rnnkit"

#: The library core: ``import rnnkit`` itself (the root stands for its ``__init__`` only, see
#: :func:`select`) and these subpackages and modules.
CORE = (
    "rnnkit",
    "rnnkit.cells",
    "rnnkit.nn",
    "rnnkit.optim",
    "rnnkit.training",
    "rnnkit.data",
    "rnnkit.losses",
    "rnnkit.init",
    "rnnkit.gradcheck",
    "rnnkit.checkpoint",
    "rnnkit._checks",
)

#: Underscore names that are public API: NamedTuple's methods and fields carry an underscore so
#: as not to clash with the tuple's own field names.
PUBLIC_UNDERSCORE = frozenset({"_replace", "_asdict", "_fields", "_field_defaults", "_make"})

#: Explicit exceptions to rule 4, as {(module, attribute): reason}. Empty: keep it that way.
PRIVATE_ALLOWED: dict[tuple[str, str], str] = {}


# -- reading the source ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Edge:
    """One dependency of ``source`` on ``target``, from the import at ``path``:``line``."""

    source: str
    target: str
    path: str
    line: int
    lazy: bool  # inside a function: runs on the first call
    implicit: bool  # a package Python initialises on the way to the named module

    def __str__(self) -> str:
        how = ", ".join(w for w, on in (("lazy", self.lazy), ("package init", self.implicit)) if on)
        return f"{self.target}  ({self.path}:{self.line}{', ' + how if how else ''})"


@dataclass
class Source:
    """The parsed modules of one package directory."""

    root: Path
    modules: dict[str, Path]  # dotted name -> file (.py, or the built extension)
    trees: dict[str, ast.Module]  # dotted name -> syntax tree (Python modules only)

    def is_package(self, name: str) -> bool:
        return self.modules[name].name == "__init__.py"

    def rel(self, name: str) -> str:
        return str(self.modules[name].relative_to(self.root.parent))


def read_package(root: Path) -> Source:
    """Every module of the package at ``root`` (its name is the directory's)."""
    modules: dict[str, Path] = {}
    for path in sorted(root.rglob("*.py")):
        parts = path.relative_to(root).with_suffix("").parts
        if "__pycache__" in parts:
            continue
        if parts[-1] == "__init__":
            parts = parts[:-1]
        modules[".".join((root.name, *parts))] = path
    for pattern in ("*.so", "*.pyd"):  # compiled extensions, named up to the first dot
        for path in root.rglob(pattern):
            parts = (*path.relative_to(root).parent.parts, path.name.split(".")[0])
            modules.setdefault(".".join((root.name, *parts)), path)
    trees = {
        name: ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for name, path in modules.items()
        if path.suffix == ".py"
    }
    return Source(root, modules, trees)


def ancestors(name: str) -> list[str]:
    """The packages containing ``name``, outermost first: a.b.c -> [a, a.b]."""
    parts = name.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts))]


def is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


class _ImportVisitor(ast.NodeVisitor):
    """The rnnkit imports of one module: (line, lazy, named module, names taken from it)."""

    def __init__(self, src: Source, module: str) -> None:
        self.src, self.module, self.depth = src, module, 0
        self.found: list[tuple[int, bool, str, list[str] | None]] = []
        self.package = module if src.is_package(module) else module.rpartition(".")[0]

    def _function(self, node: ast.AST) -> None:
        self.depth += 1
        self.generic_visit(node)
        self.depth -= 1

    visit_FunctionDef = visit_AsyncFunctionDef = visit_Lambda = _function

    def visit_If(self, node: ast.If) -> None:
        if is_type_checking(node.test):  # never runs: no dependency
            for child in node.orelse:
                self.visit(child)
        else:
            self.generic_visit(node)

    def _ours(self, name: str) -> bool:
        top = self.src.root.name
        return name == top or name.startswith(top + ".")

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            if self._ours(alias.name):
                self.found.append((node.lineno, self.depth > 0, alias.name, None))

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        if node.level:
            parts = self.package.split(".")
            base = ".".join(parts[: len(parts) - node.level + 1])
            name = f"{base}.{node.module}" if node.module else base
        else:
            name = node.module or ""
        if self._ours(name):
            names = [alias.name for alias in node.names]
            self.found.append((node.lineno, self.depth > 0, name, names))


def imports(src: Source, module: str) -> list[tuple[int, bool, str, str | None]]:
    """The rnnkit imports of ``module``: (line, lazy, module depended on, private name taken or
    None), with ``from P import y`` resolved to the submodule P.y when there is one."""
    visitor = _ImportVisitor(src, module)
    visitor.visit(src.trees[module])
    out = []
    for line, lazy, name, names in visitor.found:
        if names is None:
            out.append((line, lazy, name, None))
            continue
        for taken in names:
            if f"{name}.{taken}" in src.modules:
                out.append((line, lazy, f"{name}.{taken}", None))
            else:  # a name defined by the module (or '*')
                out.append((line, lazy, name, taken))
    return out


def import_graph(src: Source) -> dict[str, list[Edge]]:
    """The edges out of every Python module (see the module docstring for the rule)."""
    graph: dict[str, list[Edge]] = {name: [] for name in src.modules}
    for module in src.trees:
        own = {*ancestors(module), module}  # already running when ``module`` runs
        for line, lazy, target, _ in imports(src, module):
            for package in ancestors(target):
                if package not in own:
                    graph[module].append(
                        Edge(module, package, src.rel(module), line, lazy, implicit=True)
                    )
            if target != module:  # e.g. a package importing a name from its own extension
                graph[module].append(
                    Edge(module, target, src.rel(module), line, lazy, implicit=False)
                )
    return graph


# -- rules 1-3: cycles and layers ------------------------------------------------------------------


def strongly_connected(graph: dict[str, list[Edge]]) -> list[list[str]]:
    """Tarjan's strongly connected components of more than one module."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for edge in graph.get(node, []):
            if edge.target not in index:
                visit(edge.target)
                low[node] = min(low[node], low[edge.target])
            elif edge.target in on_stack:
                low[node] = min(low[node], index[edge.target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                components.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(components)


def shortest_path(
    graph: dict[str, list[Edge]], start: str, goal, within: set[str] | None = None
) -> list[Edge] | None:
    """The fewest edges from ``start`` to a module for which ``goal(module)`` holds (at least one
    edge), staying inside ``within`` when given; None when there is no such path."""
    queue: deque[tuple[str, list[Edge]]] = deque([(start, [])])
    seen = set()
    while queue:
        node, path = queue.popleft()
        for edge in graph.get(node, []):
            if within is not None and edge.target not in within:
                continue
            if goal(edge.target):
                return [*path, edge]
            if edge.target not in seen:
                seen.add(edge.target)
                queue.append((edge.target, [*path, edge]))
    return None


def describe(start: str, path: list[Edge]) -> str:
    return "\n".join([f"    {start}", *(f"    -> {edge}" for edge in path)])


def find_cycles(src: Source) -> list[str]:
    """For each strongly connected component of the import graph, the shortest cycle through
    each of its modules (without repeats): every import to look at, in a readable order."""
    graph = import_graph(src)
    found = []
    for component in strongly_connected(graph):
        members, seen, lines = set(component), set(), []
        for node in component:
            path = shortest_path(graph, node, lambda m, node=node: m == node, members)
            key = frozenset((edge.source, edge.target) for edge in path or [])
            if path and key not in seen:
                seen.add(key)
                lines.append(describe(node, path))
        found.append(f"  cycle among {', '.join(component)}:\n" + "\n".join(lines))
    return found


def within(name: str, packages: tuple[str, ...]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in packages)


def select(src: Source, packages: tuple[str, ...]) -> list[str]:
    """The Python modules in ``packages`` (each a module or a package and all it contains; the
    root package, which contains everything, stands for its own ``__init__`` only)."""
    top = src.root.name
    return [
        m
        for m in sorted(src.trees)
        if m in packages or within(m, tuple(p for p in packages if p != top))
    ]


def find_reaches(src: Source, sources: tuple[str, ...], forbidden: tuple[str, ...]) -> list[str]:
    """For each module of ``sources`` (see :func:`select`) that imports, directly or not, a
    module of ``forbidden``: the shortest chain of imports that does."""
    graph = import_graph(src)
    found = []
    for module in select(src, sources):
        path = shortest_path(graph, module, lambda m: within(m, forbidden))
        if path:
            found.append(f"  {module} reaches {path[-1].target}:\n{describe(module, path)}")
    return found


# -- rule 4: private names -------------------------------------------------------------------------


def is_private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def is_own_object(node: ast.expr) -> bool:
    """``self``, ``cls``, ``super()``, ``type(self)``: the object's own class hierarchy."""
    if isinstance(node, ast.Name):
        return node.id in ("self", "cls")
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
        if node.func.id == "super":
            return True
        return node.func.id == "type" and len(node.args) == 1 and is_own_object(node.args[0])
    return False


def call_name(node: ast.Call) -> str | None:
    """``f`` for ``f(...)`` and ``obj.f(...)``."""
    func = node.func
    return func.id if isinstance(func, ast.Name) else getattr(func, "attr", None)


def defined_names(tree: ast.Module) -> set[str]:
    """The private names a module defines: its functions, classes, variables and imports, the
    attributes its code sets on any object, and names given as strings to ``setattr``."""
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
        elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
            names.add(node.attr)
        elif isinstance(node, ast.alias):
            names.add((node.asname or node.name).split(".")[0])
        elif isinstance(node, ast.arg):
            names.add(node.arg)
        elif isinstance(node, ast.Call) and call_name(node) in ("setattr", "__setattr__"):
            names.update(
                arg.value
                for arg in node.args[:2]
                if isinstance(arg, ast.Constant) and isinstance(arg.value, str)
            )
    return {name for name in names if is_private(name)}


def third_party_aliases(tree: ast.Module, top: str) -> set[str]:
    """Names bound to modules outside the package (``np``, ``sys``, ...)."""
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] != top:
                    names.add(alias.asname or alias.name.split(".")[0])
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
            if node.module.split(".")[0] != top:
                names.update(alias.asname or alias.name for alias in node.names)
    return names


def find_private_access(src: Source) -> list[str]:
    """Every read or write of another module's private name (see rule 4)."""
    top = src.root.name
    found: list[tuple[str, int, str]] = []
    for module, tree in sorted(src.trees.items()):
        own = defined_names(tree) | PUBLIC_UNDERSCORE
        foreign = third_party_aliases(tree, top)
        where = src.rel(module)

        def flag(line: int, what: str, name: str, module=module, where=where) -> None:
            if (module, name) not in PRIVATE_ALLOWED:
                found.append((where, line, what))

        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and is_private(node.attr):
                base = node.value
                if (
                    node.attr not in own
                    and not is_own_object(base)
                    and not (isinstance(base, ast.Name) and base.id in foreign)
                ):
                    flag(node.lineno, f"{ast.unparse(node)}", node.attr)
            elif (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Name)
                and node.func.id in ("getattr", "setattr", "hasattr", "delattr")
                and len(node.args) >= 2
                and isinstance(node.args[1], ast.Constant)
                and isinstance(node.args[1].value, str)
                and is_private(node.args[1].value)
                and node.args[1].value not in own
                and not is_own_object(node.args[0])
            ):
                flag(node.lineno, ast.unparse(node), node.args[1].value)
        for line, _, target, taken in imports(src, module):
            if taken is not None and is_private(taken) and target != module:
                flag(line, f"from {target} import {taken}", taken)
            # a private module belongs to its package: rnnkit.p._m is for rnnkit.p's modules
            parts = target.split(".")
            for i, part in enumerate(parts):
                owner = ".".join(parts[:i])
                if is_private(part) and not within(module, (owner,)):
                    flag(line, f"import of {target}, private to {owner}", part)
                    break
    return [f"  {where}:{line}: {what}" for where, line, what in sorted(found)]


# -- the rules, on rnnkit --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def rnnkit_source() -> Source:
    return read_package(SRC)


def test_the_source_is_found(rnnkit_source):
    # guards the other tests against passing on an empty or misplaced tree
    assert {"rnnkit", "rnnkit.cells", "rnnkit.nn", "rnnkit.runtime", "rnnkit.apps"} <= set(
        rnnkit_source.modules
    )
    assert len(rnnkit_source.trees) > 40


def test_no_import_cycles(rnnkit_source):
    cycles = find_cycles(rnnkit_source)
    assert not cycles, "import cycles (break each by moving the shared code down a layer):\n" + (
        "\n".join(cycles)
    )


def test_cells_never_reach_the_compiled_kernels(rnnkit_source):
    found = find_reaches(rnnkit_source, ("rnnkit.cells",), ("rnnkit.runtime.kernels",))
    assert not found, (
        "rnnkit.cells must import and run with no compiled code, but it imports "
        "rnnkit.runtime.kernels (the runtime should choose the loop and hand it to the cells, "
        "not the other way round):\n" + "\n".join(found)
    )


@pytest.mark.parametrize(
    "layer, sources",
    [("the core", CORE), ("the runtime", ("rnnkit.runtime",))],
    ids=["core", "runtime"],
)
def test_core_and_runtime_never_reach_the_apps(rnnkit_source, layer, sources):
    found = find_reaches(rnnkit_source, sources, ("rnnkit.apps",))
    assert not found, f"{layer} must not depend on rnnkit.apps:\n" + "\n".join(found)


def test_no_module_reads_another_modules_private_names(rnnkit_source):
    found = find_private_access(rnnkit_source)
    assert not found, (
        "private names read outside the module that defines them (make them public API, "
        "or move the code that needs them into that module):\n" + "\n".join(found)
    )


def test_allow_list_entries_are_still_needed(rnnkit_source):
    # an entry whose access is gone would silently allow the next one
    saved = dict(PRIVATE_ALLOWED)
    try:
        PRIVATE_ALLOWED.clear()
        found = "\n".join(find_private_access(rnnkit_source))
    finally:
        PRIVATE_ALLOWED.update(saved)
    for (module, name), reason in saved.items():
        assert reason, f"allow-list entry {(module, name)} gives no reason"
        assert name in found, f"allow-list entry {(module, name)} is no longer needed"


# -- each checker finds what it looks for, on synthetic packages --------------------------------


def make_package(tmp_path: Path, files: dict[str, str]) -> Source:
    """A package ``rnnkit`` under ``tmp_path`` from {relative path: source}; every directory
    gets an ``__init__.py`` (empty unless given)."""
    root = tmp_path / "rnnkit"
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text), encoding="utf-8")
    for directory in [root, *root.rglob("*")]:
        if directory.is_dir() and not (directory / "__init__.py").exists():
            (directory / "__init__.py").write_text("", encoding="utf-8")
    return read_package(root)


#: The shape of the cycle rnnkit had: the LSTM cell chose its compiled loop with a lazy import of
#: the kernel module, which imported the cell module for its step equations.
LAZY_CYCLE = {
    "cells/__init__.py": "from rnnkit.cells.lstm import LSTMCell\n",
    "cells/base.py": "class StepCell:\n    pass\n",
    "cells/lstm.py": """\
        from rnnkit.cells.base import StepCell

        STEP = object()

        class LSTMCell(StepCell):
            def recurrence(self):
                from rnnkit.runtime import kernels
                from rnnkit.runtime.kernels import (
                    lstm as compiled,  # here: rnnkit.runtime.kernels imports this module
                )
                return kernels.chosen(compiled.RECURRENCE)
        """,
    "runtime/kernels/__init__.py": "def chosen(r):\n    return r\n",
    "runtime/kernels/lstm.py": """\
        from rnnkit.cells.lstm import STEP
        from rnnkit.runtime import kernels

        RECURRENCE = (STEP, kernels)
        """,
}


def test_cycle_checker_finds_a_lazy_cycle(tmp_path):
    cycles = find_cycles(make_package(tmp_path, LAZY_CYCLE))
    assert len(cycles) == 1, cycles
    # the package rnnkit.cells too: kernels.lstm imports cells.lstm, so Python runs the cells'
    # __init__, which imports cells.lstm
    assert "cycle among rnnkit.cells, rnnkit.cells.lstm, rnnkit.runtime.kernels.lstm" in cycles[0]
    assert "cells/lstm.py:8, lazy" in cycles[0]  # names the import to look at
    assert "runtime/kernels/lstm.py:1)" in cycles[0]


def test_layer_checker_finds_a_lazy_import_of_the_kernels(tmp_path):
    src = make_package(tmp_path, LAZY_CYCLE)
    found = find_reaches(src, ("rnnkit.cells",), ("rnnkit.runtime.kernels",))
    assert [line.split(" reaches ")[0].strip() for line in found if " reaches " in line] == [
        "rnnkit.cells",
        "rnnkit.cells.lstm",
    ]
    assert "-> rnnkit.runtime.kernels  (rnnkit/cells/lstm.py:7, lazy)" in found[1]


def test_layer_checker_follows_modules_and_package_inits(tmp_path):
    # cells.base -> util (top level) -> runtime.workspace, whose package __init__ imports the
    # kernels: importing the workspace runs that __init__, so the cells reach the kernels
    src = make_package(
        tmp_path,
        {
            "cells/base.py": "import rnnkit.util\n",
            "util.py": "from rnnkit.runtime import workspace\n",
            "runtime/__init__.py": "from rnnkit.runtime import kernels\n",
            "runtime/workspace.py": "",
            "runtime/kernels/__init__.py": "",
        },
    )
    found = find_reaches(src, ("rnnkit.cells",), ("rnnkit.runtime.kernels",))
    assert len(found) == 1 and found[0].startswith("  rnnkit.cells.base reaches"), found
    assert "rnnkit.runtime  (rnnkit/util.py:1, package init)" in found[0]
    # and without the __init__'s import there is nothing to find
    (src.root / "runtime" / "__init__.py").write_text("")
    assert find_reaches(read_package(src.root), ("rnnkit.cells",), ("rnnkit.runtime",)) != []
    assert (
        find_reaches(read_package(src.root), ("rnnkit.cells",), ("rnnkit.runtime.kernels",)) == []
    )


def test_package_importing_its_children_is_not_a_cycle(tmp_path):
    files = {
        "__init__.py": "from rnnkit import cells\nfrom rnnkit.cells import Cell\n",
        "cells/__init__.py": "from rnnkit.cells.base import Cell\nfrom . import gru\n",
        "cells/base.py": "import numpy as np\nclass Cell:\n    pass\n",
        "cells/gru.py": "from rnnkit.cells import base\nfrom .base import Cell\n"
        "import rnnkit.cells.base\n",
    }
    assert find_cycles(make_package(tmp_path, files)) == []


def test_child_taking_a_name_from_its_package_init_is_a_cycle(tmp_path):
    files = {
        "cells/__init__.py": "from rnnkit.cells.base import Cell\nfrom rnnkit.cells import gru\n",
        "cells/base.py": "class Cell:\n    pass\n",
        "cells/gru.py": "def make():\n    from rnnkit.cells import Cell  # the package's name\n",
    }
    (cycle,) = find_cycles(make_package(tmp_path, files))
    assert "cycle among rnnkit.cells, rnnkit.cells.gru" in cycle


def test_cycle_through_another_packages_init_is_found(tmp_path):
    # a.x imports b.y, so Python runs b/__init__, which imports a.x back
    files = {
        "a/x.py": "import rnnkit.b.y\n",
        "b/__init__.py": "from rnnkit.a.x import thing\n",
        "b/y.py": "",
    }
    (cycle,) = find_cycles(make_package(tmp_path, files))
    assert "cycle among rnnkit.a.x, rnnkit.b" in cycle
    assert "package init" in cycle


def test_type_checking_imports_are_not_dependencies(tmp_path):
    files = {
        "a.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from rnnkit import b\n",
        "b.py": "from rnnkit import a\n",
    }
    assert find_cycles(make_package(tmp_path, files)) == []


def test_private_checker_finds_private_reads(tmp_path):
    files = {
        "nn/module.py": """\
            class Module:
                def __init__(self):
                    object.__setattr__(self, "_params", {})

                def named(self, other):
                    return self._params, other._params  # own module's attribute: fine
            """,
        "nn/models.py": """\
            import numpy as np
            from rnnkit.runtime.kernels import _native
            from rnnkit.cells.base import _gates

            def _helper():
                return np._NoValue  # a third-party module's internals: not our rule

            class Model:
                def __init__(self, head, cache):
                    self._head = head
                    self._cache = cache._replace(h=None)  # NamedTuple API

                def forward(self, x):
                    this = __import__(__name__)
                    this._helper()  # a module-level name of this module
                    w = self._head._params["weight"]
                    n = self._head.__class__.__name__  # dunders are public
                    return w, n, getattr(self._head, "_bias"), super()._forward(x)
            """,
        "runtime/kernels/__init__.py": "from rnnkit.runtime.kernels import _native\n",
        "runtime/kernels/_native.py": "",
        # an extension not built here: a name the package takes from itself
        "runtime/other/__init__.py": "from rnnkit.runtime.other import _ext\n",
        "cells/base.py": "def _gates():\n    pass\n",
    }
    found = find_private_access(make_package(tmp_path, files))
    assert found == [
        "  rnnkit/nn/models.py:2: import of rnnkit.runtime.kernels._native, private to "
        "rnnkit.runtime.kernels",
        "  rnnkit/nn/models.py:3: from rnnkit.cells.base import _gates",
        "  rnnkit/nn/models.py:16: self._head._params",
        "  rnnkit/nn/models.py:18: getattr(self._head, '_bias')",
    ], found
