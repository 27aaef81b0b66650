"""Small text helpers for the layout computation report (Garage's wording and units)."""

from __future__ import annotations

_PREFIXES = "KMGTPE"


def format_size(n: int) -> str:
    """Decimal units with one decimal, as Garage prints capacities: `5.9 GB`, `999 B`."""
    if n < 1000:
        return f"{n} B"
    value = float(n)
    for prefix in _PREFIXES:
        value /= 1000
        if value < 1000 or prefix == _PREFIXES[-1]:
            return f"{value:.1f} {prefix}B"
    raise AssertionError("unreachable")


def format_tab_table(rows: list[str]) -> str:
    """Align tab-separated rows in columns two spaces apart (Garage's format_table)."""
    cells = [r.split("\t") for r in rows]
    ncols = max((len(c) for c in cells), default=0)
    widths = [0] * ncols
    for row in cells:
        for i, c in enumerate(row):
            widths[i] = max(widths[i], len(c))
    out = []
    for row in cells:
        parts = [c + " " * (widths[i] - len(c) + 2) for i, c in enumerate(row[:-1])]
        out.append("".join(parts) + row[-1])
    return "\n".join(out)
