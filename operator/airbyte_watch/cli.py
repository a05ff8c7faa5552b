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
from pathlib import Path

import kopf

from .airbyte.client import USER_AGENT, ClientPool
from .kube.client import KubeClient, KubeError
from .kube.leadership import Leadership, Timing
from .kube.sharding import Shard, ordinal_of
from .monitoring.endpoints import build_app, serve
from .monitoring.metrics import Metrics
from .runtime.connections import Connections
from .runtime.watch_stream import WatchStream
from .runtime.watches import Options, Watches

log = logging.getLogger("airbyte_watch")
SERVICE_ACCOUNT_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")


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


def login() -> kopf.ConnectionInfo:
    """In-cluster service account when running in a pod, else the standard kubeconfig."""
    settings = kopf.OperatorSettings()
    info = kopf.login_with_service_account(settings=settings) or kopf.login_with_kubeconfig(settings=settings)
    if info is None:
        raise SystemExit("no Kubernetes credentials: no service account and no kubeconfig")
    return info


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
        return SERVICE_ACCOUNT_NAMESPACE.read_text().strip() or None
    except OSError:
        return None


async def run(args: argparse.Namespace) -> None:
    shard = shard_of(args)
    metrics = Metrics()
    metrics.request_budget.set(args.max_requests_per_second)
    kube = KubeClient(login, instance=f"{socket.gethostname()}/shard-{shard.index}")
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
    namespaces = args.namespaces or []
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
            namespaces=list(namespaces),
            resync_period=args.resync_period,
            poll_mode=args.poll_mode,
            list_interval=args.list_interval,
            walk_budget=args.max_requests_per_second,
        ),
        metrics=metrics,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    listed = asyncio.Event()
    tasks: list[asyncio.Task[None]] = []
    keeper: asyncio.Task[None] | None = None
    endpoints = None
    if args.metrics_port is not None:
        app = build_app(metrics.registry, ready=lambda: listed.is_set() or standing_by(leadership),
                        alive=lambda: not any(t.done() for t in tasks),
                        role=lambda: role_of(leadership))  # fmt: skip
        endpoints = await serve(app, args.metrics_host, args.metrics_port)
    try:
        if leadership is not None:
            # A standby waits here: it lists nothing, polls nothing and writes nothing.
            acquiring = asyncio.create_task(leadership.acquire())
            await first_of(acquiring, stop)
            if not acquiring.done():
                acquiring.cancel()
                return
            keeper = asyncio.create_task(leadership.keep())
            # Lost leadership: stop at once (controller-runtime's convention: exit, restart as standby).
            keeper.add_done_callback(lambda _: stop.set())
            tasks.append(keeper)
        # Both wait as long as the API server is unreachable or the CRD missing: a SIGTERM
        # meanwhile stops the process now, not after them.
        starting = asyncio.create_task(start_serving(kube, watches))
        await first_of(starting, stop)
        if not starting.done():
            starting.cancel()
            await asyncio.gather(starting, return_exceptions=True)
            return
        versions = starting.result()
        settle_gc()
        watches.listed = True
        listed.set()
        stream = asyncio.create_task(WatchStream(watches).run(versions))
        scheduler = asyncio.create_task(watches.scheduler.run())
        maintenance = asyncio.create_task(watches.maintain())
        tasks.extend((stream, scheduler, maintenance))
        log.info(
            "airbyte-watch started with %d watches (shard %s, %s)",
            len(watches.known),
            shard,
            "all namespaces" if not namespaces else "namespaces " + ", ".join(namespaces),
        )
        await first_of(*tasks, stop)
        for task in (stream, scheduler, maintenance):  # the keeper's end is leadership.lost
            if task.done() and not task.cancelled() and task.exception() is not None:
                # A bug: exit, so that the pod restarts instead of serving half an operator.
                log.error("%s ended unexpectedly", task.get_coro().__qualname__, exc_info=task.exception())
                stop.set()
                raise SystemExit(1)
    finally:
        # Stop polling, then give the Lease up, so that a standby takes over at once.
        for task in tasks:
            if task is not keeper:
                task.cancel()
        await asyncio.gather(*(t for t in tasks if t is not keeper), return_exceptions=True)
        if keeper is not None and leadership is not None:
            keeper.cancel()
            await asyncio.gather(keeper, return_exceptions=True)
            await leadership.release()
        await watches.feeds.close()
        await clients.close()
        await kube.close()
        if endpoints is not None:
            await endpoints.cleanup()
    if leadership is not None and leadership.lost.is_set():
        raise SystemExit(1)


async def first_of(*waits: asyncio.Task[None] | asyncio.Event) -> None:
    """Return when any task ends or any event is set."""
    waiters = [w if isinstance(w, asyncio.Task) else asyncio.create_task(w.wait()) for w in waits]
    try:
        await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter, given in zip(waiters, waits, strict=True):
            if waiter is not given:
                waiter.cancel()


def standing_by(leadership: Leadership | None) -> bool:
    """A standby is ready as a standby: it serves nothing until it leads."""
    return leadership is not None and not leadership.leading and not leadership.lost.is_set()


def role_of(leadership: Leadership | None) -> str:
    if leadership is None:
        return "leader (no election)"
    if leadership.leading:
        return f"leader of Lease {leadership.namespace}/{leadership.name}"
    return f"standby for Lease {leadership.namespace}/{leadership.name} (held by {leadership.holder})"


async def start_serving(kube: KubeClient, watches: Watches) -> dict[str | None, str]:
    await kube.wait_for_crd()
    return await load_existing(watches)


async def load_existing(watches: Watches) -> dict[str | None, str]:
    """Read every existing watch before serving, so readiness means "all watches are known".
    Returns each scope's list resourceVersion: the watch stream goes on from there."""
    while True:
        try:
            return await watches.relist()
        except KubeError as exc:  # seeing a watch twice is harmless: the list starts again
            log.warning("Cannot list the existing watches yet (%s); retrying in 5s", exc)
            await asyncio.sleep(5)


def settle_gc() -> None:
    """Python's cyclic GC rescans every live object as the heap grows: with 10,000 watches it
    was a fifth of the CPU of a cold start (measured with gc.callbacks). The watches loaded at
    start live on, so they leave the scans (freeze), and young objects are collected in larger
    batches. Garbage without cycles is still freed at once, by reference counting."""
    gc.collect()
    gc.freeze()


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    gc.set_threshold(20_000, 20, 20)  # see settle_gc
    kopf.configure(
        verbose=args.verbose,
        # "plain" is kopf's full text format: time, logger, level, message.
        log_format=kopf.LogFormat.JSON if args.log_format == "json" else kopf.LogFormat.FULL,
    )
    if not args.verbose:
        # aiohttp's access and client internals are noise at INFO.
        logging.getLogger("aiohttp").setLevel(logging.WARNING)
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    try:
        asyncio.run(run(args))
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
