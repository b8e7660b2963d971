"""The import rules that keep the layers apart, checked on the source (every import, also
those inside functions): a module imports only its own layer or lower ones, so the runtime
never needs export, adaptation or compression code, and no library module imports the
command line. The layers, lowest first, are the folders of the package."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import adaptwin

ROOT = Path(adaptwin.__file__).parent
LAYERS = [
    ("adaptwin.errors", "adaptwin.optional", "adaptwin.audio"),  # plumbing
    ("adaptwin.models", "adaptwin.data"),  # weights, model format and inference graphs; speech data
    ("adaptwin.runtime",),  # deployment: decoding, engines, streaming
    ("adaptwin.evaluate", "adaptwin.compress"),
    ("adaptwin.adapt", "adaptwin.export"),
    ("adaptwin.cli",),
    ("adaptwin.__main__",),
]


def layer(module: str) -> int | None:
    for i, names in enumerate(LAYERS):
        if any(module == n or module.startswith(n + ".") for n in names):
            return i
    return None


def imports_of(path: Path) -> set[str]:
    module = ".".join(path.relative_to(ROOT.parent).with_suffix("").parts).removesuffix(".__init__")
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1] + ([base] if base else []))
            found |= {base} | {f"{base}.{a.name}" for a in node.names}
    return found


def modules() -> dict[str, set[str]]:
    out = {}
    for path in sorted(ROOT.rglob("*.py")):
        name = ".".join(path.relative_to(ROOT.parent).with_suffix("").parts).removesuffix(".__init__")
        out[name] = imports_of(path)
    return out


def test_every_module_belongs_to_a_layer():
    # the package's own __init__ only names its lazy re-exports
    assert [m for m in modules() if m != "adaptwin" and layer(m) is None] == []


def test_no_module_imports_a_higher_layer():
    bad = {
        (m, i)
        for m, imps in modules().items()
        if m != "adaptwin"
        for i in imps
        if i.startswith("adaptwin.") and layer(i) is not None and layer(i) > layer(m)
    }
    assert not bad, sorted(bad)


def test_the_runtime_needs_nothing_above_it_even_indirectly():
    graph = modules()
    seen, todo = set(), [m for m in graph if m.startswith("adaptwin.runtime")]
    while todo:
        m = todo.pop()
        if m in seen:
            continue
        seen.add(m)
        todo += [i for i in graph.get(m, ()) if i in graph]
    above = sorted(m for m in seen if layer(m) is not None and layer(m) > layer("adaptwin.runtime"))
    assert above == [], above


def test_the_rules_see_imports_inside_functions_and_would_fail():
    assert "adaptwin.models.graphs.DecoderGraph" in imports_of(ROOT / "runtime" / "torch_engine.py")
    assert "adaptwin.export.trt" in imports_of(ROOT / "export" / "__init__.py")  # relative, inside export()
    assert layer("adaptwin.compress.api") > layer("adaptwin.runtime.backends")


@pytest.mark.parametrize("module", ["adaptwin.runtime", "adaptwin.cli", "adaptwin.evaluate", "adaptwin.export"])
def test_the_deployment_path_and_the_command_line_start_without_pytorch(module):
    # the heavy imports wait inside the functions that need them: ONNX Runtime users never load
    # PyTorch, and `adaptwin --help` answers at once
    code = (
        f"import sys, {module}; print(sorted(m for m in ('torch', 'transformers', 'onnxruntime') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
