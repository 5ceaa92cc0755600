"""How fast recordkit delivers webhooks (issue 12, acceptance 4): deliveries per second to a local receiver and
the delay from a status change to its delivery.

A real `recordkit serve` (SQLite, log level warning) runs with `RECORDKIT_MAX_RECORDINGS=0`, so a started
recording stays INVOKED and each start is exactly one status change: one `recording.statusUpdate`. The bench
registers one webhook to a receiver in this process (aiohttp on 127.0.0.1, answering 200 and verifying every
signature), then starts `--events` recordings as a burst, `--concurrency` at a time, and as many again paced at
`--paced` a second, each in its own meeting (its own stream, so deliveries may overlap). Delay: the
receiver's arrival time minus the event's `invokedTime` (the change, written in the same transaction as the
delivery row). Throughput: deliveries over the span from the first start to the last arrival. Both clocks are
this machine's.

Run from the repository root::

    .venv/bin/python -m bench.webhook_throughput                 # 300 + 300 events, about a minute
    .venv/bin/python -m bench.webhook_throughput --events 1000 --concurrency 16 --paced 20
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from datetime import UTC
from pathlib import Path

import httpx

from bench.support import Api, bench_server, cpu_seconds
from recordkit.clock import parse_iso8601
from tests.support.webhook_receiver import Received, webhook_receiver


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def delays_ms(received: list[Received]) -> list[float]:
    """Arrival minus the status change (`invokedTime`, written with the delivery row), per delivery."""
    changed = [parse_iso8601(item.payload["recording"]["invokedTime"]).replace(tzinfo=UTC) for item in received]
    return [(item.arrived_s - at.timestamp()) * 1000 for item, at in zip(received, changed, strict=True)]


def report(title: str, received: list[Received], span_s: float) -> None:
    delays = delays_ms(received)
    print(f"{title:28} {len(received) / span_s:8.1f}/s  delay ms p50 {percentile(delays, 0.5):7.1f}  "
          f"p99 {percentile(delays, 0.99):7.1f}  max {max(delays):7.1f}")  # fmt: skip


async def main(events: int, concurrency: int, paced_per_s: float) -> None:
    with tempfile.TemporaryDirectory(prefix="webhook-bench-") as scratch:
        env = {"RECORDKIT_MAX_RECORDINGS": "0"}
        with bench_server(Path(scratch) / "data", env=env) as served:
            key = (await asyncio.to_thread(httpx.get, f"{served.base_url}/.well-known/webhooks.json")).json()
            api = Api(served)
            app_id = await api.new_app("Webhook bench")
            meetings = [
                (await api.data("POST", f"/{app_id}/meetings", json={"title": f"m{index}"}))["id"]
                for index in range(2 * events)
            ]
            async with webhook_receiver(key["data"]["publicKey"]) as receiver:
                body = {"name": "bench", "url": receiver.url, "events": ["recording.statusUpdate"]}
                await api.data("POST", f"/{app_id}/webhooks", json=body)
                gate = asyncio.Semaphore(concurrency)

                async def start(meeting_id: str) -> None:
                    async with gate:
                        await api.data("POST", f"/{app_id}/recordings", json={"meeting_id": meeting_id})

                # A burst: as many changes as the API takes, `concurrency` at a time.
                cpu_before = cpu_seconds(served.pid)
                began = time.time()
                await asyncio.gather(*(start(meeting_id) for meeting_id in meetings[:events]))
                await receiver.wait_for_requests(events, timeout_s=120)
                burst = receiver.unique()
                burst_span_s = max(item.arrived_s for item in burst) - began
                cpu_used = cpu_seconds(served.pid) - cpu_before
                # Paced: one change at a time at a steady rate, the delay a receiver sees in normal use.
                began = time.time()
                for meeting_id in meetings[events:]:
                    await start(meeting_id)
                    await asyncio.sleep(1 / paced_per_s)
                await receiver.wait_for_requests(2 * events, timeout_s=120)
                paced = receiver.unique()[len(burst) :]
                paced_span_s = max(item.arrived_s for item in paced) - began
            await api.close()
    print(f"Webhook delivery to a local receiver: {events} status changes per phase (every signature verified)")
    report(f"burst, {concurrency} starts at a time", burst, burst_span_s)
    report(f"paced, {paced_per_s:g} changes/s", paced, paced_span_s)
    print(f"server CPU per event in the burst: {cpu_used / len(burst) * 1000:.1f} ms (the API start and the delivery)")
    print(f"failed verification: {receiver.bad_signatures}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--events", type=int, default=300)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--paced", type=float, default=10.0, help="changes per second in the paced phase")
    arguments = parser.parse_args()
    asyncio.run(main(arguments.events, arguments.concurrency, arguments.paced))
