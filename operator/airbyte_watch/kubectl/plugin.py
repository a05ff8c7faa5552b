"""`kubectl airbyte`: create AirbyteJobWatches and wait on them from a shell, a script or CI.

kubectl runs any `kubectl-airbyte` on PATH as `kubectl airbyte`, with the arguments after the
plugin's name (flags placed before it are refused by kubectl), so this command reads
--kubeconfig, --context and -n/--namespace itself, as kubectl would. Talking to the cluster is
the official client's job (kubernetes.config, CustomObjectsApi); following a watch is
kubectl_follow's. Exit codes: see kubectl_follow.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import yaml
from kubernetes import client, config
from kubernetes.client.rest import ApiException
from kubernetes.config.config_exception import ConfigException

from .. import GROUP, KIND, PLURAL, VERSION
from ..core.durations import parse_duration
from .follow import EXIT_NO_OUTCOME, Follower, api_error, resource_name

PROG = "kubectl airbyte"
CREATED_BY = "app.kubernetes.io/created-by"
CREATED_BY_VALUE = "kubectl-airbyte"
SERVICE_ACCOUNT_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
JOB_TYPES = ("sync", "reset", "clear", "refresh")  # the CRD's enum has the last word
OUTPUTS = ("name", "json", "yaml")


class UsageError(Exception):
    """Bad flags or arguments: `error: ...` and a pointer to --help, exit 2."""


class PluginError(Exception):
    """Anything else that stops the command before an outcome: `error: ...`, exit 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message}\nSee '{self.prog} --help' for usage.")


@dataclass
class Cluster:
    api: client.CustomObjectsApi
    namespace: str


# --- the kubeconfig, as kubectl reads it -------------------------------------------------------


def connect(kubeconfig: str | None, context: str | None, namespace: str | None) -> Cluster:
    """An API client for the kubeconfig's current context (or `context`) and the namespace to
    use: -n, else the context's own, else `default`. Without any kubeconfig (no --kubeconfig,
    no KUBECONFIG, no ~/.kube/config) it falls back to the in-cluster service account, as
    kubectl does."""
    path = kubeconfig or os.environ.get("KUBECONFIG") or None
    if path is None and not Path("~/.kube/config").expanduser().exists() and context is None:
        return _in_cluster(namespace)
    try:
        contexts, current = config.list_kube_config_contexts(config_file=path)
        chosen = current
        if context is not None:
            chosen = next((c for c in contexts if c.get("name") == context), None)
            if chosen is None:
                raise PluginError(f'context "{context}" does not exist')
        api_client = config.new_client_from_config(config_file=path, context=context)
    except ConfigException as exc:
        raise PluginError(f"invalid configuration: {exc}") from exc
    ns = namespace or (chosen or {}).get("context", {}).get("namespace") or "default"
    return Cluster(client.CustomObjectsApi(api_client), ns)


def _in_cluster(namespace: str | None) -> Cluster:
    configuration = client.Configuration()
    try:
        config.load_incluster_config(client_configuration=configuration)
    except ConfigException as exc:
        raise PluginError(
            "no configuration has been provided: set --kubeconfig or KUBECONFIG, or run in a pod"
        ) from exc
    ns = namespace
    if ns is None and SERVICE_ACCOUNT_NAMESPACE.exists():
        ns = SERVICE_ACCOUNT_NAMESPACE.read_text().strip()
    return Cluster(client.CustomObjectsApi(client.ApiClient(configuration)), ns or "default")


# --- flags ---------------------------------------------------------------------------------------


def _duration(text: str) -> float:
    """A Go duration (30s, 5m, 2h, 1h30m), or 0."""
    if text == "0":
        return 0.0
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"invalid duration {text!r}: use e.g. 30s, 5m, 2h, 1h30m") from exc


def _spec_duration(text: str) -> str:
    """A duration for the watch's spec, checked here and passed on as written."""
    if _duration(text) <= 0:
        raise argparse.ArgumentTypeError(f"invalid duration {text!r}: must be more than 0")
    return text


