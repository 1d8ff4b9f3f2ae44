"""What a replay of served values found (``dbt-features verify --served``): per view and
feature, rows compared, mismatches, their likely causes and the worst examples; kept under the
project's ``target/`` so the feature server can expose the last replay's consistency on
``/metrics``."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .value_compare import plain, show

REPLAY_FILE = "feature_served_replay.json"
"""The last replay's report, in the project's target/ (read by the feature server's /metrics)."""
CAUSES = ("late_arrival", "served_after_ttl", "sync_lag", "definition_changed",
          "served_before_created", "unknown")
"""The likely causes of a mismatch, in the order they are tried (the first that fits wins)."""
REMEDIES = {
    "late_arrival": "the offline row was created after the request: replay with --as-known-at",
    "served_after_ttl": "served a value the current definition's ttl had already expired",
    "sync_lag": "the online store was behind the offline one: sync more often",
    "definition_changed": "served from a generation of another definition: "
                          "`dbt-features sync --full-refresh` after a change",
    "served_before_created": "served a row newer than any created by the request: its "
                             "created_timestamp is later than the row reached the warehouse "
                             "(or clocks differ): stamp created times when rows land, or "
                             "replay without --as-known-at",
    "unknown": "no timing or definition change explains it",
}


@dataclass(frozen=True)
class ServedMismatch:
    """One served value that is not what the training set says it was at that time."""

    entity: dict[str, Any]
    request_time: str
    request_id: str | None
    cause: str
    served: Any
    offline: Any
    served_status: str
    served_event_time: str | None
    offline_event_time: str | None

    def to_dict(self) -> dict[str, Any]:
        return {k: plain(v) for k, v in asdict(self).items()}

    def format(self, view: str, feature: str) -> str:
        keys = ",".join(f"{k}={v}" for k, v in self.entity.items())
        return (f"    {view} [{keys}] at {self.request_time}: {feature} served "
                f"{show(self.served)} {self.served_status} (at {self.served_event_time or '-'}), "
                f"offline {show(self.offline)} (at {self.offline_event_time or '-'}): {self.cause}")


@dataclass(frozen=True)
class FeatureReplay:
    view: str
    feature: str
    compared: int
    """Served rows that asked for this feature."""
    mismatched: int
    causes: dict[str, int]
    """Mismatches per likely cause (only causes seen)."""
    examples: tuple[ServedMismatch, ...] = ()
    """The worst mismatches: largest difference first for numbers, else earliest."""

    @property
    def rate(self) -> float:
        return self.mismatched / self.compared if self.compared else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"view": self.view, "feature": self.feature, "compared": self.compared,
                "mismatched": self.mismatched, "mismatch_rate": self.rate,
                "causes": dict(self.causes), "examples": [e.to_dict() for e in self.examples]}


@dataclass(frozen=True)
class ViewReplay:
    view: str
    source: str
    rows: int
    """Served (request, entity) rows of this view in the log."""
    requests: int
    fingerprints: tuple[str, ...]
    """The definition fingerprints the served generations were synced from."""
    current_fingerprint: str
    features: tuple[FeatureReplay, ...]
    not_compared: tuple[str, ...] = ()
    """Features served that the current definition no longer has."""
    seconds: float = 0.0

    @property
    def mismatched(self) -> int:
        return sum(f.mismatched for f in self.features)

    def to_dict(self) -> dict[str, Any]:
        data = {k: v for k, v in asdict(self).items() if k != "features"}
        data["mismatched"] = self.mismatched
        data["features"] = [f.to_dict() for f in self.features]
        return data


@dataclass(frozen=True)
class ReplayReport:
    as_known_at: bool
    max_mismatch_rate: float
    views: tuple[ViewReplay, ...]
    replayed_at: str = ""

    @property
    def features(self) -> list[FeatureReplay]:
        return [f for v in self.views for f in v.features]

    @property
    def mismatched(self) -> int:
        return sum(v.mismatched for v in self.views)

    @property
    def failing(self) -> list[FeatureReplay]:
        """Features whose mismatch rate is above the threshold."""
        return [f for f in self.features if f.rate > self.max_mismatch_rate]

    @property
    def exit_code(self) -> int:
        return 1 if self.failing else 0

    def to_dict(self) -> dict[str, Any]:
        return {"ok": not self.failing, "replayed_at": self.replayed_at,
                "as_known_at": self.as_known_at, "max_mismatch_rate": self.max_mismatch_rate,
                "rows": sum(v.rows for v in self.views), "mismatched": self.mismatched,
                "failing": [f"{f.view}:{f.feature}" for f in self.failing],
                "views": [v.to_dict() for v in self.views]}

    def format(self, examples: int = 3) -> str:
        """A short table (a line per feature), then the worst examples of each failing one."""
        rows = [("feature", "compared", "mismatched", "rate", "causes")]
        for f in self.features:
            causes = ", ".join(f"{c} {n:,}" for c, n in f.causes.items()) or "-"
            rows.append((f"{f.view}:{f.feature}", f"{f.compared:,}", f"{f.mismatched:,}",
                         f"{f.rate:.2%}", causes))
        widths = [max(len(r[i]) for r in rows) for i in range(4)]
        lines = ["  ".join([r[0].ljust(widths[0]), *(r[i].rjust(widths[i]) for i in (1, 2, 3)),
                            r[4]]).rstrip() for r in rows]
        for f in self.failing:
            lines += [e.format(f.view, f.feature) for e in f.examples[:examples]]
        for v in self.views:
            if v.not_compared:
                lines.append(f"  {v.view}: not compared (no longer in the definition): "
                             f"{', '.join(v.not_compared)}")
        mode = " as known at request time" if self.as_known_at else ""
        total = sum(v.rows for v in self.views)
        if not self.failing:
            verdict = (f"Replayed {total:,} served rows{mode}: served values match the training "
                       f"set (mismatch rate at most {self.max_mismatch_rate:g}).")
        else:
            causes = sorted({c for f in self.failing for c in f.causes}, key=CAUSES.index)
            verdict = (f"Replayed {total:,} served rows{mode}: {len(self.failing)} feature(s) "
                       f"above --max-mismatch-rate {self.max_mismatch_rate:g}; "
                       + "; ".join(f"{c}: {REMEDIES[c]}" for c in causes) + ".")
        return "\n".join([*lines, verdict])


def save_replay(path: Path, report: ReplayReport) -> None:
    """Keep the last replay for /metrics: written whole or not at all, never fatal (the replay
    itself already happened)."""
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        tmp.write_text(json.dumps(report.to_dict(), default=str) + "\n")
        tmp.replace(path)
    except OSError:
        tmp.unlink(missing_ok=True)


@dataclass(frozen=True)
class Consistency:
    """The last replay's consistency ratio (1 - mismatch rate) per (view, feature)."""

    ratios: dict[tuple[str, str], float] = field(default_factory=dict)


def load_consistency(path: Path | None) -> Consistency:
    """The ratios of the replay report at ``path``; empty when there is none or it is
    unreadable (the metrics go on without them)."""
    if path is None:
        return Consistency()
    try:
        data = json.loads(path.read_text())
        ratios = {}
        for view in data["views"]:
            for f in view["features"]:
                if int(f["compared"]):
                    rate = float(f["mismatch_rate"])
                    if math.isfinite(rate):
                        ratios[(str(f["view"]), str(f["feature"]))] = 1.0 - rate
        return Consistency(ratios)
    except (OSError, ValueError, KeyError, TypeError):
        return Consistency()
