"""dbt-features against Feast 0.67, side by side, on the same data and the same Redis.

    .venv/bin/python tests/benchmarks/bench_vs_feast.py            # 2M rows, 200k entities
    .venv/bin/python tests/benchmarks/bench_vs_feast.py --quick    # a smoke run (about a minute)

Needs ``.venv-feast`` with ``tests/benchmarks/feast_bench_requirements.txt`` installed (Feast
0.67 with its redis and duckdb extras; Feast cannot be imported into ``.venv``).

Generates one parquet file of ROWS feature rows (ENTITIES entities, 10 double features,
unique (entity, event time), all within the last 8 days) and a SPINE-row spine (random
entities and times), then builds both sides on exactly those rows:

* Feast: a feature repo (``feast_side/feast_worker.py``): FileSource on the parquet, offline
  store ``duckdb``, online store ``redis``, ttl 30 days; ``feast apply``;
* dbt-features: a dbt project (DuckDB) whose one model selects the parquet, with
  ``meta.feature_store`` (the same entity, time, ttl), built with ``dbt run``.

Each side then runs in ONE long-lived worker process (Feast's in ``.venv-feast``), driven
over a line protocol (``feast_side/protocol.py``), so a side's peak RSS is its process tree's
peak over the whole run (sampled every 0.1 s, and ``ru_maxrss``). Measured, alternating
which side goes first: ``get_historical_features(...).to_arrow()`` vs ``get_training_set``
(5 features); ``materialize`` vs ``sync(full_refresh=True)``, each into an empty store
(``--repeat`` runs each, median); the bytes per entity in Redis (``MEMORY USAGE`` on a sample
of each side's keys, times its key count, over the entities); then
``get_online_features(...).to_dict()`` of 10 features for 1 and 100 entities: warm-up, then
``--rounds`` rounds of the same requests on each side, alternating; the median over rounds of
each side's p50 and p99. Both sides' training sets and online values are checked to agree.
Redis: 127.0.0.1:6379 (``--redis-url``), each side under its own prefix / project name,
deleted at the end; nothing else in that Redis is touched.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from importlib.metadata import version
from pathlib import Path
from urllib.parse import urlparse

REPO = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
FEAST_SIDE = HERE / "feast_side"
FEAST_BIN = REPO / ".venv-feast" / "bin"
BIN = Path(sys.executable).parent
VIEW = "bench_features"
N_FEATURES = 10
TRAINING_FEATURES = [f"{VIEW}:f{k}" for k in range(5)]
ONLINE_FEATURES = [f"{VIEW}:f{k}" for k in range(N_FEATURES)]
FULL = {"entities": 200_000, "rows": 2_000_000, "spine": 200_000, "repeat": 3, "rounds": 5,
        "reads": 1000, "reads_100": 300, "warmup": 200}
QUICK = {"entities": 20_000, "rows": 200_000, "spine": 20_000, "repeat": 1, "rounds": 2,
         "reads": 200, "reads_100": 50, "warmup": 50}

MODEL = """{{{{ config(meta={{'feature_store': {{'entity': 'entity_id',
    'timestamp': 'event_timestamp', 'ttl': '30d', 'online': true}}}}) }}}}
