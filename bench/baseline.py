"""The baseline: a bare aiohttp loop making the operator's GETs, at the same rate, to the same fake.

Prints {"requests": N, "cpu_seconds": S} for this process alone.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import time

import aiohttp


async def poll(session: aiohttp.ClientSession, url: str, offset: float, interval: float, until: float,
               counter: list[int]) -> None:  # fmt: skip
    await asyncio.sleep(offset)
    while time.monotonic() < until:
        async with session.get(url, headers={"Accept": "application/json"}) as response:
            await response.json()
        counter[0] += 1
        await asyncio.sleep(interval)


async def main(base: str, ids: list[int], interval: float, duration: float) -> dict[str, float]:
    counter = [0]
    before = resource.getrusage(resource.RUSAGE_SELF)
    until = time.monotonic() + duration
    connector = aiohttp.TCPConnector(limit=64)
    async with aiohttp.ClientSession(connector=connector) as session:
        await asyncio.gather(*(
            poll(session, f"{base}/jobs/{job_id}", interval * i / len(ids), interval, until, counter)
            for i, job_id in enumerate(ids)
        ))  # fmt: skip
    after = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    return {"requests": counter[0], "cpu_seconds": cpu}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--base", required=True)
    parser.add_argument("--first-id", type=int, required=True)
    parser.add_argument("--n", type=int, required=True)
    parser.add_argument("--interval", type=float, default=30.0)
    parser.add_argument("--duration", type=float, default=60.0)
    args = parser.parse_args()
    ids = list(range(args.first_id, args.first_id + args.n))
    print(json.dumps(asyncio.run(main(args.base, ids, args.interval, args.duration))))
