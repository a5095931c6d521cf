"""Network partitions of one cluster node, injected by fault proxies (bounded versions
of ``make chaos``'s partition rows; tests/chaos/partition.py says what each does).

Each case: 3 nodes, node A's links to its store and bus (or its clients) broken under
load while A keeps running. The ledger must show 0 lost, 0 duplicated, 0 out of order;
A must report itself unhealthy (503) while it cannot reach its store or bus, and
healthy again by itself after the heal; presence converges on every node within
``node_timeout`` (3 s) of the heal plus a 1.5 s margin for polling three nodes on a
loaded machine (partition.CONVERGENCE_BOUND says why): a user whose only device left
A during the partition is shown offline everywhere, on the Redis bus and on the
PostgreSQL bus. (``make chaos`` also blocks the links: held, not lost, bytes.)
"""

from __future__ import annotations

import pytest

from tests.chaos import partition
from tests.chaos.scenarios import Result

pytestmark = pytest.mark.slow


def _assert_held(result: Result, *, unhealthy: bool) -> None:
    fig, notes = result.figures, result.notes
    print(f"\n{result.name}: {fig}\n{notes}")  # the figures, with -s
    assert fig.acked >= 50, fig
    assert fig.delivered >= fig.expected_deliveries >= fig.acked, fig
    assert (fig.lost, fig.duplicated, fig.out_of_order, fig.phantom) == (0, 0, 0, 0), fig
    if unhealthy:  # every fault was seen as a 503, and A came back on its own
        assert notes["faults_seen_503"] == result.faults, notes
        assert notes["healthy_again_s"] is not None and notes["healthy_again_s"] < 30, notes
    # _converged raised if presence took longer than its bound; these are its figures.
    assert partition.CONVERGENCE_BOUND == partition.NODE_TIMEOUT + 1.5
    assert notes["offline_converged_s"] < partition.CONVERGENCE_BOUND, notes


async def test_half_open_store_and_bus_redis_bus_postgres_store():
    """The server side of every open link vanishes without a word (no FIN, no RST):
    only timeouts can tell; chats wait or are refused, never falsely acknowledged."""
    result = await partition.partitions("half-open", bus="redis", store="postgres",
                                        link="backend", faults=1)
    _assert_held(result, unhealthy=True)


async def test_half_open_postgres_bus_and_store():
    result = await partition.partitions("half-open", bus="postgres", store="postgres",
                                        link="backend", faults=1)
    _assert_held(result, unhealthy=True)


async def test_half_open_redis_store_and_bus():
    result = await partition.partitions("half-open", bus="redis", store="redis",
                                        link="backend", faults=1)
    _assert_held(result, unhealthy=True)


async def test_client_links_dropped_mid_stream():
    """Every connection of A's clients cut mid-stream, again and again while it lasts:
    the devices reconnect (``make chaos`` also cuts A's store and bus links so)."""
    result = await partition.partitions("drop", bus="postgres", store="postgres",
                                        link="clients", faults=1, down=2.0)
    _assert_held(result, unhealthy=False)
    assert result.figures.connections > 12, result.figures  # A's devices reconnected