select * from read_parquet('{parquet}')
"""


@dataclass(frozen=True)
class Sizes:
    entities: int
    rows: int
    spine: int
    repeat: int
    rounds: int
    reads: int
    reads_100: int
    warmup: int


@dataclass(frozen=True)
class Data:
    root: Path
    features: Path
    spine: Path
    anchor: datetime
    """The newest event time (naive UTC); every row is within 8 days before it."""


# -- the data, once, for both sides ------------------------------------------------------------


def generate(root: Path, sizes: Sizes) -> Data:
    """Row i is entity i % E at anchor - (i // E) * 20 h - (hash % 1 h): unique per entity."""
    import duckdb

    anchor = datetime.now(timezone.utc).replace(tzinfo=None, microsecond=0) - timedelta(minutes=1)
    features, spine = root / "features.parquet", root / "spine.parquet"
    values = ", ".join(f"(hash(i * {N_FEATURES} + {k}) % 1000003) / 1000.0 as f{k}"
                       for k in range(N_FEATURES))
    con = duckdb.connect()
    con.sql(f"""copy (select cast(i % {sizes.entities} as bigint) as entity_id,
        timestamp '{anchor}' - to_seconds(cast((i // {sizes.entities}) * 72000
            + hash(i) % 3600 as bigint)) as event_timestamp, {values}
        from range({sizes.rows}) as t(i)) to '{features}' (format parquet)""")
    con.sql(f"""copy (select cast(hash(j * 7) % {sizes.entities} as bigint) as entity_id,
        timestamp '{anchor}' - to_seconds(cast(hash(j * 3) % {8 * 86400} as bigint))
            as event_timestamp
        from range({sizes.spine}) as t(j)) to '{spine}' (format parquet)""")
    con.close()
    return Data(root, features, spine, anchor)


def build_dbt_project(data: Data) -> Path:
    project = data.root / "dbt_project"
    (project / "models").mkdir(parents=True)
    (project / "dbt_project.yml").write_text(
        "name: bench\nversion: '1.0'\nconfig-version: 2\nprofile: bench\n"
        "models:\n  bench:\n    +materialized: table\n")
    (project / "profiles.yml").write_text(
        "bench:\n  target: dev\n  outputs:\n    dev:\n      type: duckdb\n"
        f"      path: '{project / 'bench.duckdb'}'\n      keep_open: false\n      threads: 1\n")
    (project / "models" / f"{VIEW}.sql").write_text(MODEL.format(parquet=data.features))
    subprocess.run([str(BIN / "dbt"), "run", "--project-dir", str(project), "--profiles-dir",
                    str(project), "--quiet"], check=True, cwd=project)
    return project


def build_feast_repo(data: Data, project: str, redis_url: str) -> Path:
    url = urlparse(redis_url)
    db = (url.path or "/0").lstrip("/") or "0"
    connection = f"{url.hostname or '127.0.0.1'}:{url.port or 6379},db={db}"
    repo = data.root / "feast_repo"
    python = str(FEAST_BIN / "python")
    subprocess.run([python, str(FEAST_SIDE / "feast_worker.py"), "init", str(repo), project,
                    str(data.features), connection], check=True)
    subprocess.run([str(FEAST_BIN / "feast"), "apply"], check=True, cwd=repo,
                   env=feast_env(), stdout=subprocess.DEVNULL)
    return repo


def feast_env() -> dict:
    return dict(os.environ, FEAST_USAGE="False", PYTHONPATH=str(FEAST_SIDE))


# -- the workers -------------------------------------------------------------------------------


class TreeRss:
    """The peak of the summed RSS of a process and its descendants, sampled from /proc."""

    def __init__(self, pid: int, interval: float = 0.1) -> None:
        self.pid, self.interval, self.peak_mb = pid, interval, 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        page = os.sysconf("SC_PAGE_SIZE")
        while not self._stop.wait(self.interval):
            parents: dict[int, int] = {}
            for entry in os.listdir("/proc"):
                if entry.isdigit():
                    try:
                        stat = Path(f"/proc/{entry}/stat").read_text()
                        parents[int(entry)] = int(stat.rsplit(")", 1)[1].split()[1])
                    except (OSError, IndexError, ValueError):
                        continue
            tree, frontier = {self.pid}, [self.pid]
            while frontier:
                children = [p for p, parent in parents.items() if parent in frontier]
                tree.update(children)
                frontier = children
            total = 0
            for pid in tree:
                try:
                    total += int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * page
                except (OSError, IndexError, ValueError):
                    continue
            self.peak_mb = max(self.peak_mb, total / 2**20)

    def stop(self) -> float:
        self._stop.set()
        self._thread.join()
        return self.peak_mb


@dataclass
class Worker:
    """One side's process: commands in, JSON answers out."""

    name: str
    proc: subprocess.Popen
    log: Path
    rss: TreeRss = field(init=False)

    def __post_init__(self) -> None:
        self.rss = TreeRss(self.proc.pid)

    def call(self, op: str, **args) -> dict:
        self.proc.stdin.write(json.dumps({"op": op, **args}) + "\n")  # type: ignore[union-attr]
        self.proc.stdin.flush()  # type: ignore[union-attr]
        line = self.proc.stdout.readline()  # type: ignore[union-attr]
        if not line:
            raise SystemExit(f"{self.name} worker died; its log:\n{self.log.read_text()[-4000:]}")
        answer = json.loads(line)
        if "error" in answer:
            raise SystemExit(f"{self.name} failed on {op}:\n{answer['error']}")
        return answer

    def close(self) -> float:
        """Stop the worker; its peak RSS in MB (sampled tree sum, or ru_maxrss if higher)."""
        if self.proc.poll() is not None:  # it died (and was reaped): no ru_maxrss to read
            return self.rss.stop()
        self.proc.stdin.write(json.dumps({"op": "quit"}) + "\n")  # type: ignore[union-attr]
        self.proc.stdin.close()  # type: ignore[union-attr]
        _, status, usage = os.wait4(self.proc.pid, 0)
        self.proc.returncode = os.waitstatus_to_exitcode(status)
        return max(self.rss.stop(), usage.ru_maxrss / 1024)


def start_worker(name: str, argv: list[str], env: dict, log: Path) -> Worker:
    proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=log.open("w"), env=env, text=True, cwd=log.parent)
    return Worker(name, proc, log)


