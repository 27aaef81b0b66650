"""The layering rule of architecture.md, enforced: a layer imports only layers below it."""

from __future__ import annotations

import ast
from pathlib import Path

ORDER = ["util", "db", "net", "rpc", "table", "block", "model", "api", "web", "cli"]
TOP = {"server", "testing", "__main__"}  # composition and test kit may use everything
SRC = Path(__file__).resolve().parents[2] / "src" / "pygarage"


def _layer(parts: tuple[str, ...]) -> str:
    return parts[0].removesuffix(".py")


def _imports(path: Path) -> set[str]:
    rel = path.relative_to(SRC).parts
    pkg = list(rel[:-1])
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = pkg[: len(pkg) - node.level + 1]
                mod = base + (node.module.split(".") if node.module else [])
            elif node.module and node.module.startswith("pygarage."):
                mod = node.module.split(".")[1:]
            else:
                continue
            if mod:
                out.add(mod[0])
        elif isinstance(node, ast.Import):
            for a in node.names:
                if a.name.startswith("pygarage."):
                    out.add(a.name.split(".")[1])
    return out


def test_layers_only_import_downwards() -> None:
    bad = []
    for path in SRC.rglob("*.py"):
        rel = path.relative_to(SRC).parts
        if len(rel) == 1 or _layer(rel) in TOP:
            continue
        me = ORDER.index(_layer(rel))
        for dep in _imports(path):
            if dep == "server" and _layer(rel) == "cli":
                continue  # `garage server` starts the composition root
            if dep in TOP or dep == "__init__":
                bad.append(f"{path.relative_to(SRC)} imports {dep}")
            elif dep in ORDER and ORDER.index(dep) > me:
                bad.append(f"{path.relative_to(SRC)} imports {dep}")
    assert not bad, "\n".join(sorted(bad))
