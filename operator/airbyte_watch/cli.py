"""`airbyte-watch run`: the operator process."""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import os
import signal
import socket
import sys
import uuid
from collections.abc import Sequence
from typing import Any

import kopf

from . import handlers
from .airbyte.client import USER_AGENT, ClientPool
from .kube import login
from .kube.client import KubeClient
from .kube.kopf_settings import admission_settings, intake_settings
from .kube.leadership import Leadership, Timing
from .kube.namespaces import list_scopes
from .kube.sharding import Shard, ordinal_of
from .monitoring.metrics import Metrics
from .runtime.connections import Connections
from .runtime.service import Service
from .runtime.watches import Options, Watches

log = logging.getLogger("airbyte_watch")


def _at_least_one_second(text: str) -> float:
    value = float(text)
    if not value >= 1.0:  # also refuses nan
        raise argparse.ArgumentTypeError(f"{text!r} is less than 1 second")
    return value


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="airbyte-watch", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="run the operator")
    scope = run.add_mutually_exclusive_group()
    scope.add_argument(
        "-n",
        "--namespace",
        action="append",
        dest="namespaces",
        metavar="NS",
        help="watch only this namespace (repeatable; globs allowed)",
    )
    scope.add_argument(
        "-A", "--all-namespaces", action="store_true", help="watch every namespace (the default)"
    )
    run.add_argument(
        "--default-server-secret",
        default="airbyte-default",
        metavar="NAME",
        help="Secret used by watches without spec.serverRef (default: %(default)s)",
    )
    run.add_argument("--log-format", choices=("plain", "json"), default="plain")
    run.add_argument("-v", "--verbose", action="store_true", help="log at DEBUG level")
    run.add_argument(
        "--concurrency",
        type=int,
        default=64,
        help="polls in flight at once, across all servers (default: %(default)s)",
    )
    run.add_argument(
        "--request-timeout",
        type=float,
        default=15.0,
        help="seconds for one Airbyte API request (default: %(default)s)",
    )
    run.add_argument(
        "--delete-cancel-timeout",
        type=float,
        default=30.0,
        help="seconds a delete with spec.cancelOnDelete waits on Airbyte (default: %(default)s)",
    )
    run.add_argument(
        "--shard-count",
        type=int,
        default=1,
        help="split the watches among this many replicas by a stable hash (default: %(default)s)",
    )
    run.add_argument(
        "--shard-index",
        type=int,
        default=None,
        help="this replica's shard, 0..count-1 (default: the ordinal of a StatefulSet pod's name)",
    )
    run.add_argument(
        "--metrics-port",
        type=int,
        default=None,
        help="serve /metrics, /healthz and /readyz on this port (default: off)",
    )
    run.add_argument("--metrics-host", default="0.0.0.0", help="address for --metrics-port")
    run.add_argument(
        "--max-requests-per-second",
        type=float,
        default=100.0,
        help="request budget per Airbyte server, shared by all its watches (default: %(default)s)",
    )
    run.add_argument(
        "--allowed-url",
        action="append",
        dest="allowed_urls",
        default=[],
        metavar="URL",
        help="Airbyte URLs that Secrets may name, as scheme://host[:port][/path] with a glob for the "
        "host (repeatable; default: any). A watch whose Secret names another URL is Stalled.",
    )
    run.add_argument(
        "--poll-mode",
        choices=("list", "get"),
        default="list",
        help="list: one GET /jobs per server and interval tells every watch of that server whether "
        "its job moved; get: one GET /jobs/{id} per watch and interval (default: %(default)s)",
    )
    run.add_argument(
        "--list-interval",
        type=_at_least_one_second,
        default=5.0,
        help="list mode: seconds between two walks of GET /jobs per server, or less if a watch's "
        "pollInterval is shorter; pollInterval stays the longest a watch goes without news of its "
        "job (default: %(default)s)",
    )
    run.add_argument(
        "--resync-period",
        type=float,
        default=600.0,
        help="seconds between full lists that catch deletes no event told (default: %(default)s)",
    )
    run.add_argument(
        "--startup-spread",
        type=float,
        default=5.0,
        help="spread the first polls of existing watches over up to this many seconds (default: %(default)s)",
    )
    webhook = run.add_argument_group("admission webhook (kopf's, served by every replica)")
    webhook.add_argument(
        "--webhook-port", type=int, default=None, metavar="PORT",
        help="serve the validating webhook over HTTPS on this port (default: off)",
    )  # fmt: skip
    webhook.add_argument("--webhook-addr", default=None, metavar="ADDR",
                         help="address to listen on (default: all)")  # fmt: skip
    webhook.add_argument(
        "--webhook-host", default=None, metavar="HOST",
        help="host name the API server calls and the certificate names (default: kopf's guess)",
    )  # fmt: skip
    webhook.add_argument("--webhook-cert", default=None, metavar="FILE",
                         help="TLS certificate (default: kopf makes a self-signed one)")  # fmt: skip
    webhook.add_argument("--webhook-key", default=None, metavar="FILE", help="its private key")
    webhook.add_argument(
        "--webhook-managed", default=None, metavar="NAME",
        help="let kopf create and update the ValidatingWebhookConfiguration NAME "
        "(development and tests; the Helm chart brings its own)",
    )  # fmt: skip
    election = run.add_argument_group("leader election (one acting replica per shard)")
    election.add_argument(
        "--leader-elect",
        action="store_true",
        help="act only while holding a coordination.k8s.io Lease; other replicas stand by",
    )
    election.add_argument(
        "--leader-election-namespace",
        default=None,
        metavar="NS",
        help="namespace of the Lease (default: $POD_NAMESPACE, else the service account's)",
    )
    election.add_argument(
        "--leader-election-id",
        default="airbyte-watch",
        metavar="NAME",
        help="Lease name; with shards, -shard-I-of-N is appended (default: %(default)s)",
    )
    for flag, kind, default, meaning in (
        ("--lease-duration", int, 15, "seconds a standby waits for an unrenewed Lease"),
        ("--renew-deadline", float, 10.0, "seconds the leader acts after its last renewal"),
        ("--retry-period", float, 2.0, "seconds between tries to acquire or renew"),
    ):
        election.add_argument(
            flag, type=kind, default=default, metavar="S", help=f"{meaning} (default: %(default)s)"
        )
    return parser.parse_args(argv)


