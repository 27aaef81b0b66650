"""The layout and its staged changes: stage, preview, apply (version current+1), revert."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .version import LayoutError, LayoutVersion, NodeRole, compute_assignment


@dataclass
class LayoutHistory:
    current: LayoutVersion
    staged_roles: dict[str, NodeRole | None] = field(default_factory=dict)  # None = remove
    staged_zone_redundancy: str | int | None = None

    @staticmethod
    def new(rf: int) -> LayoutHistory:
        return LayoutHistory(LayoutVersion(version=0, replication_factor=rf))

    def stage_role(self, node: str, role: NodeRole | None) -> None:
        self.staged_roles[node] = role

    def stage_parameters(self, zone_redundancy: str | int) -> None:
        self.staged_zone_redundancy = zone_redundancy

    def has_staged(self) -> bool:
        return bool(self.staged_roles) or self.staged_zone_redundancy is not None

    def preview(self) -> tuple[LayoutVersion, list[str]]:
        cur = self.current
        roles = dict(cur.roles)
        for n, r in self.staged_roles.items():
            if r is None:
                roles.pop(n, None)
            else:
                roles[n] = r
        zr = cur.zone_redundancy if self.staged_zone_redundancy is None \
            else self.staged_zone_redundancy
        ring, psize, report = compute_assignment(roles, cur.replication_factor, zr)
        new = LayoutVersion(cur.version + 1, cur.replication_factor, zr, roles, ring, psize)
        return new, report

    def apply(self, version: int) -> list[str]:
        if not self.has_staged():
            raise LayoutError("no staged changes to apply")
        if version != self.current.version + 1:
            raise LayoutError(f"invalid version: the next layout version is "
                              f"{self.current.version + 1}, not {version} "
                              f"(use --version {self.current.version + 1})")
        new, report = self.preview()
        self.current = new
        self.staged_roles = {}
        self.staged_zone_redundancy = None
        return report

    def revert(self) -> None:
        self.staged_roles = {}
        self.staged_zone_redundancy = None

    def to_obj(self) -> dict[str, Any]:
        return {"current": self.current.to_obj(),
                "staged": {n: (r.to_obj() if r else None) for n, r in self.staged_roles.items()},
                "staged_zr": self.staged_zone_redundancy}

    @staticmethod
    def from_obj(o: dict[str, Any]) -> LayoutHistory:
        return LayoutHistory(LayoutVersion.from_obj(o["current"]),
                             {n: (NodeRole.from_obj(r) if r else None)
                              for n, r in o["staged"].items()},
                             o.get("staged_zr"))
