"""Run the operator: `launchgate run` (or `python -m launchgate.main`)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys

import kopf


def run(namespaces: list[str] | None = None, liveness: str | None = None, verbose: bool = False) -> None:
    """Start Kopf with launchgate's handlers; standalone because one replica does the work."""
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s %(message)s")
    from . import handlers  # noqa: F401 - registers the handlers

    asyncio.run(kopf.operator(
        standalone=True,
        clusterwide=not namespaces,
        namespaces=namespaces or [],
        liveness_endpoint=liveness,
    ))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="launchgate run", description="Run the launchgate operator.")
    p.add_argument("-n", "--namespace", action="append", help="watch only these namespaces (default: all)")
    p.add_argument("--liveness", default=None, help="e.g. http://0.0.0.0:8080/healthz")
    p.add_argument("-v", "--verbose", action="store_true")
    a = p.parse_args(sys.argv[1:] if argv is None else argv)
    run(a.namespace, a.liveness, a.verbose)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