def dbt_features_worker(project: str, spine_path: str) -> None:
    """The dbt-features side: the public API only (``dbt_features.FeatureStore``)."""
    sys.path.insert(0, str(FEAST_SIDE))
    import pyarrow as pa
    import pyarrow.parquet as pq
    from protocol import column_checksums, read_round, serve, timed

    from dbt_features import FeatureStore

    store = FeatureStore(project_dir=project)
    store.registry  # noqa: B018 - loaded before anything is timed, as Feast's is
    spine = pq.read_table(spine_path)
    pa.array([0])  # pyarrow's first conversion imports pandas: paid here, not in a timing

    def training(cmd: dict) -> dict:
        seconds, table = timed(lambda: store.get_training_set(
            spine, cmd["features"], spine_timestamp="event_timestamp"))
        names = [ref.split(":")[1] for ref in cmd["features"]]
        return {"seconds": seconds, "rows": table.num_rows,
                "checksums": column_checksums({n: table.column(n).to_pylist() for n in names})}

    def materialize(_: dict) -> dict:
        seconds, _synced = timed(lambda: store.sync(full_refresh=True))
        return {"seconds": seconds}

    def reads(cmd: dict) -> dict:
        features = cmd["features"]
        return read_round(lambda rows: store.get_online_features(features, rows).to_dict(),
                          cmd["requests"], "entity_id")

    def lookup(cmd: dict) -> dict:
        got = store.get_online_features(cmd["features"],
                                        [{"entity_id": i} for i in cmd["ids"]]).to_dict()
        names = got["metadata"]["feature_names"]
        return {"values": {n.split(":")[-1]: r["values"] for n, r in zip(names, got["results"])}}

    serve({"training": training, "materialize": materialize, "reads": reads, "lookup": lookup})


# -- Redis -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Footprint:
    keys: int
    sampled: int
    bytes_per_entity: float


def keys_matching(client, pattern: str | bytes) -> list[bytes]:
    return list(client.scan_iter(match=pattern, count=10_000))


def unlink_matching(client, pattern: str | bytes) -> int:
    keys = keys_matching(client, pattern)
    for i in range(0, len(keys), 10_000):
        client.unlink(*keys[i : i + 10_000])
    return len(keys)


def footprint(client, pattern: str | bytes, entities: int, sample: int) -> Footprint:
    """Bytes per entity: MEMORY USAGE (every field of a hash: SAMPLES 0) averaged over a random
    sample of the side's keys, times its key count, over the entities. It does not assume a
    key layout: one key per entity, buckets of entities, or extra bookkeeping keys alike."""
    keys = keys_matching(client, pattern)
    chosen = random.Random(0).sample(keys, min(sample, len(keys)))
    pipe = client.pipeline(transaction=False)
    for key in chosen:
        pipe.memory_usage(key, samples=0)
    sizes = [s for s in pipe.execute() if s is not None]
    mean = statistics.fmean(sizes) if sizes else 0.0
    return Footprint(len(keys), len(sizes), mean * len(keys) / entities)


# -- the measurements --------------------------------------------------------------------------

SIDES = ("feast", "ours")


@dataclass(frozen=True)
class ReadStats:
    p50_ms: float
    p99_ms: float


@dataclass
class Results:
    training_s: dict[str, list[float]] = field(default_factory=lambda: {s: [] for s in SIDES})
    materialize_s: dict[str, list[float]] = field(default_factory=lambda: {s: [] for s in SIDES})
    footprints: dict[str, Footprint] = field(default_factory=dict)
    reads: dict[int, dict[str, ReadStats]] = field(default_factory=dict)
    peak_mb: dict[str, float] = field(default_factory=dict)
    checks: list[str] = field(default_factory=list)
    ping_ms: float = 0.0
    """A bare PING's p50 from this process, just before the reads: on idle cores a loopback
    round trip wakes Redis from an idle CPU and costs about twice as much, which moves the
    1-entity ratio (the reads of both sides pay it; ours are little else)."""


