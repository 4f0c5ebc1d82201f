"""Serve the dashboard on loopback with uvicorn, as the kubeconfig's user."""

from __future__ import annotations

import ipaddress
import socket

import click
import uvicorn

from launchgate.adapters.prometheus import PrometheusSource
from launchgate.cli.dashboard.app import Settings, create_app
from launchgate.cli.dashboard.kube import Reader


def loopback(address: str) -> str:
    """`address` if it is a loopback one: the page acts with the user's credentials, so it must
    not be reachable from other machines."""
    if address == "localhost":
        return "127.0.0.1"
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        raise click.BadParameter(f"{address!r} is not an IP address") from None
    if ip.version != 4 or not ip.is_loopback:
        raise click.BadParameter(f"{address} is not an IPv4 loopback address (127.0.0.0/8): the dashboard acts "
                                 "with your credentials and is served to this machine only")
    return address


def serve(reader: Reader, user: str, address: str, port: int, namespace: str | None,
          prometheus: PrometheusSource | None) -> None:
    """Bind first, so the printed URL is the one listening (port 0 picks a free one), then serve
    until interrupted."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((address, port))
    except OSError as e:
        raise click.ClickException(f"cannot listen on {address}:{port}: {e.strerror}") from None
    bound = sock.getsockname()[1]
    hosts = [address, "localhost"] if address == "127.0.0.1" else [address]
    app = create_app(Settings(reader=reader, prometheus=prometheus, user=user, default_namespace=namespace), hosts)
    config = uvicorn.Config(app, log_level="warning", lifespan="off", timeout_graceful_shutdown=1)
    click.echo(f"launchgate dashboard for {user}: http://{address}:{bound}/ (read-only; Ctrl-C stops it)")
    uvicorn.Server(config).run(sockets=[sock])
