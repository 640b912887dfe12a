"""Every file the package writes goes through ``core.cache.write_atomic`` (a temp file and a
rename), so a crash at any point never leaves half a file where a whole one is expected."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "dreamframe_assets"
ALLOWED = {"core/cache.py"}  # where write_atomic itself writes its temp file


def _direct_writes(tree: ast.AST) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
        if name in ("write_text", "write_bytes"):
            found.append((node.lineno, name))
        elif name in ("open", "fdopen") and len(node.args) >= 2 and isinstance(node.args[1], ast.Constant) \
                and any(c in str(node.args[1].value) for c in "wax"):
            found.append((node.lineno, f"open(..., {node.args[1].value!r})"))
        elif name in ("save", "savefig", "write_parquet") and node.args and isinstance(node.args[0], ast.Name) \
                and node.args[0].id not in ("buf", "buffer"):
            found.append((node.lineno, f"{name}({node.args[0].id})"))
    return found


def test_no_module_writes_a_file_in_place():
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = str(path.relative_to(PACKAGE))
        if rel not in ALLOWED:
            offenders += [f"{rel}:{line}: {what}" for line, what in _direct_writes(ast.parse(path.read_text()))]
    assert offenders == [], "write through core.cache.write_atomic:\n" + "\n".join(offenders)


def test_the_scan_finds_a_write_in_place():
    code = "from pathlib import Path\nPath('x').write_text('y')\nopen('z', 'wb')\nimage.save(path)\n"
    assert [what for _, what in _direct_writes(ast.parse(code))] == ["write_text", "open(..., 'wb')", "save(path)"]
