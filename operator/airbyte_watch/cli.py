"""`airbyte-watch run`: the operator process."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import fnmatch
import logging
import os
import signal
import socket
import sys
from collections.abc import Sequence

import kopf

from .airbyte_client import USER_AGENT, ClientPool
from .connections import Connections
from .endpoints import build_app, serve
from .handlers import build_registry
from .kube_client import KubeClient, KubeError
from .metrics import Metrics
from .sharding import Shard, ordinal_of
from .watches import Options, Watches

log = logging.getLogger("airbyte_watch")


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
        "--startup-spread",
        type=float,
        default=5.0,
        help="spread the first polls of existing watches over up to this many seconds (default: %(default)s)",
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
    index = args.shard_index if args.shard_index is not None else ordinal_of(socket.gethostname())
    return Shard(index, args.shard_count)


async def run(args: argparse.Namespace) -> None:
    shard = shard_of(args)
    metrics = Metrics()
    metrics.request_budget.set(args.max_requests_per_second)
    metrics.leader.set(1)  # until leader election says otherwise
    kube = KubeClient(login, instance=f"{socket.gethostname()}/shard-{shard.index}")
    kube.on_write = metrics.observe_write
    clients = ClientPool(
        request_timeout=args.request_timeout,
        max_requests_per_second=args.max_requests_per_second,
        on_token_fetch=lambda host: metrics.token_fetches.labels(host).inc(),
        user_agent=f"{USER_AGENT} (shard {shard})",
    )
    watches = Watches(
        kube=kube,
        connections=Connections(kube),
        clients=clients,
        options=Options(
            default_server_secret=args.default_server_secret,
            startup_spread=args.startup_spread,
            concurrency=args.concurrency,
            shard=shard,
            delete_cancel_timeout=args.delete_cancel_timeout,
        ),
        metrics=metrics,
    )
    namespaces = args.namespaces or []
    registry = build_registry(watches, login, scan=any(map(is_glob, namespaces)))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    listed = asyncio.Event()
    tasks: list[asyncio.Task[None]] = []
    endpoints = None
    if args.metrics_port is not None:
        app = build_app(metrics.registry, ready=listed.is_set,
                        alive=lambda: not any(t.done() for t in tasks))  # fmt: skip
        endpoints = await serve(app, args.metrics_host, args.metrics_port)
    await kube.wait_for_crd()
    await load_existing(kube, watches, namespaces)
    listed.set()
    operator = asyncio.create_task(
        kopf.operator(
            registry=registry,
            standalone=True,
            namespaces=namespaces,
            clusterwide=not namespaces,
            stop_flag=stop,
        )
    )
    scheduler = asyncio.create_task(watches.scheduler.run())
    tasks.extend((operator, scheduler))
    log.info(
        "airbyte-watch started with %d watches (shard %s, %s)",
        len(watches.known),
        shard,
        "all namespaces" if not namespaces else "namespaces " + ", ".join(namespaces),
    )
    try:
        await operator
    finally:
        scheduler.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await scheduler
        await clients.close()
        await kube.close()
        if endpoints is not None:
            await endpoints.cleanup()


def is_glob(namespace: str) -> bool:
    return bool(set(namespace) & set("*?[!"))


async def load_existing(kube: KubeClient, watches: Watches, namespaces: list[str]) -> None:
    """Read every existing watch before serving, so readiness means "all watches are known".

    kopf's own listing follows and finds them known already.
    """
    globbed = any(map(is_glob, namespaces))
    scopes: list[str | None] = [None] if not namespaces or globbed else list(namespaces)
    for scope in scopes:
        while True:
            try:
                items = await kube.list_watches(scope)
                break
            except KubeError as exc:
                log.warning("Cannot list the existing watches yet (%s); retrying in 5s", exc)
                await asyncio.sleep(5)
        for item in items:
            namespace = item["metadata"]["namespace"]
            if globbed and not any(fnmatch.fnmatchcase(namespace, ns) for ns in namespaces):
                continue
            watches.observe(None, item, owned=True)


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
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
