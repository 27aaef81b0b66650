"""`garage repair aliases` (LaunchRepairOperation aliases): the three full-copy tables naming
buckets are made consistent again (an in-process node given inconsistent entries, as a
crash between their writes leaves them), and the command works against a real daemon."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pygarage.api.admin.router import admin_call
from pygarage.model.bucket_table import Bucket
from pygarage.model.helpers.repair_aliases import repair_aliases
from pygarage.model.key_table import BucketAlias, Key
from pygarage.testing.local_garage import drain, running_local_garage
from pygarage.testing.node import GarageNode

KEY = "GK" + "1" * 24


async def test_repair_aliases_makes_the_tables_agree(tmp_path: Path) -> None:
    async with running_local_garage(tmp_path) as g:
        a, b, dead = b"A" * 32, b"B" * 32, b"D" * 32
        # Bucket A is named "a" (alias table) but does not list it; it lists "ghost", which
        # names B; "gone" names the deleted bucket D.
        g.bucket_table.data.update_entry(Bucket(a, created=1, aliases={"ghost": (5, True)},
                                                local_aliases={f"{KEY}/stale": (5, True)}))
        g.bucket_table.data.update_entry(Bucket(b, created=1, aliases={"ghost": (5, True)}))
        g.bucket_table.data.update_entry(Bucket(dead, created=1, deleted=True))
        for name, target in (("a", a), ("ghost", b), ("gone", dead)):
            g.bucket_alias_table.data.update_entry(BucketAlias(name, (5, target.hex())))
        g.key_table.data.update_entry(Key(KEY, "secret", created=1, local_aliases={
            "mine": (5, a.hex()), "old": (5, dead.hex())}))
        res = await admin_call(g, "LaunchRepairOperation", {"node": "self"},
                               {"repairType": "aliases"})
        assert res["error"] == {} and g.system.node_id in res["success"]
        await drain(g)
        ba, bb = await g.bucket_table.get(a), await g.bucket_table.get(b)
        assert ba is not None and bb is not None
        assert ba.global_aliases() == ["a"] and bb.global_aliases() == ["ghost"]
        assert ba.local_alias_list() == [(KEY, "mine")]
        gone = await g.bucket_alias_table.get(b"gone")
        assert gone is not None and gone.bucket_id() is None
        k = await g.key_table.get(KEY.encode())
        assert k is not None and k.local_alias("mine") == a and k.local_alias("old") is None
        # Consistent now: a second pass changes nothing.
        fixes = await repair_aliases(g)
        assert (fixes.aliases, fixes.keys, fixes.buckets) == ([], [], [])


def test_repair_aliases_command(node: GarageNode, bucket: str) -> None:
    before: dict[str, Any] = node.admin("GetBucketInfo", {"globalAlias": bucket})
    r = node.cli("repair", "--yes", "aliases")
    assert r.stdout.startswith("Repair operation launched on node"), r.stdout
    r = node.cli("repair", "-a", "--yes", "aliases")
    assert "Repair operation launched" in r.stdout
    after = node.admin("GetBucketInfo", {"globalAlias": bucket})
    assert after["globalAliases"] == before["globalAliases"] == [bucket]
