"""Per-request summaries POSTed in batches to a control plane: no bodies or credentials, retried while it is down."""

from __future__ import annotations

from collections.abc import Iterator

import orjson
import pytest
from aiohttp import web

from core.telemetry.analytics import AnalyticsForwarder
from core.telemetry.costs import PriceTable
from core.telemetry.pipeline import LogPipeline
from tests.fakes.server import ThreadedServer
from tests.telemetry.conftest import MemorySink, entry

RESPONSE = orjson.dumps({"model": "gpt-4o-mini", "choices": [{"message": {"content": "the private answer"}}],
                         "usage": {"prompt_tokens": 10, "completion_tokens": 2, "total_tokens": 12}})


class ControlPlane:
    def __init__(self) -> None:
        self.batches: list[dict] = []
        self.headers: list[dict[str, str]] = []
        self.fail_next = 0
        app = web.Application()
        app.router.add_post("/v1/analytics", self._receive)
        self.server = ThreadedServer(app)

    async def _receive(self, request: web.Request) -> web.Response:
        if self.fail_next:
            self.fail_next -= 1
            return web.json_response({"error": "busy"}, status=503)
        self.headers.append(dict(request.headers))
        self.batches.append(await request.json())
        return web.json_response({"ok": True})


@pytest.fixture(scope="module")
def control_plane() -> Iterator[ControlPlane]:
    plane = ControlPlane()
    plane.server.start()
    yield plane
    plane.server.stop()


async def test_summaries_reach_the_control_plane_without_bodies(control_plane: ControlPlane) -> None:
    control_plane.batches.clear()
    control_plane.fail_next = 1
    analytics = AnalyticsForwarder(f"{control_plane.server.url}/v1/analytics", replica="r1", token="cp-token-1234",
                                   batch_max_records=3, interval_s=0.05)
    pipeline = LogPipeline(MemorySink(), replica="r1", prices=PriceTable(), observers=[analytics])
    pipeline.start()
    analytics.start()
    for i in range(5):
        pipeline.submit(entry(i, provider="openai", model="gpt-4o-mini", response_body=RESPONSE,
                              request_headers={"authorization": "Bearer sk-secret-provider-key"},
                              request_body={"messages": [{"role": "user", "content": "the private question"}]}))
    assert await pipeline.flush(5)
    assert await analytics.flush(5)
    await analytics.aclose()
    await pipeline.aclose()

    events = [event for batch in control_plane.batches for event in batch["events"]]
    assert [e["trace_id"] for e in events] == [f"t{i}" for i in range(5)]  # the 503'd batch was sent again
    assert analytics.failed_posts == 1 and analytics.dropped == 0
    assert control_plane.headers[0]["Authorization"] == "Bearer cp-token-1234"
    first = events[0]
    assert (first["provider"], first["model"], first["status"]) == ("openai", "gpt-4o-mini", 200)
    assert (first["prompt_tokens"], first["completion_tokens"], first["total_tokens"]) == (10, 2, 12)
    assert first["cost"] > 0 and first["cost_status"] == "ok"
    raw = orjson.dumps(control_plane.batches)
    assert b"private" not in raw and b"sk-secret-provider-key" not in raw


async def test_a_full_buffer_drops_the_oldest_and_counts_them() -> None:
    analytics = AnalyticsForwarder("http://127.0.0.1:9/never", replica="r1", buffer_max_records=3)
    pipeline = LogPipeline(MemorySink(), replica="r1", observers=[analytics])
    for i in range(5):
        pipeline.submit(entry(i))
    assert await pipeline.flush(5)
    assert analytics.dropped == 2 and analytics.pending == 3
    assert not await analytics.flush(0.5)  # nothing listens there: kept, not lost
    assert analytics.pending == 3
