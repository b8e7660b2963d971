"""The import rules that keep the layers apart, checked on the source (every import, also
those inside functions): the runtime never needs export, adapt or compression code, and no
library module imports the command line."""

import ast
from pathlib import Path

import adaptwin

ROOT = Path(adaptwin.__file__).parent
# what the deployment path (adaptwin.runtime) may never import
NOT_FOR_RUNTIME = (
    "adaptwin.export",
    "adaptwin.adapt",
    "adaptwin.compress",
    "adaptwin.calibrate",
    "adaptwin.allocate",
    "adaptwin.surgery",
    "adaptwin.factorize",
    "adaptwin.cli",
    "adaptwin.data.build",
)


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


def modules():
    for path in sorted(ROOT.rglob("*.py")):
        name = ".".join(path.relative_to(ROOT.parent).with_suffix("").parts).removesuffix(".__init__")
        yield name, imports_of(path)


def test_the_runtime_imports_no_higher_layer():
    bad = {
        (m, i)
        for m, imps in modules()
        if m.startswith("adaptwin.runtime")
        for i in imps
        if i.startswith(NOT_FOR_RUNTIME)
    }
    assert not bad, sorted(bad)


def test_only_command_modules_import_the_cli():
    bad = {
        (m, i)
        for m, imps in modules()
        if not m.startswith("adaptwin.cli") and m != "adaptwin.__main__"
        for i in imps
        if i == "adaptwin.cli" or i.startswith("adaptwin.cli.")
    }
    assert not bad, sorted(bad)


def test_the_rule_sees_imports_inside_functions():
    assert "adaptwin.graphs.DecoderGraph" in imports_of(ROOT / "runtime" / "torch_engine.py")  # inside __init__
    assert "adaptwin.export.trt" in imports_of(ROOT / "export" / "__init__.py")  # relative, inside export()
