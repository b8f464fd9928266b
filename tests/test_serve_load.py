"""``chorus serve`` on a real loopback socket: concurrency, a bounded load test and OpenAPI fuzzing.

- Concurrent requests from 8 threads get exactly the answers they get one at a time.
- Load: 500 mixed requests (zero-shot on images, text search, text embedding),
  8 in flight at a time, must all succeed; p50/p95 latency is printed (run
  with ``-s`` to see it) and, when ``CHORUS_SERVE_LOAD_OUT`` names a folder,
  written there as ``results.json`` + ``results.md`` (docs/benchmarks/serve.md
  quotes the committed run).
- Fuzzing: schemathesis generates requests from the served OpenAPI spec
  (property-based, hypothesis; 20 valid and 20 invalid per operation) and
  no response may be a 5xx.
Servers bind 127.0.0.1 only and stop when the module ends.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import httpx
import numpy as np
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from test_serve_support import digit_images, loopback_server, served_folders

from chorus.bench.driver import Report
from chorus.serve import create_app


@pytest.fixture(scope="module")
def base_url(tmp_path_factory, real_data_root):
    runs, index_dir = served_folders(tmp_path_factory, real_data_root)
    with loopback_server(create_app(runs, index_dir)) as url:
        yield url


def zeroshot(client: httpx.Client, png: bytes) -> list[tuple[str, float]]:
    response = client.post("/zeroshot", files={"image": ("d.png", png, "image/png")})
    response.raise_for_status()
    return [(p["label"], p["score"]) for p in response.json()["labels"]]


def test_concurrent_requests_get_their_own_answers(base_url):
    images = [png for png, _ in digit_images(24)]
    with httpx.Client(base_url=base_url, timeout=60) as client:
        alone = [zeroshot(client, png) for png in images]
        with ThreadPoolExecutor(8) as pool:
            together = list(pool.map(lambda png: zeroshot(client, png), images))
    assert len({tuple(a) for a in alone}) > 1  # the inputs really differ, so a mix-up would show
    for a, b in zip(alone, together):
        assert [label for label, _ in a] == [label for label, _ in b]
        np.testing.assert_allclose([s for _, s in a], [s for _, s in b], atol=1e-6)


async def _load(base_url: str, total: int, concurrency: int) -> tuple[list[float], list[str]]:
    images = itertools.cycle(png for png, _ in digit_images(20))
    words = itertools.cycle(["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"])
    gate = asyncio.Semaphore(concurrency)
    latencies, errors = [], []

    async def one(client: httpx.AsyncClient, i: int) -> None:
        kind = i % 3
        async with gate:
            start = time.perf_counter()
            if kind == 0:
                r = await client.post("/zeroshot", files={"image": ("d.png", next(images), "image/png")})
            elif kind == 1:
                r = await client.post("/search", data={"text": f"the number {next(words)}.", "k": "8"})
            else:
                r = await client.post("/embed", data={"text": f"a handwritten {next(words)}."})
            latencies.append(time.perf_counter() - start)
        if r.status_code != 200:
            errors.append(f"{r.request.url.path}: {r.status_code} {r.text[:200]}")

    limits = httpx.Limits(max_connections=concurrency)
    async with httpx.AsyncClient(base_url=base_url, timeout=60, limits=limits) as client:
        await asyncio.gather(*(one(client, i) for i in range(total)))
    return latencies, errors


@dataclass(frozen=True)
class LoadConfig:
    requests: int = 500
    concurrency: int = 8


def test_load_500_requests_8_concurrent_no_errors(base_url):
    cfg = LoadConfig()
    out = os.environ.get("CHORUS_SERVE_LOAD_OUT")
    report = Report(out, "serve_load", cfg) if out else None
    start = time.perf_counter()
    latencies, errors = asyncio.run(_load(base_url, total=cfg.requests, concurrency=cfg.concurrency))
    wall = time.perf_counter() - start
    assert errors == []
    assert len(latencies) == cfg.requests
    p50, p95 = np.percentile(latencies, [50, 95]) * 1000
    print(
        f"\nserve load: {cfg.requests} requests, {cfg.concurrency} concurrent, 0 errors, {wall:.1f} s, "
        f"{cfg.requests / wall:.1f} req/s, p50 {p50:.0f} ms, p95 {p95:.0f} ms"
    )
    if report is not None:
        report.results = {
            "errors": len(errors),
            "wall_s": round(wall, 2),
            "requests_per_s": round(cfg.requests / wall, 1),
            "p50_ms": round(float(p50), 1),
            "p95_ms": round(float(p95), 1),
            "load_average": [round(x, 2) for x in os.getloadavg()],
        }
        report.table(
            "Load test on loopback",
            ["requests", "concurrency", "errors", "wall (s)", "throughput (req/s)", "p50 (ms)", "p95 (ms)"],
            [
                [
                    cfg.requests,
                    cfg.concurrency,
                    len(errors),
                    f"{wall:.1f}",
                    f"{cfg.requests / wall:.1f}",
                    f"{p50:.0f}",
                    f"{p95:.0f}",
                ]
            ],
            note=f"Load average (1, 5, 15 min) at the end: {report.results['load_average']}.",
        )
        report.write()


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE], ids=["valid", "invalid"])
def test_fuzzed_requests_never_get_a_5xx(base_url, mode):
    schema = schemathesis.openapi.from_url(f"{base_url}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert {op.label for op in operations} >= {
        "POST /embed",
        "POST /zeroshot",
        "POST /search",
        "POST /align",
        "GET /runs",
        "GET /health",
        "GET /media/{index}/{item}",
    }
    fuzzed = set()
    for operation in operations:

        @settings(
            max_examples=20, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True, database=None
        )
        @given(case=operation.as_strategy(generation_mode=mode))
        def check(case):  # noqa: ANN001
            response = case.call(timeout=60)
            assert response.status_code < 500, (
                f"{case.method} {case.path}: {response.status_code} {response.text[:300]}"
            )

        try:
            check()
            fuzzed.add(operation.label)
        except Unsatisfiable:  # no invalid request exists for an operation without inputs (GET /health)
            assert mode == GenerationMode.NEGATIVE and operation.label in ("GET /health", "GET /runs")
    assert len(fuzzed) >= 5
