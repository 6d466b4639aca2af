"""The package's layout holds: its folders are stages that import only the stages before them,
no import cycle, no private name used from another module, no module over 600 lines.

Every import statement is read from the source (at module level and inside functions,
absolute and relative), so an import moved into a function to dodge a cycle is still seen.
The compiled extension h2odl_mpi._kernel is no Python module and is left out."""
import ast
import os

import pytest

PACKAGE = "h2odl_mpi"
ROOT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), PACKAGE)
# the stages in order: a module imports from its own stage and the ones before it
STAGES = ("base", "data", "model", "evaluation", "training", "workflows", "api", "entry")
ENTRY = {"h2odl_mpi", "h2odl_mpi.__main__", "h2odl_mpi.cli", "h2odl_mpi.jobscript"}  # the command line
MAX_LINES = 600


def package_modules(root=ROOT, package=PACKAGE):
    """{dotted module name: file path} of every .py file of the package (data sets left out)."""
    found = {}
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if d not in ("datasets", "__pycache__"))
        for name in files:
            if name.endswith(".py"):
                rel = os.path.relpath(os.path.join(folder, name), os.path.dirname(root))[:-3]
                dotted = rel.replace(os.sep, ".")
                found[dotted[:-len(".__init__")] if dotted.endswith(".__init__") else dotted] = \
                    os.path.join(folder, name)
    return found


def stage_of(module):
    """The stage of a dotted module name: its folder below the package, else base or entry."""
    parts = module.split(".")
    if module in ENTRY or len(parts) == 1:
        return "entry"
    return parts[1] if len(parts) > 2 or parts[1] in STAGES else "base"


def _base_of(module, path, node):
    """The absolute module an ImportFrom names (relative imports resolved)."""
    if not node.level:
        return node.module or ""
    parts = module.split(".")
    if not path.endswith("__init__.py"):
        parts = parts[:-1]
    parts = parts[:len(parts) - (node.level - 1)]
    return ".".join(parts + ([node.module] if node.module else []))


def imports_of(module, path, modules):
    """[(imported module, name imported from it or None, line)] of every import statement of
    the package's modules in `path`, and [(alias, module)] of names bound to the package's
    modules (for attribute access)."""
    tree = ast.parse(open(path, encoding="utf-8").read(), path)
    found, aliases = [], {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                if a.name in modules:
                    found.append((a.name, None, node.lineno))
                    if a.asname:
                        aliases[a.asname] = a.name
        elif isinstance(node, ast.ImportFrom):
            base = _base_of(module, path, node)
            for a in node.names:
                full = f"{base}.{a.name}"
                if full in modules:
                    found.append((full, None, node.lineno))
                    aliases[a.asname or a.name] = full
                elif base in modules:
                    found.append((base, a.name, node.lineno))
    return tree, found, aliases


def private_uses(module, tree, found, aliases):
    """'module:line uses other._name' for every private name of another module used here."""
    out = []
    for target, name, line in found:
        if name and name.startswith("_") and not name.startswith("__") and target != module:
            out.append(f"{module}:{line} imports {target}.{name}")
    for node in ast.walk(tree):
        if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in aliases
                and node.attr.startswith("_") and not node.attr.startswith("__")
                and aliases[node.value.id] != module):
            out.append(f"{module}:{node.lineno} uses {aliases[node.value.id]}.{node.attr}")
    return out


def import_graph(modules):
    """({module: {imported modules}}, [private uses], [(module, imported, line)])."""
    graph, private, edges = {}, [], []
    for module, path in modules.items():
        tree, found, aliases = imports_of(module, path, modules)
        graph[module] = {t for t, _, _ in found if t != module}
        edges += [(module, t, line) for t, _, line in found if t != module]
        private += private_uses(module, tree, found, aliases)
    return graph, private, edges


def cycles(graph):
    """The strongly connected components of more than one module (Tarjan's algorithm)."""
    index, low, stack, on_stack, out = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))
    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def stage_violations(edges):
    """'module:line imports later-stage module' for every import against the stage order."""
    order = {s: i for i, s in enumerate(STAGES)}
    return [f"{m}:{line} ({stage_of(m)}) imports {t} ({stage_of(t)})" for m, t, line in edges
            if order[stage_of(t)] > order[stage_of(m)]]


@pytest.fixture(scope="module")
def graph():
    return import_graph(package_modules())


def test_every_module_is_found_in_a_known_stage():
    modules = package_modules()
    assert {"h2odl_mpi.training.trainer", "h2odl_mpi.data.frame.frame", "h2odl_mpi.cli"} <= set(modules)
    assert {stage_of(m) for m in modules} == set(STAGES)


def test_no_import_cycle(graph):
    assert cycles(graph[0]) == []


def test_no_private_name_of_another_module(graph):
    assert graph[1] == []


def test_stages_import_only_earlier_stages(graph):
    assert stage_violations(graph[2]) == []


def test_no_module_over_600_lines():
    long = {m: n for m, p in package_modules().items() if (n := len(open(p, encoding="utf-8").readlines())) > MAX_LINES}
    assert long == {}


# ------------------------------------------------------------- the checks themselves can fail
def _write_package(tmp_path, files):
    for rel, text in files.items():
        p = tmp_path / "pkg" / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
    return package_modules(str(tmp_path / "pkg"), "pkg")


def test_the_checks_see_cycles_inside_functions_private_names_and_stages(tmp_path):
    modules = _write_package(tmp_path, {
        "__init__.py": "",
        "errors.py": "def f():\n    import pkg.data\n",                         # base -> data
        "data/__init__.py": "",
        "data/reader.py": "from pkg.model import store\n",                       # data -> model
        "model/__init__.py": "",
        "model/store.py": "from . import other\n\ndef g():\n    from pkg.data.reader import _hidden\n",
        "model/other.py": "import pkg.errors as E\nx = E._secret\n",
    })
    g, private, edges = import_graph(modules)
    assert cycles(g) == [["pkg.data.reader", "pkg.model.store"]]
    assert sorted(private) == ["pkg.model.other:2 uses pkg.errors._secret",
                               "pkg.model.store:4 imports pkg.data.reader._hidden"]
    assert sorted(v.split(" ")[0] for v in stage_violations(edges)) == ["pkg.data.reader:1", "pkg.errors:2"]