def shard_of(args: argparse.Namespace) -> Shard:
    if args.shard_count == 1:
        return Shard()
    # Modulo: with leader election a StatefulSet runs N x shard-count pods, N per shard.
    index = (
        args.shard_index
        if args.shard_index is not None
        else ordinal_of(socket.gethostname()) % args.shard_count
    )
    return Shard(index, args.shard_count)


def leadership_of(args: argparse.Namespace, kube: KubeClient, shard: Shard, metrics: Metrics) -> Leadership:
    namespace = args.leader_election_namespace or os.environ.get("POD_NAMESPACE") or _own_namespace()
    if not namespace:
        raise SystemExit("--leader-elect needs --leader-election-namespace or $POD_NAMESPACE")
    name = args.leader_election_id
    if shard.count > 1:
        name += f"-shard-{shard.index}-of-{shard.count}"
    # Unique per process: a restarted pod (same name) is a new candidate, as in client-go.
    identity = f"{os.environ.get('POD_NAME') or socket.gethostname()}_{uuid.uuid4().hex[:8]}"
    try:
        timing = Timing(args.lease_duration, args.renew_deadline, args.retry_period)
    except ValueError as exc:
        raise SystemExit(f"leader election: {exc}") from None
    return Leadership(kube, namespace, name, identity, timing, on_change=metrics.leader.set)


def _own_namespace() -> str | None:
    try:
        return (login.SERVICE_ACCOUNT / "namespace").read_text().strip() or None
    except OSError:
        return None


