"""The search over requests: newest first, a page at a time, never more than its budget of
records read per page, with the cursor going on exactly where a page stopped."""

from __future__ import annotations

import json
from collections.abc import Sequence

import pytest

from grantline.api.ui import search as search_module
from grantline.api.ui.search import PAGE_SIZE, SCAN_BUDGET, Hit, Results, matches, search


def requested(seq: int, request_id: str, subject: str, role: str = "db-read") -> bytes:
    body = {
        "seq": seq,
        "request_id": request_id,
        "event": "requested",
        "at": f"2026-11-23T10:00:{seq % 60:02d}.000Z",
        "data": {
            "identity": {"subject": subject},
            "request": {"role": role, "target": "postgres://orders-db"},
        },
    }
    return json.dumps(body).encode()


class MemoryRequests:
    """A log in memory: every ``every``-th record is a ``requested`` record."""

    def __init__(self, size: int, every: int = 1, subject: str = "user:alice") -> None:
        self.size = size
        self.rows = {
            seq: requested(seq, f"req-{seq:06d}", subject if seq % 2 else "user:bob")
            for seq in range(1, size + 1)
            if seq % every == 0
        }
        self.statuses_of = {
            f"req-{seq:06d}": "issued" if seq % 3 else "revoked" for seq in self.rows
        }
        self.read = 0  # records looked at

    async def newest(self) -> int:
        return self.size

    async def requested(self, after: int, limit: int) -> list[tuple[int, bytes]]:
        self.read += limit
        upper = min(after + limit, self.size)
        return [(seq, self.rows[seq]) for seq in range(after + 1, upper + 1) if seq in self.rows]

    async def statuses(self, request_ids: Sequence[str]) -> dict[str, str]:
        return {rid: self.statuses_of[rid] for rid in request_ids if rid in self.statuses_of}

    async def one(self, request_id: str) -> Hit | None:
        if request_id not in self.statuses_of:
            return None
        return Hit(request_id, 0, "t", "user:alice", "db-read", "x", self.statuses_of[request_id])


async def all_pages(requests: MemoryRequests, query: str, status: str = "") -> list[Results]:
    pages = [await search(requests, query, status)]
    while pages[-1].next_before is not None:
        pages.append(await search(requests, query, status, pages[-1].next_before))
    return pages


async def test_hits_come_newest_first_a_page_at_a_time_and_none_is_skipped() -> None:
    requests = MemoryRequests(size=70)
    pages = await all_pages(requests, "")
    seqs = [hit.seq for page in pages for hit in page.hits]
    assert [len(page.hits) for page in pages] == [PAGE_SIZE, PAGE_SIZE, 20]
    assert seqs == list(range(70, 0, -1))
    assert pages[0].next_before == 70 - PAGE_SIZE + 1


async def test_the_query_matches_id_prefixes_and_subjects_and_the_status_filters() -> None:
    requests = MemoryRequests(size=60)
    bobs = [hit.seq for page in await all_pages(requests, "BOB") for hit in page.hits]
    assert bobs == list(range(60, 0, -2))
    revoked_bobs = [
        hit for page in await all_pages(requests, "user:bob", "revoked") for hit in page.hits
    ]
    assert [hit.seq for hit in revoked_bobs] == [60, 54, 48, 42, 36, 30, 24, 18, 12, 6]
    assert {hit.status for hit in revoked_bobs} == {"revoked"}
    prefix = await search(requests, "req-00004")
    assert [hit.seq for hit in prefix.hits] == [49, 48, 47, 46, 45, 44, 43, 42, 41, 40]


async def test_a_page_reads_no_more_than_its_budget_and_says_where_to_go_on() -> None:
    requests = MemoryRequests(size=3 * SCAN_BUDGET, every=7)
    page = await search(requests, "nobody matches this")
    assert page.hits == ()
    assert requests.read == SCAN_BUDGET
    assert page.next_before == 2 * SCAN_BUDGET + 1
    assert page.oldest == 2 * SCAN_BUDGET + 1
    last = await search(requests, "nobody matches this", before=SCAN_BUDGET + 1)
    assert (last.next_before, last.oldest) == (None, 1)


async def test_a_whole_request_id_is_looked_up_however_old() -> None:
    requests = MemoryRequests(size=3 * SCAN_BUDGET)
    whole = "req-" + "0" * 26 + "000003"  # 36 characters, as a UUID
    requests.rows[3] = requested(3, whole, "user:alice")
    requests.statuses_of[whole] = "expired"

    exact = await search(requests, whole)

    assert [(hit.request_id, hit.status) for hit in exact.hits] == [(whole, "expired")]
    assert exact.next_before is None
    assert requests.read == 0
    assert (await search(requests, whole, "issued")).hits == ()  # then scanned, not found


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("", True),
        ("  ", True),
        ("REQ-1", True),
        ("alice", True),
        ("db-", True),
        ("orders", True),
        ("req-2", False),
        ("bob", False),
    ],
)
def test_matching(query: str, expected: bool) -> None:
    hit = Hit("req-1234", 1, "t", "user:alice", "db-read", "postgres://orders-db")
    assert matches(hit, query) is expected


def test_the_budget_is_a_whole_number_of_windows() -> None:
    assert SCAN_BUDGET % search_module.WINDOW == 0
