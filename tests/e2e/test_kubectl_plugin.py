"""`kubectl airbyte`: the real kubectl finds the plugin on PATH and runs it against the real API
server, with the session operator and the fake Airbyte doing the rest.

Jobs move by time (Step(..., seconds=N)), not by polls, so the tests hold in either poll mode.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from tests.support.cluster import apply, get, watch_manifest
from tests.support.controlplane import ControlPlane, kubectl_path
from tests.support.fake_airbyte import RunningFake, Step

pytestmark = pytest.mark.cluster

CONNECTION = "9924bcd0-99be-453d-ba47-c2c9766f7da5"
BIN = Path(sys.executable).parent
KIND = "airbytejobwatch.airbyte.watch"
LABEL = "app.kubernetes.io/created-by"
LINE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ  (\w+)\s+(\S+)\s+(.*)$")


def env(plane: ControlPlane) -> dict[str, str]:
    """As a user's shell: the venv's bin (kubectl-airbyte) on PATH, KUBECONFIG set."""
    return {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
            "KUBECONFIG": str(plane.kubeconfig)}  # fmt: skip


def plugin(
    plane: ControlPlane, *args: str, timeout: float = 60, environ: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """`kubectl airbyte ARGS`, printed with its exit code (pytest -s shows them)."""
    done = subprocess.run(
        [kubectl_path(), "airbyte", *args], env=environ or env(plane),
        capture_output=True, text=True, timeout=timeout,
    )  # fmt: skip
    print(f"$ kubectl airbyte {' '.join(args)}  -> exit {done.returncode}")
    for line in (done.stdout + done.stderr).splitlines():
        print(f"    {line}")
    return done


def lines(stdout: str) -> list[tuple[str, str, str]]:
    """The progress lines as (phase, reason, rest); every stdout line must be one."""
    out = []
    for line in stdout.splitlines():
        match = LINE.match(line)
        assert match, f"not a progress line: {line!r}"
        out.append((match.group(1), match.group(2), match.group(3)))
    return out


def create(plane: ControlPlane, ns: str, name: str, job: int, **spec: object) -> None:
    done = apply(plane, ns, watch_manifest(name, {"jobId": job, "pollInterval": "1s", **spec}))
    assert done.returncode == 0, done.stderr


# --- wait: each exit code ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("final", "reason"),
    [("succeeded", "JobSucceeded"), ("failed", "JobFailed"), ("cancelled", "JobCancelled")],
)
def test_wait_follows_the_job_to_its_outcome(
    control_plane: ControlPlane, op_namespace: str, fake_airbyte: RunningFake, airbyte_secret: str,
    final: str, reason: str,
) -> None:  # fmt: skip
    fake_airbyte.fake.add_job(301, [Step("running", seconds=3), Step(final)], rows=5)
    create(control_plane, op_namespace, "w", 301)
    done = plugin(control_plane, "wait", "w", "-n", op_namespace, "--timeout", "40s", timeout=60)
    seen = lines(done.stdout)
    phase = {"succeeded": "Succeeded", "failed": "Failed", "cancelled": "Cancelled"}[final]
    assert seen[-1][:2] == (phase, reason), seen
    assert ("Running", "JobRunning") in [s[:2] for s in seen], "the running state was printed as it came"
    assert len(seen) == len(set(s[:2] for s in seen)), "one line per change, not per poll"
    if final == "succeeded":
        assert done.returncode == 0, done.stderr
        assert seen[-1][2].endswith("rows=5") and done.stderr == ""
    else:
        assert done.returncode == 1, done.stderr
        assert done.stderr.startswith(f"error: {KIND}/w {phase} ({reason}): Airbyte job 301"), done.stderr


def test_wait_exits_1_when_the_watch_timed_out(
    control_plane: ControlPlane, op_namespace: str, fake_airbyte: RunningFake, airbyte_secret: str
) -> None:
    fake_airbyte.fake.add_job(302, [Step("running")])
    create(control_plane, op_namespace, "late", 302, timeout="3s")
    done = plugin(control_plane, "wait", "late", "-n", op_namespace, timeout=60)
    assert done.returncode == 1, done.stderr
    assert lines(done.stdout)[-1][:2] == ("Failed", "TimedOut")
    assert f"error: {KIND}/late Failed (TimedOut)" in done.stderr


def test_wait_exits_2_when_the_watch_does_not_exist(control_plane: ControlPlane, namespace: str) -> None:
    done = plugin(control_plane, "wait", "nothing-here", "-n", namespace)
    assert done.returncode == 2 and done.stdout == ""
    assert (
        done.stderr
        == f'error: airbytejobwatches.airbyte.watch "nothing-here" not found in namespace {namespace}\n'
    )


def test_wait_exits_2_when_its_own_timeout_runs_out(
    control_plane: ControlPlane, op_namespace: str, fake_airbyte: RunningFake, airbyte_secret: str
) -> None:
    fake_airbyte.fake.add_job(303, [Step("running")])
    create(control_plane, op_namespace, "long", 303)
    started = time.monotonic()
    done = plugin(control_plane, "wait", "ajw/long", "-n", op_namespace, "--timeout=4s")
    took = time.monotonic() - started
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith(f"error: timed out waiting for {KIND}/long (phase "), done.stderr
    assert 4 <= took < 30, took
    # --timeout=0 reads once
    once = plugin(control_plane, "wait", "long", "-n", op_namespace, "--timeout=0")
    assert once.returncode == 2 and len(lines(once.stdout)) == 1


def test_a_status_from_before_the_last_edit_is_not_the_answer(
    control_plane: ControlPlane, namespace: str
) -> None:
    """No operator here: the test writes the status as an operator would, a generation late."""
    create(control_plane, namespace, "edited", 304)
    control_plane.kubectl("-n", namespace, "patch", "ajw", "edited", "--type=merge", "-p",
                          '{"spec":{"pollInterval":"5s"}}')  # fmt: skip
    assert get(control_plane, namespace, "edited")["metadata"]["generation"] == 2

    def status(generation: int, phase: str, reason: str) -> None:
        ready = {"type": "Ready", "status": "True" if phase == "Succeeded" else "Unknown", "reason": reason,
                 "message": phase, "observedGeneration": generation,
                 "lastTransitionTime": "2025-01-01T00:00:00Z"}  # fmt: skip
        message = f"{phase} at {generation}"
        body = {"status": {"observedGeneration": generation, "phase": phase, "message": message,
                           "conditions": [ready]}}  # fmt: skip
        control_plane.kubectl("-n", namespace, "patch", "ajw", "edited", "--subresource=status",
                              "--type=merge", "-p", json.dumps(body))  # fmt: skip

    status(1, "Succeeded", "JobSucceeded")
    stale = plugin(control_plane, "wait", "edited", "-n", namespace, "--timeout=2s")
    assert stale.returncode == 2, "a Succeeded of generation 1 does not answer for generation 2"
    assert "(status of generation 1; spec is at 2)" in lines(stale.stdout)[0][2]
    waiter = subprocess.Popen(
        [kubectl_path(), "airbyte", "wait", "edited", "-n", namespace, "--timeout=30s"],
        env=env(control_plane), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert waiter.stdout is not None
    first = waiter.stdout.readline()  # the stale state, printed once the wait has listed
    status(2, "Running", "JobRunning")
    status(2, "Failed", "JobFailed")
    out, err = waiter.communicate(timeout=40)
    print(f"$ kubectl airbyte wait edited (status patched to generation 2)  -> exit {waiter.returncode}")
    assert waiter.returncode == 1, err
    seen = lines(first + out)
    assert [s[:2] for s in seen] == [("Succeeded", "JobSucceeded"), ("Running", "JobRunning"),
                                     ("Failed", "JobFailed")], seen  # fmt: skip
    assert "error: airbytejobwatch.airbyte.watch/edited Failed (JobFailed): Failed at 2" in err


def test_killed_mid_wait_and_run_again_picks_up_where_the_watch_is(
    control_plane: ControlPlane, op_namespace: str, fake_airbyte: RunningFake, airbyte_secret: str
) -> None:
    fake_airbyte.fake.add_job(305, [Step("running", seconds=6), Step("succeeded")], rows=7)
    create(control_plane, op_namespace, "kill", 305)
    waiter = subprocess.Popen(
        [kubectl_path(), "airbyte", "wait", "kill", "-n", op_namespace], env=env(control_plane),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
    )  # fmt: skip
    assert waiter.stdout is not None
    deadline = time.monotonic() + 30
    seen: list[tuple[str, str, str]] = []
    while ("Running", "JobRunning") not in [s[:2] for s in seen]:
        assert time.monotonic() < deadline, seen
        seen += lines(waiter.stdout.readline())
    os.killpg(waiter.pid, signal.SIGKILL)
    waiter.wait(10)
    print(f"$ kubectl airbyte wait kill -n {op_namespace}  -> killed by SIGKILL ({waiter.returncode})")
    assert waiter.returncode == -signal.SIGKILL
    assert get(control_plane, op_namespace, "kill")["status"]["phase"] == "Running", "killed mid-job"
    again = plugin(control_plane, "wait", "kill", "-n", op_namespace, "--timeout=40s")
    assert again.returncode == 0, again.stderr
    resumed = lines(again.stdout)
    assert resumed[0][:2] == ("Running", "JobRunning"), "first, the state the watch is in now"
    assert resumed[-1][:2] == ("Succeeded", "JobSucceeded") and resumed[-1][2].endswith("rows=7")
    done = plugin(control_plane, "wait", "kill", "-n", op_namespace, "--timeout=40s")
    assert done.returncode == 0 and [s[:2] for s in lines(done.stdout)] == [("Succeeded", "JobSucceeded")]


# --- sync and watch: creating watches ----------------------------------------------------------


def test_sync_wait_creates_a_trigger_watch_and_waits_for_its_job(
    control_plane: ControlPlane, op_namespace: str, fake_airbyte: RunningFake, airbyte_secret: str
) -> None:
    fake_airbyte.fake.connection_scripts[CONNECTION] = [Step("running", seconds=2), Step("succeeded")]
    done = plugin(control_plane, "sync", CONNECTION, "--wait", "--poll-interval", "1s", "--timeout", "2h",
                  "-n", op_namespace, timeout=60)  # fmt: skip
    assert done.returncode == 0, done.stderr
    first, *rest = done.stdout.splitlines()
    match = re.fullmatch(rf"{KIND}/(sync-[a-z0-9]{{5}}) created", first)
    assert match, first
    seen = lines("\n".join(rest))
    assert seen[-1][:2] == ("Succeeded", "JobSucceeded"), seen
    obj = get(control_plane, op_namespace, match.group(1))
    assert obj["metadata"]["labels"] == {LABEL: "kubectl-airbyte"}
    assert obj["metadata"]["generateName"] == "sync-"
    assert obj["spec"]["connectionId"] == CONNECTION and obj["spec"]["jobType"] == "sync"  # the CRD's default
    assert obj["spec"]["timeout"] == "2h" and obj["spec"]["pollInterval"] == "1s"
    started = [j for j in fake_airbyte.fake.jobs.values() if j.connection_id == CONNECTION]
    assert [j.job_id for j in started] == [obj["status"]["jobId"]], "one job started, the one watched"
    assert f"Airbyte job {obj['status']['jobId']} succeeded" in seen[-1][2]


def test_sync_wait_exits_1_when_the_job_fails(
    control_plane: ControlPlane, op_namespace: str, fake_airbyte: RunningFake, airbyte_secret: str
) -> None:
    fake_airbyte.fake.connection_scripts[CONNECTION] = [Step("running", seconds=2), Step("failed")]
    done = plugin(control_plane, "sync", CONNECTION, "--job-type", "clear", "--wait", "--poll-interval=1s",
                  "-n", op_namespace, timeout=60)  # fmt: skip
    assert done.returncode == 1, done.stderr
    name = done.stdout.splitlines()[0].split()[0].split("/")[1]
    assert name.startswith("clear-")
    assert lines("\n".join(done.stdout.splitlines()[1:]))[-1][:2] == ("Failed", "JobFailed")
    assert "Failed (JobFailed)" in done.stderr
    assert get(control_plane, op_namespace, name)["spec"]["jobType"] == "clear"


def test_watch_job_id_prints_the_name_or_the_object(
    control_plane: ControlPlane, op_namespace: str, fake_airbyte: RunningFake, airbyte_secret: str
) -> None:
    fake_airbyte.fake.add_job(306, [Step("running", seconds=2), Step("succeeded")], rows=3)
    named = plugin(control_plane, "watch", "306", "-o", "name", "-n", op_namespace)
    assert named.returncode == 0 and named.stderr == ""
    match = re.fullmatch(rf"{KIND}/(job-306-[a-z0-9]{{5}})\n", named.stdout)
    assert match, named.stdout
    obj = get(control_plane, op_namespace, match.group(1))
    assert obj["spec"]["jobId"] == 306 and obj["metadata"]["labels"] == {LABEL: "kubectl-airbyte"}
    assert obj["spec"]["pollInterval"] == "30s" and obj["spec"]["timeout"] == "168h", "the CRD's defaults"

    as_json = plugin(control_plane, "watch", "306", "-o", "json", "--poll-interval=1s", "-n", op_namespace)
    assert as_json.returncode == 0
    printed = json.loads(as_json.stdout)
    assert printed["kind"] == "AirbyteJobWatch" and printed["spec"]["jobId"] == 306
    assert printed["metadata"]["labels"] == {LABEL: "kubectl-airbyte"}
    assert printed["metadata"]["uid"] == get(control_plane, op_namespace, printed["metadata"]["name"])[
        "metadata"]["uid"], "the object as the API server created it"  # fmt: skip

    as_yaml = plugin(control_plane, "watch", "306", "-o", "yaml", "--name", "named-306", "-n", op_namespace)
    assert as_yaml.returncode == 0
    assert yaml.safe_load(as_yaml.stdout)["metadata"]["name"] == "named-306"

    # --wait with -o: stdout is only the name; the progress lines go to stderr
    waited = plugin(control_plane, "watch", "306", "--wait", "-o", "name", "--poll-interval=1s",
                    "-n", op_namespace, timeout=60)  # fmt: skip
    assert waited.returncode == 0, waited.stderr
    assert re.fullmatch(rf"{KIND}/job-306-[a-z0-9]{{5}}\n", waited.stdout), waited.stdout
    assert lines(waited.stderr)[-1][:2] == ("Succeeded", "JobSucceeded")

    listed = control_plane.kubectl("-n", op_namespace, "get", "ajw", "-l", f"{LABEL}=kubectl-airbyte",
                                   "-o", "name").stdout.split()  # fmt: skip
    assert len(listed) == 4, listed


def test_kubeconfig_context_and_namespace_as_kubectl_reads_them(
    control_plane: ControlPlane, op_namespace: str, fake_airbyte: RunningFake, airbyte_secret: str,
    tmp_path: Path,
) -> None:  # fmt: skip
    fake_airbyte.fake.add_job(307, [Step("succeeded")])
    create(control_plane, op_namespace, "here", 307)
    config = yaml.safe_load(control_plane.kubeconfig.read_text())
    test = config["contexts"][0]
    config["contexts"] = [
        {"name": "team", "context": {**test["context"], "namespace": op_namespace}},
        {"name": "other", "context": {**test["context"], "namespace": "default"}},
    ]
    config["current-context"] = "team"
    path = tmp_path / "kubeconfig"
    path.write_text(yaml.safe_dump(config))
    no_env = {k: v for k, v in env(control_plane).items() if k != "KUBECONFIG"}
    no_env["HOME"] = str(tmp_path)  # no ~/.kube/config either
    flag = plugin(control_plane, "wait", "here", f"--kubeconfig={path}", "--timeout=30s", environ=no_env)
    assert flag.returncode == 0, "the current context's namespace"
    other = plugin(
        control_plane, "wait", "here", f"--kubeconfig={path}", "--context", "other", environ=no_env
    )
    assert other.returncode == 2 and "not found in namespace default" in other.stderr
    explicit = plugin(control_plane, "wait", "here", "--context=other", "-n", op_namespace, "--timeout=30s",
                      environ={**no_env, "KUBECONFIG": str(path)})  # fmt: skip
    assert explicit.returncode == 0, "KUBECONFIG, --context and -n over the context's namespace"
    missing = plugin(
        control_plane, "wait", "here", "--context=nope", environ={**no_env, "KUBECONFIG": str(path)}
    )
    assert missing.returncode == 2 and missing.stderr == 'error: context "nope" does not exist\n'


def test_help_usage_errors_and_rejected_watches(control_plane: ControlPlane, namespace: str) -> None:
    helped = plugin(control_plane, "--help")
    assert helped.returncode == 0
    assert all(word in helped.stdout for word in ("wait", "sync", "watch", "exit codes"))
    assert "--wait-timeout" in plugin(control_plane, "sync", "--help").stdout
    listed = subprocess.run([kubectl_path(), "plugin", "list"], env=env(control_plane), capture_output=True,
                            text=True, timeout=30)  # fmt: skip
    assert str(BIN / "kubectl-airbyte") in listed.stdout, listed.stdout + listed.stderr
    usage = plugin(control_plane, "wait")
    assert usage.returncode == 2 and usage.stderr.startswith(
        "error: the following arguments are required: NAME"
    )
    assert "See 'kubectl airbyte wait --help' for usage." in usage.stderr
    bad_flag = plugin(control_plane, "sync", CONNECTION, "--timeout", "soon")
    assert bad_flag.returncode == 2 and "invalid duration 'soon'" in bad_flag.stderr
    rejected = plugin(control_plane, "sync", "not-a-uuid", "-n", namespace)
    assert rejected.returncode == 2 and rejected.stderr.startswith("error: AirbyteJobWatch.airbyte.watch")
    assert "spec.connectionId" in rejected.stderr and rejected.stdout == ""
    assert plugin(control_plane, "watch", "0", "-n", namespace).returncode == 2, (
        "the CRD's rule: positive ids"
    )
    assert control_plane.kubectl("-n", namespace, "get", "ajw", "-o", "name").stdout == ""
