"""The suite's port picking: the ports a session plans for its services stay out of the kernel's ephemeral range
(where any client socket may take them before the service binds) and out of the other session's share."""

from __future__ import annotations

from platform_core import seaweed
from tests import conftest


def _shares(monkeypatch, count: int) -> list[tuple[str, int, int]]:
    out = []
    for slot in range(count):
        monkeypatch.setenv("PLATFORM_TEST_SLOT", f"{slot}/{count}")
        for kind, offset in (("block", seaweed.GRPC_OFFSET), ("single", 0)):
            low, high = conftest.port_range(offset)
            out.append((f"{kind}{slot}", low, high + 16))  # + room for the block's size
    return out


def test_planned_ports_stay_below_the_ephemeral_range_and_shares_are_disjoint(monkeypatch):
    ephemeral = conftest.ephemeral_low()
    for count in (1, 2, 3):
        shares = _shares(monkeypatch, count)
        for name, low, high in shares:
            assert 20000 <= low < high <= 30000, (name, low, high)
            if name.startswith("block"):
                assert high + seaweed.GRPC_OFFSET <= ephemeral, (name, high, ephemeral)  # the gRPC ports too
        spans = sorted((low, high) for _, low, high in shares)
        assert all(a[1] <= b[0] for a, b in zip(spans, spans[1:], strict=False)), spans


def test_a_picked_block_is_free_and_in_this_sessions_share(monkeypatch):
    monkeypatch.setenv("PLATFORM_TEST_SLOT", "1/2")
    low, high = conftest.port_range(seaweed.GRPC_OFFSET)
    base = conftest.free_port_block(5, offset=seaweed.GRPC_OFFSET)
    assert low <= base < high
    grpc = base + seaweed.GRPC_OFFSET
    assert all(conftest.is_free(p) for p in [*range(base, base + 5), *range(grpc, grpc + 5)])