def alternating(n: int) -> tuple[str, ...]:
    """Which side goes first changes every run, so drifting noise hits both alike."""
    return SIDES if n % 2 == 0 else SIDES[::-1]


def progress(workers: dict[str, Worker], seconds: dict[str, list[float]]) -> str:
    return ", ".join(f"{s} {seconds[s][-1]:.2f} s (peak RSS so far "
                     f"{workers[s].rss.peak_mb:.0f} MB)" for s in SIDES)


def run_training(workers: dict[str, Worker], sizes: Sizes, results: Results) -> None:
    answers: dict[str, dict] = {}
    for n in range(sizes.repeat):
        for side in alternating(n):
            answers[side] = workers[side].call("training", features=TRAINING_FEATURES)
            results.training_s[side].append(answers[side]["seconds"])
        print(f"  training set, run {n + 1}: {progress(workers, results.training_s)}", flush=True)
    feast, ours = answers["feast"], answers["ours"]
    same = feast["rows"] == ours["rows"] == sizes.spine and all(
        feast["checksums"][k]["count"] == ours["checksums"][k]["count"]
        and abs(feast["checksums"][k]["sum"] - ours["checksums"][k]["sum"])
        <= 1e-9 * max(1.0, abs(ours["checksums"][k]["sum"])) for k in ours["checksums"])
    counts = {s: answers[s]["checksums"]["f0"]["count"] for s in SIDES}
    results.checks.append(
        f"training sets agree (rows; non-null count and sum per feature): "
        f"{'yes' if same else 'NO'}"
        f" ({ours['rows']:,} vs {feast['rows']:,} rows; f0 non-null: {counts['ours']:,} vs "
        f"{counts['feast']:,})")


def run_materialize(workers: dict[str, Worker], client, patterns: dict[str, str],
                    data: Data, sizes: Sizes, results: Results) -> None:
    """Each run starts from an empty store (the side's keys deleted, untimed): Feast skips
    writing values that are not newer than what Redis holds, so a rerun onto full keys
    would time a different job."""
    window = {"start": (data.anchor - timedelta(days=30)).isoformat(),
              "end": datetime.now(timezone.utc).replace(tzinfo=None).isoformat()}
    for n in range(sizes.repeat):
        for side in alternating(n):
            unlink_matching(client, patterns[side])
            answer = workers[side].call("materialize", **window)
            results.materialize_s[side].append(answer["seconds"])
        print(f"  materialize / sync, run {n + 1}: {progress(workers, results.materialize_s)}",
              flush=True)
    for side in SIDES:
        results.footprints[side] = footprint(client, patterns[side], sizes.entities, 2000)


def check_online(workers: dict[str, Worker], sizes: Sizes, results: Results) -> None:
    ids = random.Random(1).sample(range(sizes.entities), min(50, sizes.entities))
    got = {s: workers[s].call("lookup", features=ONLINE_FEATURES, ids=ids)["values"]
           for s in SIDES}
    same = got["feast"] == got["ours"]
    results.checks.append(f"online values agree ({len(ids)} entities x {N_FEATURES} features): "
                          f"{'yes' if same else 'NO'}")


def entity_requests(rng: random.Random, entities: int, batch: int, n: int) -> list[list[int]]:
    return [[rng.randrange(entities) for _ in range(batch)] for _ in range(n)]


def ping_p50(client, n: int = 2000) -> float:
    timings = []
    for _ in range(n):
        started = time.perf_counter()
        client.ping()
        timings.append(time.perf_counter() - started)
    return statistics.median(timings) * 1000


def run_reads(workers: dict[str, Worker], sizes: Sizes, results: Results) -> None:
    """Per batch size: a warm-up, then rounds of the same requests on both sides."""
    rng = random.Random(2)
    for batch, count in ((1, sizes.reads), (100, sizes.reads_100)):
        warm = entity_requests(rng, sizes.entities, batch, sizes.warmup)
        for side in SIDES:
            workers[side].call("reads", features=ONLINE_FEATURES, requests=warm)
        rounds: dict[str, list[dict]] = {s: [] for s in SIDES}
        for n in range(sizes.rounds):
            batch_requests = entity_requests(rng, sizes.entities, batch, count)
            for side in alternating(n):
                rounds[side].append(workers[side].call(
                    "reads", features=ONLINE_FEATURES, requests=batch_requests))
            print(f"  reads of {batch} entities, round {n + 1}: " + ", ".join(
                f"{s} p50 {rounds[s][-1]['p50_ms']:.3f} ms p99 {rounds[s][-1]['p99_ms']:.3f} ms"
                for s in SIDES), flush=True)
        results.reads[batch] = {s: ReadStats(statistics.median(r["p50_ms"] for r in rounds[s]),
                                             statistics.median(r["p99_ms"] for r in rounds[s]))
                                for s in SIDES}


