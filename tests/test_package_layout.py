"""The package's shape: no import cycles, each layer importing only what it may, one home per helper.

Every ``import`` in ``turbonext/`` is read from the source (module level and inside functions alike;
only ``if TYPE_CHECKING:`` blocks are skipped), so an import hidden in a function cannot hide a cycle.
"""

import ast
import importlib
import subprocess
import sys
from pathlib import Path

import pytest


PACKAGE = Path(__file__).resolve().parents[1] / "turbonext"


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(p): p for p in PACKAGE.rglob("*.py")}


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _walk(node):
    """Every node under ``node`` except the bodies of ``if TYPE_CHECKING:`` blocks."""
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.If) and _is_type_checking(child):
            yield from (n for orelse in child.orelse for n in [orelse, *_walk(orelse)])
            continue
        yield child
        yield from _walk(child)


def _imports(name: str, source: str | None = None) -> list[tuple[str, int, bool]]:
    """(imported module, line, inside a function) for every import in module ``name`` (its file, or ``source``)."""
    path = MODULES.get(name)
    tree = ast.parse(source if source is not None else path.read_text())
    package = name if path is not None and path.name == "__init__.py" else name.rpartition(".")[0]
    in_function = set()
    for func in (n for n in _walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))):
        in_function.update(id(n) for n in ast.walk(func))
    found = []
    for node in _walk(tree):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            targets = [base] + [f"{base}.{alias.name}" for alias in node.names]
        else:
            continue
        found += [(t, node.lineno, id(node) in in_function) for t in targets]
    return found


def _internal(target: str) -> str | None:
    """The turbonext module that ``target`` names (a module, or a name inside one), else None."""
    while target:
        if target in MODULES:
            return target
        target = target.rpartition(".")[0]
    return None


def _graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {name: set() for name in MODULES}
    for name in MODULES:
        for target, _, _ in _imports(name):
            module = _internal(target) if target.startswith("turbonext") else None
            if module and module != name:
                graph[name].add(module)
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on_stack, out, counter = {}, {}, [], set(), [], [0]

    def visit(v):
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
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))
    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_cycle_finder_finds_a_cycle():
    """The checker itself: a two-module cycle and a three-module one are found, a chain is not."""
    assert _cycles({"a": {"b"}, "b": {"a"}, "c": set()}) == [["a", "b"]]
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": set()}) == []


def test_the_package_has_no_import_cycles():
    assert _cycles(_graph()) == []


def test_the_import_reader_sees_imports_in_functions_and_skips_type_checking_blocks():
    source = ("from typing import TYPE_CHECKING\nfrom . import hub\nif TYPE_CHECKING:\n    import turbonext.jobs\n"
              "def f():\n    from ..models import configs\n")
    found = _imports("turbonext.loaders.probe", source)
    assert ("turbonext.loaders.hub", 2, False) in found  # a relative import, resolved
    assert ("turbonext.models.configs", 6, True) in found  # inside a function
    assert not any(target == "turbonext.jobs" for target, _, _ in found)  # typing-only


def test_no_function_level_imports_of_turbonext():
    """A turbonext import inside a function hides a dependency (and, before this layout, three cycles)."""
    hidden = [f"{name}:{line} imports {target}" for name in MODULES
              for target, line, in_func in _imports(name) if in_func and target.startswith("turbonext")]
    assert hidden == []


# Which turbonext subpackages each layer must not import.
FORBIDDEN = {
    "turbonext.utils": ["turbonext.models", "turbonext.pipelines", "turbonext.streaming", "turbonext.pose",
                        "turbonext.data", "turbonext.jobs", "turbonext.loaders", "turbonext.trainer",
                        "turbonext.evaluation", "turbonext.benchmarks", "turbonext.commands", "turbonext.schedulers"],
    "turbonext.models": ["turbonext.pipelines", "turbonext.streaming", "turbonext.jobs", "turbonext.loaders",
                         "turbonext.trainer", "turbonext.evaluation", "turbonext.benchmarks", "turbonext.commands"],
    "turbonext.schedulers": ["turbonext.pipelines", "turbonext.streaming", "turbonext.jobs", "turbonext.commands"],
    "turbonext.loaders": ["turbonext.pipelines", "turbonext.streaming", "turbonext.jobs", "turbonext.commands"],
    "turbonext.streaming": ["turbonext.pipelines", "turbonext.jobs", "turbonext.commands"],
    "turbonext.pose": ["turbonext.models", "turbonext.pipelines", "turbonext.streaming", "turbonext.schedulers",
                       "turbonext.loaders", "turbonext.data", "turbonext.jobs", "turbonext.trainer"],
    "turbonext.data": ["turbonext.models", "turbonext.pipelines", "turbonext.streaming", "turbonext.schedulers",
                       "turbonext.loaders", "turbonext.jobs", "turbonext.trainer"],
    "turbonext.synthetic": ["turbonext.models", "turbonext.pipelines", "turbonext.streaming", "turbonext.jobs"],
    "turbonext.pipelines": ["turbonext.jobs", "turbonext.trainer", "turbonext.evaluation", "turbonext.benchmarks",
                            "turbonext.commands"],
    "turbonext.jobs": ["turbonext.trainer", "turbonext.benchmarks", "turbonext.commands"],
    "turbonext.evaluation": ["turbonext.trainer", "turbonext.benchmarks", "turbonext.commands"],
    "turbonext.trainer": ["turbonext.jobs", "turbonext.benchmarks", "turbonext.commands"],
    "turbonext.benchmarks": ["turbonext.commands"],
    "turbonext.converters": ["turbonext.streaming", "turbonext.jobs", "turbonext.trainer", "turbonext.evaluation",
                             "turbonext.benchmarks", "turbonext.commands"],
}
NO_DIFFUSION = ("turbonext.pose", "turbonext.data", "turbonext.synthetic", "turbonext.utils")
DIFFUSION_LIBRARIES = ("diffusers", "transformers", "peft", "accelerate")


