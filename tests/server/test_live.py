"""The service in a real uvicorn process on a loopback port, and its preview in real Chromium."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from server_fixtures import KEY, plan_body

from server.bench import free_port

HERE = Path(__file__).parent


@pytest.fixture(scope="module")
def server_url() -> Iterator[str]:
    port = free_port()
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(HERE), str(HERE.parent / "world_model")]),
    }
    proc = subprocess.Popen(
        [sys.executable, str(HERE / "serve_tiny.py"), str(port), KEY],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                err = proc.stderr.read().decode() if proc.stderr else ""
                raise RuntimeError(f"server exited early: {err[-2000:]}")
            try:
                if httpx.get(f"{url}/v1/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.2)
        else:
            raise RuntimeError("server did not become healthy in 60 s")
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def test_plan_over_real_http(server_url: str) -> None:
    r = httpx.post(
        f"{server_url}/v1/plan", json=plan_body(), headers={"X-API-Key": KEY}, timeout=60
    )
    assert r.status_code == 200, r.text
    assert len(r.json()["actions"]) == 6


def test_concurrent_requests_are_batched_without_errors(server_url: str) -> None:
    async def fire() -> list[int]:
        async with httpx.AsyncClient(headers={"X-API-Key": KEY}, timeout=120) as client:
            rs = await asyncio.gather(
                *(client.post(f"{server_url}/v1/plan", json=plan_body(seed=i)) for i in range(8))
            )
            return [r.status_code for r in rs]

    assert asyncio.run(fire()) == [200] * 8
    metrics = httpx.get(f"{server_url}/metrics", timeout=10).text
    count = float(re.search(r"worldplan_batch_size_count (\S+)", metrics).group(1))  # type: ignore[union-attr]
    total = float(re.search(r"worldplan_batch_size_sum (\S+)", metrics).group(1))  # type: ignore[union-attr]
    assert total / count > 1.0  # at least one batch held more than one request


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def test_preview_page_renders_its_images_in_chromium(server_url: str) -> None:
    browser = _chromium()
    assert browser is not None, "Chromium is needed (make test installs Debian's chromium)"
    plan = httpx.post(
        f"{server_url}/v1/plan", json=plan_body(), headers={"X-API-Key": KEY}, timeout=60
    ).json()
    page = f"{server_url}{plan['preview_url']}?api_key={KEY}"
    with tempfile.TemporaryDirectory() as profile:
        out = subprocess.run(
            [
                browser,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                f"--user-data-dir={profile}",
                "--virtual-time-budget=5000",
                "--dump-dom",
                page,
            ],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    assert 'data-images-loaded="2"' in out.stdout, out.stdout[:500] + out.stderr[-2000:]