# -- the report --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Goal:
    text: str
    met: bool


def report(results: Results, sizes: Sizes) -> list[Goal]:
    """Print the table (markdown, as docs/benchmarks.md shows it); the goals it was held to."""
    train = {s: statistics.median(results.training_s[s]) for s in SIDES}
    sync = {s: statistics.median(results.materialize_s[s]) for s in SIDES}
    rss, mem = results.peak_mb, {s: results.footprints[s].bytes_per_entity for s in SIDES}
    speedup = {"train": train["feast"] / train["ours"], "sync": sync["feast"] / sync["ours"]}
    goals = [Goal(f"training set >= 3x faster: {speedup['train']:.1f}x", speedup["train"] >= 3),
             Goal(f"materialization >= 20x faster: {speedup['sync']:.1f}x", speedup["sync"] >= 20),
             Goal(f"peak RSS <= 0.25x Feast's: {rss['ours'] / rss['feast']:.2f}x",
                  rss["ours"] / rss["feast"] <= 0.25)]
    print("\n| measure | Feast 0.67 | dbt-features | Feast / dbt-features |\n|---|---|---|---|")
    print(f"| training set, {len(TRAINING_FEATURES)} features ({sizes.spine:,}-row spine) | "
          f"{train['feast']:.2f} s | {train['ours']:.2f} s | {speedup['train']:.1f}x |")
    print(f"| materialize / sync --full-refresh ({sizes.entities:,} entities) | "
          f"{sync['feast']:.2f} s | {sync['ours']:.2f} s | {speedup['sync']:.1f}x |")
    print(f"| peak RSS of the whole run (each side's process tree) | {rss['feast']:.0f} MB | "
          f"{rss['ours']:.0f} MB | {rss['feast'] / rss['ours']:.1f}x |")
    for batch, floor in ((1, 3), (100, 10)):
        feast, ours = results.reads[batch]["feast"], results.reads[batch]["ours"]
        p50, p99 = feast.p50_ms / ours.p50_ms, feast.p99_ms / ours.p99_ms
        print(f"| online read, {batch} entit{'y' if batch == 1 else 'ies'} x {N_FEATURES} "
              f"features, .to_dict(), p50 / p99 | {feast.p50_ms:.3f} / {feast.p99_ms:.3f} ms | "
              f"{ours.p50_ms:.3f} / {ours.p99_ms:.3f} ms | {p50:.1f}x / {p99:.1f}x |")
        goals.append(Goal(f"online read p50, {batch} entit{'y' if batch == 1 else 'ies'}, "
                          f">= {floor}x faster: {p50:.1f}x", p50 >= floor))
    print(f"| Redis memory per entity (one view), MEMORY USAGE on a sample | "
          f"{mem['feast']:.0f} B | {mem['ours']:.0f} B | {mem['feast'] / mem['ours']:.1f}x |")
    print("\ngoals:")
    for goal in goals:
        print(f"  {goal.text:<52} {'met' if goal.met else 'MISSED'}")
    print("\nchecks:")
    for line in results.checks:
        print(f"  {line}")
    for side in SIDES:
        f = results.footprints[side]
        print(f"  {side} keys in Redis: {f.keys:,} ({f.sampled:,} sampled with MEMORY USAGE)")
    return goals


# -- the run -----------------------------------------------------------------------------------


def check_feast_venv() -> str:
    """Feast's version in .venv-feast, or exit saying how to install what this needs."""
    probe = subprocess.run(
        [str(FEAST_BIN / "python"), "-c", "import importlib.metadata as m, redis, hiredis, ibis, "
         "duckdb; print(m.version('feast'))"], capture_output=True, text=True)
    if probe.returncode != 0:
        raise SystemExit(
            f"{FEAST_BIN.parent} lacks Feast or its redis/duckdb extras: run\n  "
            f"{FEAST_BIN / 'pip'} install -r {HERE / 'feast_bench_requirements.txt'}\n"
            f"{probe.stderr[-1000:]}")
    return probe.stdout.strip()


