"""Every file the package writes goes through ``core.cache.write_atomic`` (a temp file and a
rename), so a crash at any point never leaves half a file where a whole one is expected."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "dreamframe_assets"
ALLOWED = {"core/cache.py"}  # where write_atomic itself writes its temp file


def _mode(call: ast.Call) -> str:
    """The mode an ``open`` call names: ``open(p, m)``, ``path.open(m)`` or ``mode=m``."""
    for k in call.keywords:
        if k.arg == "mode" and isinstance(k.value, ast.Constant):
            return str(k.value.value)
    i = 1 if isinstance(call.func, ast.Name) else 0
    arg = call.args[i] if len(call.args) > i else None
    return str(arg.value) if isinstance(arg, ast.Constant) else "r"


def _direct_writes(tree: ast.AST) -> list[tuple[int, str]]:
    found = []
    statements = {id(n.value) for n in ast.walk(tree) if isinstance(n, ast.Expr)}  # results not used
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
        if name in ("write_text", "write_bytes"):
            found.append((node.lineno, name))
        elif name == "open" and any(c in _mode(node) for c in "wax+"):
            in_memory = any(k.arg == "fileobj" for k in node.keywords)
            temp = node.args and isinstance(node.args[0], ast.Name) and node.args[0].id == "tmp"
            if not (in_memory or temp):  # a buffer, or a temp file renamed into place after
                found.append((node.lineno, f"open(..., {_mode(node)!r})"))
        elif name in ("save", "savefig", "write_parquet", "to_parquet", "to_csv") and node.args \
                and id(node) in statements \
                and not (isinstance(node.args[0], ast.Name) and node.args[0].id in ("buf", "buffer")):
            found.append((node.lineno, f"{name}({ast.unparse(node.args[0])})"))
    return found


def test_no_module_writes_a_file_in_place():
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = str(path.relative_to(PACKAGE))
        if rel not in ALLOWED:
            offenders += [f"{rel}:{line}: {what}" for line, what in _direct_writes(ast.parse(path.read_text()))]
    assert offenders == [], "write through core.cache.write_atomic:\n" + "\n".join(offenders)


def test_the_scan_finds_a_write_in_place():
    code = ("from pathlib import Path\nPath('x').write_text('y')\nopen('z', 'wb')\nimage.save(path)\n"
            "Path('p').open('w')\nopen('q', mode='a')\nimage.save(out / 'x.png')\nimage.save(buf)\nopen('r')\n")
    assert [what for _, what in _direct_writes(ast.parse(code))] == [
        "write_text", "open(..., 'wb')", "save(path)", "open(..., 'w')", "open(..., 'a')", "save(out / 'x.png')"]