def build(args: argparse.Namespace) -> Service:
    """Everything the handlers delegate to, made from the flags."""
    shard = shard_of(args)
    metrics = Metrics()
    metrics.request_budget.set(args.max_requests_per_second)
    kube = KubeClient(login.login, instance=f"{socket.gethostname()}/shard-{shard.index}")
    kube.on_write = metrics.observe_write
    leadership = leadership_of(args, kube, shard, metrics) if args.leader_elect else None
    metrics.leader.set(0 if leadership else 1)
    if leadership is not None:
        kube.before_write = leadership.check
    clients = ClientPool(
        request_timeout=args.request_timeout,
        max_requests_per_second=args.max_requests_per_second,
        on_token_fetch=lambda host: metrics.token_fetches.labels(host).inc(),
        user_agent=f"{USER_AGENT} (shard {shard})",
        before_write=leadership.check if leadership else lambda: None,
    )
    watches = Watches(
        kube=kube,
        connections=Connections(kube, allowed_urls=args.allowed_urls),
        clients=clients,
        options=Options(
            default_server_secret=args.default_server_secret,
            startup_spread=args.startup_spread,
            concurrency=args.concurrency,
            shard=shard,
            delete_cancel_timeout=args.delete_cancel_timeout,
            namespaces=list(args.namespaces or []),
            resync_period=args.resync_period,
            poll_mode=args.poll_mode,
            list_interval=args.list_interval,
            walk_budget=args.max_requests_per_second,
        ),
        metrics=metrics,
    )
    return Service(kube, clients, watches, metrics, leadership)


async def run(args: argparse.Namespace) -> None:
    """kopf's operator with our two registries (handlers.py): the intake, and admission when a
    webhook is asked for, in one set of kopf tasks that stop together."""
    service = build(args)
    if args.metrics_port is not None:
        await service.serve_endpoints(args.metrics_host, args.metrics_port)
    memo = kopf.Memo(service=service)
    existing = asyncio.all_tasks()
    scopes = list_scopes(service.watches.options.namespaces)
    clusterwide = None in scopes
    # kopf names itself from getpass.getuser() unless told: a pod's uid without a passwd entry
    # (the image's 65532) made that raise, and the pod crash-looped. Peering is off, so the
    # name is only a label in kopf's logs.
    identity: Any = os.environ.get("POD_NAME") or socket.gethostname()  # kopf's Identity is a str
    try:
        tasks = [
            *await kopf.spawn_tasks(
                registry=handlers.intake,
                settings=intake_settings(args),
                memo=memo,
                standalone=True,  # kopf's peering has no fence: the Lease decides who acts
                identity=identity,
                clusterwide=clusterwide,
                namespaces=[] if clusterwide else [s for s in scopes if s is not None],
                stop_flag=service.stop,
            )
        ]
        if args.webhook_port is not None:
            tasks += await kopf.spawn_tasks(
                registry=handlers.admission,
                settings=admission_settings(args),
                memo=memo,
                standalone=True,
                identity=identity,
                clusterwide=True,
                stop_flag=service.stop,
            )
        # kopf's spawn_tasks took SIGINT/SIGTERM for its own flag, each operator in turn: one
        # stop flag for both instead (also set when the Lease is lost), so that both stop and
        # no waiter on an unset flag holds the exit.
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, service.stop.set)
        where = "namespaces " + ", ".join(args.namespaces) if args.namespaces else "all namespaces"
        log.info("airbyte-watch starting (shard %s, %s)", service.watches.options.shard, where)
        await kopf.run_tasks(tasks, ignored=existing)
    finally:
        await service.close()
    if service.failed:
        raise SystemExit(1)


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    gc.set_threshold(20_000, 20, 20)  # see runtime/service.py settle_gc
    kopf.configure(
        verbose=args.verbose,
        # "plain" is kopf's full text format: time, logger, level, message.
        log_format=kopf.LogFormat.JSON if args.log_format == "json" else kopf.LogFormat.FULL,
    )
    if not args.verbose:
        # aiohttp's access and client internals are noise at INFO.
        logging.getLogger("aiohttp").setLevel(logging.WARNING)
        # kopf says "Handler 'take_in' succeeded." at INFO for every watch event: 50,000
        # lines at each start. Its warnings and errors about objects still show.
        logging.getLogger("kopf.objects").setLevel(logging.WARNING)
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    try:
        asyncio.run(run(args))
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