def parse_args() -> tuple[argparse.Namespace, Sizes]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help=f"a smoke run: {QUICK['rows']:,} rows, "
                             f"{QUICK['entities']:,} entities")
    for name, default in FULL.items():
        parser.add_argument(f"--{name.replace('_', '-')}", type=int,
                            help=f"default {default:,} ({QUICK[name]:,} with --quick)")
    parser.add_argument("--redis-url", default=os.environ.get("BENCH_REDIS_URL",
                                                              "redis://127.0.0.1:6379/0"))
    parser.add_argument("--keep", action="store_true", help="keep the generated files")
    parser.add_argument("--worker", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    defaults = QUICK if args.quick else FULL
    sizes = Sizes(**{k: getattr(args, k) or v for k, v in defaults.items()})
    return args, sizes


def start_workers(data: Data, project: Path, repo: Path, prefix: str,
                  redis_url: str) -> dict[str, Worker]:
    ours_env = dict(os.environ, DBT_FEATURES_REDIS_URL=redis_url,
                    DBT_FEATURES_REDIS_PREFIX=prefix)
    return {
        "feast": start_worker("Feast", [str(FEAST_BIN / "python"),
                                        str(FEAST_SIDE / "feast_worker.py"), "serve", str(repo),
                                        str(data.spine)], feast_env(), data.root / "feast.log"),
        "ours": start_worker("dbt-features", [sys.executable, __file__, "--worker",
                                              str(project), str(data.spine)],
                             ours_env, data.root / "dbt_features.log"),
    }


def measure(data: Data, sizes: Sizes, args: argparse.Namespace, client) -> Results:
    tag = uuid.uuid4().hex[:8]
    prefix, feast_project = f"bench_vs_feast_{tag}", f"feast_vs_dbt_{tag}"
    # Feast's key is the serialized entity key followed by the project name; ours are matched
    # anywhere in the key, so that no layout of keys under the prefix escapes the clean-up.
    patterns = {"ours": f"*{prefix}*", "feast": f"*{feast_project}"}
    results, workers = Results(), {}
    try:
        started = time.perf_counter()
        project = build_dbt_project(data)
        repo = build_feast_repo(data, feast_project, args.redis_url)
        print(f"built the dbt project (dbt run) and the Feast repo (feast apply) in "
              f"{time.perf_counter() - started:.1f} s", flush=True)
        workers = start_workers(data, project, repo, prefix, args.redis_url)
        run_training(workers, sizes, results)
        run_materialize(workers, client, patterns, data, sizes, results)
        check_online(workers, sizes, results)
        results.ping_ms = ping_p50(client)
        run_reads(workers, sizes, results)
        results.peak_mb = {side: workers[side].close() for side in SIDES}
    finally:
        for worker in workers.values():
            if worker.proc.poll() is None:
                worker.proc.kill()
                worker.proc.wait()
        deleted = {side: unlink_matching(client, pattern) for side, pattern in patterns.items()}
        print(f"deleted the benchmark's Redis keys: {deleted}", flush=True)
    return results


def main() -> None:
    args, sizes = parse_args()
    if args.worker:
        dbt_features_worker(*args.worker)
        return
    import redis

    feast_version = check_feast_venv()
    print(f"Feast {feast_version} (duckdb offline store, redis online store) vs dbt-features "
          f"{version('dbt-features')}; {sizes.rows:,} rows, {sizes.entities:,} entities, "
          f"{N_FEATURES} double features, one view; {os.cpu_count()} cores, load average "
          f"{os.getloadavg()[0]:.1f}", flush=True)
    root = Path(tempfile.mkdtemp(prefix="bench_vs_feast_"))
    client = redis.Redis.from_url(args.redis_url)
    try:
        data = generate(root, sizes)
        results = measure(data, sizes, args, client)
    finally:
        if args.keep:
            print(f"kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)
    print(f"\n{sizes.rows:,} feature rows, {sizes.entities:,} entities, {N_FEATURES} double "
          f"features; training and materialization: median of {sizes.repeat} run(s) each; reads: "
          f"median over {sizes.rounds} rounds of {sizes.reads} (1 entity) / {sizes.reads_100} "
          f"(100 entities) requests per side, after {sizes.warmup} warm-up requests; load "
          f"average at the end {os.getloadavg()[0]:.1f}; a bare PING before the reads: p50 "
          f"{results.ping_ms:.3f} ms")
    report(results, sizes)


if __name__ == "__main__":
    main()
