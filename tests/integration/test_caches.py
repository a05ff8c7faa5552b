"""What a watch used (an Airbyte client with its session and token, a cached Secret, a place in
the scheduler, a metrics entry) is let go once the watch is gone."""

from __future__ import annotations

from airbyte_watch.airbyte.client import ClientPool

from tests.conftest import CLIENT_ID, CLIENT_SECRET
from tests.support.fake_airbyte import RunningFake
from tests.support.memory import NAMESPACE, Harness

NS = NAMESPACE


async def test_caches_let_go_of_what_deleted_watches_used(fake_airbyte: RunningFake) -> None:
    fake_airbyte.fake.add_job(1, [("running", None)])
    fake_airbyte.fake.add_job(2, [("running", None)])
    pool = ClientPool()
    h = Harness(pool=pool)
    login = {"url": fake_airbyte.url, "clientId": CLIENT_ID, "clientSecret": CLIENT_SECRET}
    h.kube.put_data("secrets", NS, "one", login)
    # The same server through its explicit token URL: other settings, so another client.
    h.kube.put_data("secrets", NS, "two", {**login, "tokenUrl": f"{fake_airbyte.url}/applications/token"})
    h.kube.create(NS, "w1", {"jobId": 1, "serverRef": {"name": "one"}})
    h.kube.create(NS, "w2", {"jobId": 2, "serverRef": {"name": "two"}})
    try:
        await h.run_for(1)
        assert h.obj("w1")["status"]["phase"] == "Running" and h.obj("w2")["status"]["phase"] == "Running"
        assert len(pool) == 2 and len(h.connections) == 2
        h.kube.delete(NS, "w1")
        await h.run_for(45)  # past the Secret cache's lifetime
        assert len(pool) == 1 and len(h.connections) == 1
        assert set(h.watches.known) == {(NS, "w2")} and len(h.watches.scheduler) == 1
        assert set(h.watches.metrics._phases) == {(NS, "w2")}
        h.kube.delete(NS, "w2")
        await h.run_for(45)
        assert len(pool) == 0 and len(h.connections) == 0 and h.watches.scheduler.heap_size == 0
        assert list(h.connections.secret_values()) == [CLIENT_SECRET, CLIENT_SECRET]  # still redacted
        await h.run_for(700)  # an answer can no longer be on its way: the values go too
        assert list(h.connections.secret_values()) == []
    finally:
        await pool.close()
