"""Prometheus metrics of the feature server, kept in plain Python and rendered as text.

No client library: four series are enough (requests, errors, a latency histogram per endpoint,
and the age of each online view's last sync), and counting in dicts keeps the request path to
a few dictionary updates. Every answer is counted, including those the connection protocol
gives itself (a request that is not HTTP, or too slow to arrive: 408). The exposition format is Prometheus' text format 0.0.4.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from typing import Iterable, Mapping

BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
"""Latency buckets in seconds: a loopback read is well under a millisecond, a Redis timeout
about one second."""

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


@dataclass
class _Histogram:
    counts: list[int] = field(default_factory=lambda: [0] * (len(BUCKETS) + 1))
    total: float = 0.0
    n: int = 0

    def observe(self, seconds: float) -> None:
        self.counts[bisect.bisect_left(BUCKETS, seconds)] += 1
        self.total += seconds
        self.n += 1


@dataclass
class Metrics:
    """Counters of one server process (single-threaded event loop: no locks needed)."""

    requests: dict[tuple[str, int], int] = field(default_factory=dict)
    errors: dict[tuple[str, str], int] = field(default_factory=dict)
    latency: dict[str, _Histogram] = field(default_factory=dict)
    entities: int = 0

    def observe(self, endpoint: str, status: int, seconds: float, error: str | None = None) -> None:
        key = (endpoint, status)
        self.requests[key] = self.requests.get(key, 0) + 1
        if error is not None:
            ekey = (endpoint, error)
            self.errors[ekey] = self.errors.get(ekey, 0) + 1
        hist = self.latency.get(endpoint)
        if hist is None:
            hist = self.latency[endpoint] = _Histogram()
        hist.observe(seconds)

    def render(self, sync_ages: Mapping[str, float | None], redis_up: bool) -> str:
        """The exposition text; ``sync_ages``: seconds since each view's last sync (None:
        never synced)."""
        out: list[str] = []
        family(out, "dbt_features_http_requests_total", "counter",
                "HTTP requests served, by endpoint and status code.",
                ((f'endpoint="{e}",code="{c}"', n) for (e, c), n in sorted(self.requests.items())))
        family(out, "dbt_features_http_errors_total", "counter",
                "Requests that failed, by endpoint and reason (bad_request, unauthorized, "
                "not_found, timeout, unprocessable, too_large, unavailable, internal).",
                ((f'endpoint="{e}",reason="{r}"', n) for (e, r), n in sorted(self.errors.items())))
        family(out, "dbt_features_entities_served_total", "counter",
                "Entity rows answered by /get-online-features.", [("", self.entities)])
        out.append("# HELP dbt_features_http_request_duration_seconds Time to answer a request.")
        out.append("# TYPE dbt_features_http_request_duration_seconds histogram")
        for endpoint, hist in sorted(self.latency.items()):
            running = 0
            for bound, count in zip((*BUCKETS, float("inf")), hist.counts):
                running += count
                le = "+Inf" if bound == float("inf") else repr(bound)
                out.append(f'dbt_features_http_request_duration_seconds_bucket{{endpoint="{endpoint}",'
                           f'le="{le}"}} {running}')
            out.append(f'dbt_features_http_request_duration_seconds_sum{{endpoint="{endpoint}"}} '
                       f"{hist.total!r}")
            out.append(f'dbt_features_http_request_duration_seconds_count{{endpoint="{endpoint}"}} '
                       f"{hist.n}")
        family(out, "dbt_features_online_last_sync_age_seconds", "gauge",
                "Seconds since each online view was last synced (absent: never synced).",
                ((f'view="{v}"', round(age, 3)) for v, age in sorted(sync_ages.items())
                 if age is not None))
        family(out, "dbt_features_redis_up", "gauge",
                "1 when the online store answered the last check.", [("", int(redis_up))])
        return "\n".join(out) + "\n"


def family(out: list[str], name: str, kind: str, help_: str,
           samples: Iterable[tuple[str, float]]) -> None:
    """One metric family in Prometheus's text format (``labels``: ``k="v",...`` or empty)."""
    out.append(f"# HELP {name} {help_}")
    out.append(f"# TYPE {name} {kind}")
    for labels, value in samples:
        out.append(f"{name}{{{labels}}} {value}" if labels else f"{name} {value}")


def render_consistency(ratios: Mapping[tuple[str, str], float]) -> str:
    """The last replay's (``verify --served``) share of served values that matched the
    training set, per view and feature; empty without a replay."""
    if not ratios:
        return ""
    out: list[str] = []
    family(out, "dbt_features_served_consistency_ratio", "gauge",
            "Share of served values equal to the training set's at their request time, in the "
            "last `dbt-features verify --served` (1 - mismatch rate).",
            ((f'view="{v}",feature="{f}"', round(r, 6)) for (v, f), r in sorted(ratios.items())))
    return "\n".join(out) + "\n"
