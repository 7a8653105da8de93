"""House rules for the package's layout: no import cycle between its modules, no module-level `__getattr__`
(no name served from somewhere else), and every public name in a module's `__all__` defined in that module."""
import ast
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parent.parent / "latentgen"
MODULES = sorted(p.stem for p in PKG.glob("*.py") if p.stem != "_modidx")


def _tree(mod: str) -> ast.Module:
    return ast.parse((PKG / f"{mod}.py").read_text(encoding="utf-8"), filename=f"latentgen/{mod}.py")


def _target(name: str) -> str | None:
    "The module of the package that a dotted name inside it refers to (`__init__` for the package itself)."
    if name == "":
        return "__init__"
    head = name.split(".")[0]
    return head if head in MODULES else None


def imports_of(tree: ast.Module) -> set[str]:
    "The package modules that `tree` imports, at module level and inside functions and classes (the `ast.walk`)."
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level == 1:
                base = node.module or ""
            elif node.level == 0 and node.module and (node.module == "latentgen" or node.module.startswith("latentgen.")):
                base = node.module[len("latentgen."):] if node.module != "latentgen" else ""
            else:
                continue
            if base == "":   # `from . import x` / `from latentgen import x`: a submodule, or a name of __init__
                out |= {a.name if a.name in MODULES else "__init__" for a in node.names}
            elif (t := _target(base)) is not None:
                out.add(t)
        elif isinstance(node, ast.Import):
            for a in node.names:
                if a.name.startswith("latentgen."):
                    if (t := _target(a.name[len("latentgen."):])) is not None:
                        out.add(t)
                elif a.name == "latentgen":
                    out.add("__init__")
    return out


def import_graph() -> dict[str, set[str]]:
    return {m: imports_of(_tree(m)) - {m} for m in MODULES}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    "One cycle of `graph` as a list of nodes (first == last), or None (depth-first search, three colours)."
    state, stack = {}, []

    def visit(n):
        state[n] = "open"; stack.append(n)
        for m in sorted(graph.get(n, ())):
            if state.get(m) == "open":
                return stack[stack.index(m):] + [m]
            if m not in state and (c := visit(m)):
                return c
        state[n] = "done"; stack.pop()
        return None

    for n in sorted(graph):
        if n not in state and (c := visit(n)):
            return c
    return None


def test_find_cycle_finds_one():
    "The checker itself: a planted cycle is found (through an import inside a function), an acyclic graph passes."
    g = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert find_cycle(g) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None
    assert all_cycles({"a": {"b"}, "b": {"a"}, "c": {"d"}, "d": {"c"}}) == [["a", "b", "a"], ["c", "d", "c"]]
    inner = ast.parse("def f():\n    from latentgen.train import Trainer\n    import latentgen.data as d\n"
                      "from .config import get_profile\nfrom . import runs\nfrom latentgen import __version__\n")
    assert imports_of(inner) == {"train", "data", "config", "runs", "__init__"}


def all_cycles(graph: dict[str, set[str]], most: int = 20) -> list[list[str]]:
    "Cycles of `graph`, one per pass: each found cycle's closing edge is cut before the next search."
    g, out = {k: set(v) for k, v in graph.items()}, []
    while len(out) < most and (c := find_cycle(g)):
        out.append(c); g[c[-2]].discard(c[-1])
    return out


def test_no_import_cycle():
    cycles = all_cycles(import_graph())
    assert not cycles, "import cycles in latentgen/: " + "; ".join(" -> ".join(c) for c in cycles)


@pytest.mark.parametrize("mod", MODULES)
def test_no_module_getattr(mod):
    "No module serves names it does not define (PEP 562 `__getattr__` at module level)."
    names = [n.name for n in _tree(mod).body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]
    assert "__getattr__" not in names, f"latentgen/{mod}.py defines a module-level __getattr__"


def _defined(tree: ast.Module) -> tuple[set[str], set[str]]:
    "Names bound at module level by definitions/assignments, and names bound by imports from the package."
    defined, imported = set(), set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            defined.add(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for t in targets:
                defined |= {n.id for n in ast.walk(t) if isinstance(n, ast.Name)}
        elif isinstance(node, ast.ImportFrom) and (node.level >= 1 or (node.module or "").startswith("latentgen")):
            imported |= {a.asname or a.name for a in node.names}
        elif isinstance(node, (ast.If, ast.Try, ast.With)):
            d, i = _defined(ast.Module(body=list(ast.iter_child_nodes(node)), type_ignores=[]))
            defined |= d; imported |= i
    return defined, imported


@pytest.mark.parametrize("mod", MODULES)
def test_all_names_defined_here(mod):
    "Each public name in `__all__` is defined in its module, not re-exported from another latentgen module."
    tree = _tree(mod)
    alls = [n for n in tree.body if isinstance(n, ast.Assign) and any(getattr(t, "id", None) == "__all__" for t in n.targets)]
    if not alls:
        return
    names = ast.literal_eval(alls[0].value)
    defined, imported = _defined(tree)
    reexported = sorted(n for n in names if n in imported and n not in defined)
    missing = sorted(n for n in names if n not in defined and n not in imported)
    assert not reexported, f"latentgen/{mod}.py re-exports {reexported} from another latentgen module"
    assert not missing, f"latentgen/{mod}.py lists {missing} in __all__ but does not define them"


def test_all_checker_catches_reexport(tmp_path):
    "The `__all__` checker sees a re-export and a missing name."
    d, i = _defined(ast.parse("from .runs import run_trainer\nX = 1\ndef f(): pass\nclass C: pass\n"))
    assert d == {"X", "f", "C"} and i == {"run_trainer"}
