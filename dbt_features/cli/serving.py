"""Commands serving and checking what is served: ``serve`` and ``verify``."""

from __future__ import annotations

import ipaddress
import os
import sys
from typing import Any

import click

from ..errors import UsageError
from ..store import FeatureStore
from . import params as p
from . import requires
from .output import emit

DEFAULT_PORT = 6566
"""Feast's feature server port: a Feast client's default works unchanged."""
REQUEST_TIMEOUT_S = 10.0
"""The default of ``--request-timeout`` (``dbt_features.serving.server.REQUEST_TIMEOUT_S``; not
imported from there, which would load uvicorn for every command)."""


@click.command()
@p.dbt_options
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on (0.0.0.0 for every interface).")
@click.option("--port", default=DEFAULT_PORT, show_default=True, type=int, help="TCP port.")
@click.option("--token-env", default=None, metavar="NAME",
              help="Require 'Authorization: Bearer <token>', the token being the value of the "
                   "environment variable NAME.")
@click.option("--request-timeout", default=REQUEST_TIMEOUT_S, show_default=True, type=float,
              metavar="SECONDS",
              help="A request must arrive whole within this many seconds (else 408).")
@p.served_log_options
@requires.store
def serve(store: FeatureStore, *, as_json: bool, host: str, port: int, token_env: str | None,
          request_timeout: float, log_served: bool, log_sample_rate: float,
          log_max_entries: int) -> None:
    """Serve online features over HTTP, in Feast's format (POST /get-online-features; GET
    /health, /features, /metrics), with the feature catalog at /.

    \b
    Examples:
      FEATURES_TOKEN=s3cret dbt-features serve --host 0.0.0.0 --token-env FEATURES_TOKEN
      dbt-features serve --log-served --log-sample-rate 0.1
    """
    from ..serving.serving_process import bind, exit_on_sigterm, run

    exit_on_sigterm()
    token = read_token(token_env)
    if not 0 < port < 65536:
        raise UsageError(f"--port {port} is not a TCP port (1-65535).")
    if not 0 < request_timeout <= 3600:
        raise UsageError(f"--request-timeout {request_timeout:g} is not a number of seconds "
                         "from 0 to 3600, e.g. --request-timeout 10.")
    served_log = served_log_options(log_served, log_sample_rate, log_max_entries)
    app = store.app(token=token, request_timeout=request_timeout, served_log=served_log)
    sock = bind(host, port)
    views = [v.name for v in app.registry.views if v.online]
    info = {"url": f"http://{host}:{port}", "online_store": app.online.where, "views": views,
            "auth": "bearer token" if token else "none",
            "served_log": None if served_log is False else {
                "stream": app.online.keys.served_log(), "sample_rate": log_sample_rate,
                "max_entries": log_max_entries}}
    log_note = "" if served_log is False else (
        f"; logging {log_sample_rate:.0%} of requests to {info['served_log']['stream']}")
    emit(as_json, info, lambda: (
        f"Serving {len(views)} online feature views ({', '.join(views)}) on {info['url']} from "
        f"{info['online_store']}; auth: {info['auth']}{log_note}. Ctrl-C to stop."))
    sys.stdout.flush()
    if not token and not _is_loopback(host):
        click.echo(f"Warning: listening on {host} without a token: anyone who can reach it can "
                   "read features. Use --token-env NAME.", err=True)
    run(app, sock)


def served_log_options(log_served: bool, sample_rate: float, max_entries: int) -> Any:
    """The served log's options from ``serve``'s flags (False: no log), checked."""
    if not log_served:
        if sample_rate != 1.0 or max_entries != p.LOG_MAX_ENTRIES:
            raise UsageError("--log-sample-rate and --log-max-entries set how the served log "
                             "is kept: add --log-served to log.")
        return False
    if not 0.0 <= sample_rate <= 1.0:
        raise UsageError(f"--log-sample-rate {sample_rate:g} is not a share of requests from 0 "
                         "to 1, e.g. --log-sample-rate 0.1 to log one request in ten.")
    if max_entries <= 0:
        raise UsageError(f"--log-max-entries {max_entries} must be a positive number of "
                         "requests, e.g. --log-max-entries 1000000.")
    from ..serving.served_log import ServedLogOptions

    return ServedLogOptions(sample_rate=sample_rate, max_entries=max_entries)


def read_token(token_env: str | None) -> str | None:
    """The bearer token from the environment variable named by ``--token-env``."""
    if token_env is None:
        return None
    token = os.environ.get(token_env, "")
    if not token.strip():
        raise UsageError(f"--token-env {token_env}: the environment variable {token_env} is not "
                         "set or empty; export it with the token clients must send.")
    return token.strip()


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


class _VerifyProgress:
    """One live line on stderr, only on a terminal."""

    def __init__(self) -> None:
        self.enabled = sys.stderr.isatty()

    def __call__(self, view: str, step: str) -> None:
        if self.enabled:
            click.echo(f"\r\033[K  {view}: {step}…", nl=False, err=True)

    def done(self) -> None:
        if self.enabled:
            click.echo("\r\033[K", nl=False, err=True)


@click.command()
@p.dbt_options
@p.selection
@click.option("--sample", default=1000, show_default=True, type=int,
              help="Entities sampled per view.")
@click.option("--seed", default=0, show_default=True, type=int,
              help="Sampling seed: the same seed picks the same entities.")
@p.served
@p.as_known_at
@p.max_mismatch_rate
@requires.store
def verify(store: FeatureStore, *, as_json: bool, select: str | None, exclude: str | None,
           state: str | None, sample: int, seed: int, served: str | None, as_known_at: bool,
           max_mismatch_rate: float) -> None:
    """Compare online values with the offline values as of now; exit 1 on any mismatch.
    With --served, replay what was served instead: each served value against the training
    set's value at its request time.

    \b
    Example:
      dbt-features verify --select customer_spend --sample 200
    """
    if served is not None:
        replayed = store.verify_served(served, as_known_at=as_known_at,
                                       max_mismatch_rate=max_mismatch_rate, select=select,
                                       exclude=exclude, state=state)
        emit(as_json, replayed.to_dict(), replayed.format)
        sys.exit(replayed.exit_code)
    if as_known_at or max_mismatch_rate:
        raise UsageError("--as-known-at and --max-mismatch-rate apply to a replay: add "
                         "--served SOURCE (an exported served log, a model, or stream).")
    progress = _VerifyProgress()
    try:
        report = store.verify(select, exclude=exclude, state=state, sample=sample, seed=seed,
                              progress=progress)
    finally:
        progress.done()
    emit(as_json, report.to_dict(), report.format)
    if report.exit_code:
        sys.exit(report.exit_code)
