"""`-a`: worker variables and repairs reach every node of a cluster through the admin RPC."""

from __future__ import annotations

from pathlib import Path

from pygarage.testing.cluster import Cluster


def test_worker_vars_and_repairs_on_all_nodes(tmp_path: Path) -> None:
    c = Cluster(tmp_path)
    try:
        both = c.start_connected(2)
        n1, n2 = c.nodes
        r = n1.cli("worker", "set", "-a", "scrub-tranquility", "9")
        assert r.stdout.count("scrub-tranquility set to 9") == 2, r.stdout
        assert n2.cli("worker", "get", "scrub-tranquility").stdout.split()[-1] == "9"
        out = n2.cli("worker", "get", "-a", "scrub-tranquility").stdout
        assert {ln.split()[0] for ln in out.splitlines()[1:]} == {i[:16] for i in both}
        r = n1.cli("worker", "set", "-a", "no-such-var", "1", check=False)
        assert r.returncode == 1 and r.stderr.count("unknown worker variable") == 2
        r = n2.cli("repair", "-a", "--yes", "scrub", "start")
        assert r.stdout.count("Repair operation launched") == 2, r.stdout
        # Launched on node 1 too, through node 2: its worker list shows the scrub ran.
        c.wait_for(lambda: n1.cli("worker", "get", "scrub-last-completed").stdout.split()[-1]
                   != "never")
    finally:
        c.stop()
