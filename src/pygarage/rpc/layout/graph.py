"""Flow graph for the layout assignment: Dinic max flow (resumable from any flow) and
cost cancelling by negative cycles (Bellman-Ford), as layout.md §2.4-§2.5 describe.

Arcs live in flat arrays: arc e goes dest[e^1] -> dest[e], its twin e^1 is the reverse arc
(capacity 0, flow -f). Each vertex keeps an ordered list of the arcs leaving it; that order
(insertion, then the deterministic shuffle) decides which of the many maximum flows we get,
so it follows Garage's recipe exactly (§2.7): same inputs, same ring, on every node.
"""

from __future__ import annotations

from collections import deque

from .chacha import StdRng

SHUFFLE_SEED = b"\x12" * 32


class FlowGraph:
    def __init__(self, n_vertices: int):
        self.adj: list[list[int]] = [[] for _ in range(n_vertices)]
        self.dest: list[int] = []
        self.cap: list[int] = []
        self.flow: list[int] = []

    @property
    def n_vertices(self) -> int:
        return len(self.adj)

    def add_edge(self, u: int, v: int, capacity: int) -> int:
        """Add arc u->v and its reverse; returns the arc's id."""
        if u == v:
            raise ValueError("no self loops in a flow graph")
        e = len(self.dest)
        self.dest += (v, u)
        self.cap += (capacity, 0)
        self.flow += (0, 0)
        self.adj[u].append(e)
        self.adj[v].append(e ^ 1)
        return e

    def shuffle(self) -> None:
        """Permute every adjacency list, vertices in index order, with a freshly seeded PRNG."""
        rng = StdRng(SHUFFLE_SEED)
        for lst in self.adj:
            rng.shuffle(lst)

    def outflow(self, v: int) -> int:
        return sum(max(0, self.flow[e]) for e in self.adj[v])

    def positive_flow_from(self, v: int) -> list[int]:
        """Vertices receiving flow from v, in adjacency order."""
        return [self.dest[e] for e in self.adj[v] if self.flow[e] > 0]

    def max_flow(self, source: int, sink: int, shuffle: bool = True) -> int:
        """Raise the current flow to a maximum one (Dinic); returns its value."""
        if shuffle:
            self.shuffle()
        adj, dest, cap, flow = self.adj, self.dest, self.cap, self.flow
        n = len(adj)
        upper = sum(cap[e] for e in adj[source])
        while True:
            level = [-1] * n
            level[source] = 0
            fifo = deque([source])
            while fifo:
                u = fifo.popleft()
                lu = level[u] + 1
                for e in adj[u]:
                    d = dest[e]
                    if level[d] < 0 and cap[e] - flow[e] > 0:
                        level[d] = lu
                        fifo.append(d)
            if level[sink] < 0:
                break
            nxt = [0] * n
            stack: list[tuple[int, int]] = [(source, upper)]
            while stack:
                u, f = stack[-1]
                if u == sink:
                    stack.pop()
                    for w, _ in stack:
                        e = adj[w][nxt[w]]
                        flow[e] += f
                        flow[e ^ 1] -= f
                    stack = [(source, upper)]
                    continue
                lst = adj[u]
                i = nxt[u]
                if i >= len(lst):
                    stack.pop()
                    if stack:
                        nxt[stack[-1][0]] += 1
                    continue
                e = lst[i]
                room = cap[e] - flow[e]
                if room <= 0 or level[dest[e]] <= level[u]:
                    nxt[u] = i + 1
                    continue
                stack.append((dest[e], f if f < room else room))
        return self.outflow(source)

    def minimize_cost(self, arc_cost: dict[int, int], path_length: int) -> int:
        """Cancel negative cycles of the residual graph until none is left; returns the
        number of passes. arc_cost maps forward arc ids to their cost (others cost 0); a
        reverse arc costs the opposite. Keeps the flow value; ends at a minimum cost flow
        among flows of that value (no negative residual cycle)."""
        passes = 0
        while True:
            cycles = self._negative_cycles(arc_cost, path_length)
            if not cycles:
                return passes
            passes += 1
            for cycle in cycles:
                k = len(cycle)
                for i in range(k):
                    u, v = cycle[i], cycle[(i + 1) % k]
                    for e in self.adj[u]:
                        if self.dest[e] == v:
                            self.flow[e] += 1
                            self.flow[e ^ 1] -= 1
                            break

    def _negative_cycles(self, arc_cost: dict[int, int], path_length: int) -> list[list[int]]:
        adj, dest, cap, flow = self.adj, self.dest, self.cap, self.flow
        n = len(adj)
        # Residual edges (v, w) of each vertex u, in adjacency order.
        out: list[list[tuple[int, int]]] = [[] for _ in range(n)]
        for u in range(n):
            edges = out[u]
            for e in adj[u]:
                if cap[e] - flow[e] > 0:
                    w = arc_cost.get(e)
                    if w is None:
                        w = -arc_cost.get(e ^ 1, 0)
                    edges.append((dest[e], w))
        # Bellman-Ford from a virtual root (all distances 0), relaxing in place, vertices in
        # index order. A vertex whose distance did not drop since its last scan cannot relax
        # anything new (distances only decrease), so skipping it changes no update: same
        # distances and predecessors as relaxing every edge, much faster.
        dist = [0] * n
        prev = [-1] * n
        dirty = [True] * n
        for _ in range(path_length + 1):
            changed = False
            for u in range(n):
                if not dirty[u]:
                    continue
                dirty[u] = False
                du = dist[u]
                for v, w in out[u]:
                    if du + w < dist[v]:
                        dist[v] = du + w
                        prev[v] = u
                        dirty[v] = True
                        changed = True
            if not changed:
                break  # a fixpoint: further passes change nothing
        return [cycle[::-1] for cycle in _cycles_of_functional_graph(prev)]


def _cycles_of_functional_graph(prev: list[int]) -> list[list[int]]:
    """The cycles of the graph v -> prev[v] (-1: none), each listed in prev order."""
    seen = [-1] * len(prev)
    cycles = []
    for t in range(len(prev)):
        v = t
        while seen[v] < 0:
            seen[v] = t
            if prev[v] < 0:
                break
            v = prev[v]
        if prev[v] >= 0 and seen[v] == t:
            cycle = [v]
            w = prev[v]
            while w != v:
                cycle.append(w)
                w = prev[w]
            cycles.append(cycle)
    return cycles
