"""The demo: a local control plane, the fake Airbyte and the operator, with deploy/examples/ applied.

Prints the watches as `kubectl get ajw` shows them until every one has settled, then their
Events, and exits 0 if each reached the outcome its scripted job has.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

from tests.support.cluster import OperatorProcess
from tests.support.controlplane import ROOT, ControlPlane, free_port, running
from tests.support.fake_airbyte import DEMO_JOBS, FakeAirbyte, RunningFake
from tests.support.webhook import certificate_args

EXAMPLES = ROOT / "deploy" / "examples"
NAMESPACE = "airbyte-demo"
EXPECTED = {"nightly-sync": "Succeeded", "orders-sync": "Failed", "customers-sync": "Cancelled"}
CLIENT_ID, CLIENT_SECRET = "demo-client", "demo-secret-not-real"
WEBHOOK = "airbyte-watch-demo.airbyte.watch"  # the ValidatingWebhookConfiguration kopf manages


def main() -> int:
    print("Starting kube-apiserver + etcd (built from their Go modules on first use)...", flush=True)
    with (
        running() as plane,
        RunningFake(FakeAirbyte("/api/public/v1", client_id=CLIENT_ID, client_secret=CLIENT_SECRET)) as fake,
    ):
        for job_id, steps in DEMO_JOBS.items():
            fake.fake.add_job(job_id, steps, rows=1000 * job_id, bytes_=65536 * job_id)
        print(f"Control plane at {plane.server}; fake Airbyte at {fake.url}", flush=True)
        plane.kubectl("create", "namespace", NAMESPACE)
        # The example Secret, pointed at the fake Airbyte instead of a real one.
        plane.kubectl(
            "-n", NAMESPACE, "create", "secret", "generic", "airbyte-default",
            f"--from-literal=url={fake.url}", f"--from-literal=clientId={CLIENT_ID}",
            f"--from-literal=clientSecret={CLIENT_SECRET}",
        )  # fmt: skip
        folder = Path(tempfile.mkdtemp(prefix="ajw-demo-"))
        port = free_port()
        # The operator first, with kopf's admission webhook, so that the examples meet it.
        args = ["--namespace", NAMESPACE, "--poll-mode=list", f"--allowed-url={fake.url}",
                "--webhook-port", str(port), "--webhook-host", "localhost",
                "--webhook-managed", WEBHOOK, *certificate_args(folder)]  # fmt: skip
        operator = OperatorProcess(plane, folder / "operator.log", args)
        operator.start()
        wait_for_webhook(plane, port)
        watches = sorted(EXAMPLES.glob("watch-*.yaml"))
        for path in watches:
            print(plane.kubectl("-n", NAMESPACE, "apply", "-f", str(path)).stdout.strip(), flush=True)
        show_refusal(plane)
        try:
            settled = show_until_settled(plane)
        finally:
            operator.stop()
        print("\nEvents:")
        print(plane.kubectl("-n", NAMESPACE, "get", "events", "--sort-by=.metadata.creationTimestamp",
                            "-o", "custom-columns=TYPE:.type,REASON:.reason,OBJECT:.involvedObject.name,"
                            "MESSAGE:.message").stdout)  # fmt: skip
        if settled != EXPECTED:
            print(f"Unexpected outcome: {settled}, expected {EXPECTED}\n{operator.output[-3000:]}")
            return 1
        print("Every watch reached the outcome of its Airbyte job.")
        return 0


def wait_for_webhook(plane: ControlPlane, port: int, timeout: float = 60.0) -> None:
    """Until kopf has pointed its ValidatingWebhookConfiguration at this operator's port."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done = plane.kubectl("get", "validatingwebhookconfiguration", WEBHOOK, "-o", "json", check=False)
        if done.returncode == 0 and f"localhost:{port}/" in done.stdout:
            return
        time.sleep(0.5)
    raise SystemExit("the operator's admission webhook was not configured in time")


def show_refusal(plane: ControlPlane) -> None:
    """A watch whose Secret names an Airbyte the operator may not call: `kubectl apply` says no."""
    plane.kubectl(
        "-n", NAMESPACE, "create", "secret", "generic", "airbyte-elsewhere",
        "--from-literal=url=https://airbyte.elsewhere.example/api/public/v1",
        "--from-literal=clientId=x", "--from-literal=clientSecret=y",
    )  # fmt: skip
    manifest = json.dumps({
        "apiVersion": "airbyte.watch/v1alpha1", "kind": "AirbyteJobWatch",
        "metadata": {"name": "elsewhere-sync", "namespace": NAMESPACE},
        "spec": {"jobId": 1, "serverRef": {"name": "airbyte-elsewhere"}},
    })  # fmt: skip
    done = plane.kubectl("apply", "-f", "-", input=manifest, check=False)
    print("\n$ kubectl apply (a watch whose Secret names another Airbyte)", flush=True)
    print(done.stderr.strip(), flush=True)
    if done.returncode == 0:
        raise SystemExit("the admission webhook let a watch through that --allowed-url refuses")


def show_until_settled(plane: ControlPlane, timeout: float = 120.0) -> dict[str, str]:
    deadline = time.monotonic() + timeout
    last: dict[str, object] = {}
    while time.monotonic() < deadline:
        items = json.loads(plane.kubectl("-n", NAMESPACE, "get", "ajw", "-o", "json").stdout)["items"]
        state = {i["metadata"]["name"]: i.get("status", {}) for i in items}
        if state != last:  # print the table only when a watch changed
            table = plane.kubectl("-n", NAMESPACE, "get", "ajw").stdout
            print(f"\n$ kubectl get ajw   ({time.strftime('%H:%M:%S')})\n{table}", end="", flush=True)
            last = state
        phases = {name: status.get("phase") for name, status in state.items()}
        if all(p in ("Succeeded", "Failed", "Cancelled") for p in phases.values()):
            return {name: str(phase) for name, phase in phases.items()}
        time.sleep(1)
    raise SystemExit("watches did not settle in time")


if __name__ == "__main__":
    sys.exit(main())
