"""A bounded load test on a real uvicorn process on 127.0.0.1 (the bench's server and clients).

1 client for 6 s, then 8 clients for 10 s, on the load-testing model with a small
budget: no request fails, concurrent requests are batched, and the server's
memory stays flat while far more plans are answered than its store keeps. The
gradient planner (8 restarts) keeps each request's compute small, so that planner
calls are shared and throughput grows with the number of clients.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from server.bench import LOAD_TEST_IMAGE_SIZE, LOAD_TEST_MODEL, ServerProcess, plan_body, run_level

STORE = 16
#: Growth of the server's RSS allowed across the measured run (allocator slack, not plans).
RSS_SLACK_MB = 48.0


@pytest.fixture(scope="module")
def server() -> Iterator[ServerProcess]:
    settings = {
        "WORLDPLAN_BATCH_WINDOW_MS": "20",
        "WORLDPLAN_PLAN_STORE_SIZE": str(STORE),
        "WORLDPLAN_TORCH_THREADS": "1",
    }
    with ServerProcess(tiny=True, settings=settings) as proc:
        yield proc


BODY = plan_body(
    LOAD_TEST_MODEL,
    image_size=LOAD_TEST_IMAGE_SIZE,
    planner="gradient",
    horizon=2,
    iterations=2,
    seed=0,
)


def test_load_without_errors_batched_and_memory_flat(server: ServerProcess) -> None:
    headers = {"X-API-Key": server.key}
    first = httpx.post(f"{server.url}/v1/plan", json=BODY, headers=headers, timeout=120)
    assert first.status_code == 200, first.text
    single = run_level(server, BODY, concurrency=1, duration_s=6.0, max_requests=500)
    rss_before = single.rss_mb
    assert rss_before is not None, "needs /proc to read the server's memory"
    eight = run_level(server, BODY, concurrency=8, duration_s=10.0, max_requests=2000)

    for level in (single, eight):
        assert level.errors == 0, level.error_samples
        assert level.plans > 0
    assert single.mean_batch == 1.0
    assert eight.mean_batch > 1.0, eight  # concurrent requests shared planner calls
    # Throughput grows with load (a ratio within this run; the bench measures the full 3x claim).
    assert eight.plans_per_s > 1.5 * single.plans_per_s, (single, eight)
    answered = 1 + single.plans + eight.plans
    assert answered > 2 * STORE, f"too few plans ({answered}) to exercise the store bound"
    gone = httpx.get(f"{server.url}/v1/plans/{first.json()['plan_id']}", headers=headers)
    assert gone.status_code == 404  # the oldest plan was evicted
    assert eight.rss_mb is not None
    assert eight.rss_mb - rss_before < RSS_SLACK_MB, (rss_before, eight.rss_mb)