def _connection_flags(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("connection to the cluster (as kubectl's)")
    group.add_argument(
        "--kubeconfig", metavar="PATH", help="the kubeconfig file (default: $KUBECONFIG, ~/.kube/config)"
    )
    group.add_argument(
        "--context", metavar="NAME", help="the kubeconfig context to use (default: the current one)"
    )
    group.add_argument(
        "-n", "--namespace", metavar="NS", help="the namespace (default: the context's, else default)"
    )


def _create_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--name", help="the watch's name (default: generated, e.g. sync-x7k2p)")
    parser.add_argument(
        "--timeout", type=_spec_duration, metavar="DURATION",
        help="spec.timeout: how long the watch waits for the job, from its first reconcile "
        "(default: the CRD's, 168h)",
    )  # fmt: skip
    parser.add_argument(
        "--poll-interval", type=_spec_duration, metavar="DURATION",
        help="spec.pollInterval: how often the operator asks Airbyte (default: the CRD's, 30s)",
    )  # fmt: skip
    parser.add_argument(
        "--server-secret", metavar="NAME",
        help="spec.serverRef.name: the Secret holding the Airbyte connection (default: the operator's)",
    )  # fmt: skip
    parser.add_argument(
        "--cancel-on-timeout", action="store_true",
        help="spec.cancelOnTimeout: cancel the Airbyte job if it is still running at the deadline",
    )  # fmt: skip
    parser.add_argument(
        "-o", "--output", choices=OUTPUTS,
        help="print the created watch as name, json or yaml (default: 'KIND/NAME created')",
    )  # fmt: skip
    parser.add_argument("--wait", action="store_true", help="then wait for the outcome, as `wait` does")
    parser.add_argument(
        "--wait-timeout", type=_duration, metavar="DURATION",
        help="with --wait: give up waiting after this long (exit 2); default: until the watch is final",
    )  # fmt: skip
    _connection_flags(parser)


EPILOG = """\
exit codes (wait, and sync/watch with --wait):
  0  the watch Succeeded
  1  the watch Failed or was Cancelled (a job that failed, was cancelled, not found, timed out...)
  2  no outcome: the watch does not exist or was deleted, the wait's own --timeout ran out,
     or an error (flags, kubeconfig, the API server)

examples:
  kubectl airbyte sync 9924bcd0-99be-453d-ba47-c2c9766f7da5 --wait
  kubectl airbyte watch 12345 --timeout 2h -o name
  kubectl airbyte wait nightly-sync --timeout 30m -n data
"""


def parser() -> argparse.ArgumentParser:
    top = _Parser(
        prog=PROG,
        description="Create AirbyteJobWatches and wait on them (the operator does the polling).",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = top.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    commands.required = True

    wait = commands.add_parser(
        "wait", help="follow an existing watch until it is final",
        description="Follow an AirbyteJobWatch, one line per change of phase or reason, until its "
        "status is final for its current generation.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )  # fmt: skip
    wait.add_argument("name", metavar="NAME", help="the AirbyteJobWatch (ajw/NAME and KIND/NAME work too)")
    wait.add_argument(
        "--timeout", type=_duration, metavar="DURATION",
        help="give up after this long (exit 2); 0 reads once; default: until the watch is final",
    )  # fmt: skip
    _connection_flags(wait)

    sync = commands.add_parser(
        "sync", help="start a job on a connection (a trigger watch)",
        description="Create a watch that starts a job on an Airbyte connection (spec.connectionId) "
        "and watches it.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )  # fmt: skip
    sync.add_argument("connection_id", metavar="CONNECTION_ID", help="the Airbyte connection (a UUID)")
    sync.add_argument(
        "--job-type",
        choices=JOB_TYPES,
        help="spec.jobType: the kind of job to start (default: the CRD's, sync)",
    )
    sync.add_argument(
        "--if-running", choices=("Adopt", "Wait", "Fail"),
        help="spec.ifRunning: when the connection already runs a job (default: the CRD's, Adopt)",
    )  # fmt: skip
    _create_flags(sync)

    watch = commands.add_parser(
        "watch", help="watch an existing Airbyte job by its id",
        description="Create a watch of an existing Airbyte job (spec.jobId).",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )  # fmt: skip
    watch.add_argument("job_id", metavar="JOB_ID", help="the Airbyte job id")
    _create_flags(watch)
    return top


# --- commands ------------------------------------------------------------------------------------


def manifest(args: argparse.Namespace) -> dict[str, Any]:
    """The AirbyteJobWatch that `sync` or `watch` creates. Fields not asked for are left out, so
    that the CRD's defaults apply."""
    spec: dict[str, Any] = {}
    if args.command == "sync":
        spec["connectionId"] = args.connection_id
        prefix = f"{args.job_type or 'sync'}-"
        if args.job_type:
            spec["jobType"] = args.job_type
        if args.if_running:
            spec["ifRunning"] = args.if_running
    else:
        spec["jobId"] = int(args.job_id) if args.job_id.isdigit() else args.job_id
        prefix = f"job-{args.job_id}-" if args.job_id.isdigit() and len(args.job_id) <= 19 else "job-"
    if args.timeout:
        spec["timeout"] = args.timeout
    if args.poll_interval:
        spec["pollInterval"] = args.poll_interval
    if args.server_secret:
        spec["serverRef"] = {"name": args.server_secret}
    if args.cancel_on_timeout:
        spec["cancelOnTimeout"] = True
    metadata: dict[str, Any] = {"labels": {CREATED_BY: CREATED_BY_VALUE}}
    if args.name:
        metadata["name"] = args.name
    else:
        metadata["generateName"] = prefix
    return {"apiVersion": f"{GROUP}/{VERSION}", "kind": KIND, "metadata": metadata, "spec": spec}


def render(obj: dict[str, Any], output: str | None) -> str:
    """The created object as kubectl create prints it."""
    name = resource_name(obj["metadata"]["name"])
    if output == "name":
        return name
    if output == "json":
        return json.dumps(obj, indent=4, sort_keys=True)
    if output == "yaml":
        return yaml.safe_dump(obj, sort_keys=True, default_flow_style=False).rstrip("\n")
    return f"{name} created"


def create(cluster: Cluster, args: argparse.Namespace) -> int:
    try:
        obj = cluster.api.create_namespaced_custom_object(
            GROUP, VERSION, cluster.namespace, PLURAL, manifest(args)
        )
    except ApiException as exc:
        raise PluginError(api_error(exc)) from exc
    print(render(obj, args.output), flush=True)
    if not args.wait:
        return 0
    # With -o, stdout holds only what -o asked for; the progress lines go to stderr.
    lines = sys.stderr if args.output else sys.stdout
    return Follower(cluster.api, cluster.namespace, obj["metadata"]["name"], lines).run(args.wait_timeout)


def wait(cluster: Cluster, args: argparse.Namespace) -> int:
    name = args.name.split("/", 1)[1] if "/" in args.name else args.name
    return Follower(cluster.api, cluster.namespace, name, sys.stdout).run(args.timeout)


def main(argv: Sequence[str] | None = None) -> int:
    logging.getLogger("urllib3").setLevel(logging.ERROR)  # our loops retry; no urllib3 chatter
    try:
        args = parser().parse_args(argv)
        cluster = connect(args.kubeconfig, args.context, args.namespace)
        return wait(cluster, args) if args.command == "wait" else create(cluster, args)
    except (UsageError, PluginError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_NO_OUTCOME
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # kubectl's way: one line on stderr, not a traceback
        print(f"error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return EXIT_NO_OUTCOME


if __name__ == "__main__":
    sys.exit(main())
