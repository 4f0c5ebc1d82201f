"""Run the operator: `launchgate run` (or `python -m launchgate.controller.main`)."""

from __future__ import annotations

import argparse
import asyncio
import ctypes
import gc
import logging
import os
import sys

import kopf

from launchgate.config import Config, ConfigError


class _QuietSuccess(logging.Filter):
    """Kopf logs "Handler ... succeeded." for every watch event it hands over: at thousands of
    rollouts that is most lines of the log, and time spent formatting them."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.levelno == logging.INFO and record.getMessage().endswith(" succeeded."))


def few_malloc_arenas(arenas: int = 2) -> None:
    """glibc gives every thread that allocates its own malloc arena (up to eight per core), and each
    keeps the memory its thread freed: with dozens of worker threads that adds up to much RSS for
    no measurable gain in speed. Applies to threads started later; MALLOC_ARENA_MAX, if set, wins."""
    if os.environ.get("MALLOC_ARENA_MAX") or not sys.platform.startswith("linux"):
        return
    try:
        ctypes.CDLL("libc.so.6").mallopt(-8, arenas)  # M_ARENA_MAX
    except (OSError, AttributeError):
        pass  # not glibc (e.g. musl): nothing to tune


def fewer_gc_passes(young: int = 50_000, middle: int = 20) -> None:
    """CPython runs a collection every 700 new container objects. Decoding one fleet-wide
    Prometheus answer (20,000 series at 10,000 rollouts) makes hundreds of thousands, so with the
    defaults the collector runs hundreds of times a fetch and, as the answers survive, walks the
    whole heap again and again: most of a fetch's CPU (see BENCHMARKS.md). Almost nothing this
    process makes is cyclic garbage, so rarer young collections cost no measurable memory. What is
    loaded at start-up (modules, Kopf) is frozen out of the collector's walks."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(young, middle, gc.get_threshold()[2])


def run(namespaces: list[str] | None = None, liveness: str | None = None, verbose: bool = False) -> None:
    """Start Kopf with launchgate's handlers; standalone because one replica does the work.

    The settings are read once, before Kopf starts: a bad one ends the process with a message
    naming the variable, where Kopf would retry a failing start-up handler every minute."""
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s %(message)s")
    try:
        config = Config.load()
    except ConfigError as e:
        raise SystemExit("launchgate: invalid settings: " + "; ".join(e.problems)) from None
    logging.getLogger("kopf.objects").addFilter(_QuietSuccess())
    few_malloc_arenas()
    from launchgate.controller import handlers  # noqa: F401 - registers the handlers

    fewer_gc_passes()

    asyncio.run(kopf.operator(
        standalone=True,
        clusterwide=not namespaces,
        namespaces=namespaces or [],
        liveness_endpoint=liveness,
        memo=kopf.Memo(config=config, namespaces=tuple(namespaces or ())),
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