def _layer_violations() -> list[str]:
    bad = []
    for name in MODULES:
        for target, line, _ in _imports(name):
            where = f"{name}:{line} imports {target}"
            for layer, forbidden in FORBIDDEN.items():
                if (name == layer or name.startswith(layer + ".")) and any(
                        target == f or target.startswith(f + ".") for f in forbidden):
                    bad.append(where)
            if name.startswith(NO_DIFFUSION) and target.split(".")[0] in DIFFUSION_LIBRARIES:
                bad.append(where + " (knows no diffusion model)")
            if target.split(".")[0] in ("app", "training"):
                bad.append(where + " (the package never imports app.py or training/)")
    return bad


def test_each_layer_imports_only_what_it_may():
    assert _layer_violations() == []


def test_only_the_package_root_imports_from_the_package_root():
    """Modules import from the module that defines a name, never through ``turbonext`` itself."""
    bad = [f"{name}:{line}" for name in MODULES if name != "turbonext"
           for target, line, _ in _imports(name) if target.rpartition(".")[0] == "turbonext"
           and target not in MODULES and _internal(target) == "turbonext"]
    assert bad == []


def _definitions() -> dict[str, list[str]]:
    defined: dict[str, list[str]] = {}
    for name, path in MODULES.items():
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
                defined.setdefault(node.name, []).append(name)
    return defined


@pytest.mark.parametrize("helper", ["side_by_side", "image_to_tensor", "images_to_tensor", "tensor_to_pil",
                                    "to_rgb_array", "load_rgb", "run_live_benchmark", "default_device",
                                    "native_size", "pipeline_lock", "hash_file", "save_gif"])
def test_one_home_per_helper(helper):
    assert len(_definitions().get(helper, [])) == 1, _definitions().get(helper)


def test_one_no_reference_error():
    """Every "no reference set" error is :class:`NoReferenceError`, raised from one message."""
    sources = {name: path.read_text() for name, path in MODULES.items()}
    assert [n for n, text in sources.items() if "no reference set" in text] == ["turbonext.models.reference_attention"]
    from turbonext.models.reference_attention import NoReferenceError

    assert issubclass(NoReferenceError, ValueError)


PUBLIC = ["TurboNextPipeline", "TurboNextPipelineOutput", "StreamSession", "PoseGuider", "TurboNextUNetMotionModel",
          "ReferenceCache", "LatestFrameRunner", "LiveSession", "load_for_inference"]


def test_public_names_import_from_the_package():
    import turbonext

    assert set(PUBLIC) <= set(turbonext.__all__)
    for name in turbonext.__all__:
        assert getattr(turbonext, name) is not None
    with pytest.raises(AttributeError, match="no attribute"):
        turbonext.NotAThing


def test_importing_the_package_is_light():
    code = ("import sys, turbonext, turbonext.pose, turbonext.synthetic, turbonext.utils.images;"
            "bad=[m for m in ('torch','diffusers','transformers') if m in sys.modules]; assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize("old, name", [("turbonext.pipeline_turbonext", "TurboNextPipeline"),
                                       ("turbonext.loading", "load_for_inference"),
                                       ("turbonext.live", "LiveSession")])
def test_old_module_paths_still_work_with_a_deprecation_warning(old, name):
    sys.modules.pop(old, None)
    with pytest.warns(DeprecationWarning, match="goes away in turbonext 0.3"):
        module = importlib.import_module(old)
    assert getattr(module, name) is getattr(importlib.import_module("turbonext"), name)
