"""``FeatureStore``: the Python API. Everything the CLI does goes through here.

It is one of the two places (with the CLI) that wire the core (registry, training sets,
warehouse) to the serving side (``dbt_features.serving``: online store, sync, verify, HTTP
server); the serving modules are imported when first used, so reading the registry costs
neither their imports nor dbt's.
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from .errors import UsageError
from .manifest import Manifest, current_state, load_manifest, read_manifest, read_metadata
from .project import DbtOptions, Project, find_project, load_credentials, target_name
from .registry import REGISTRY_FILE, FeatureRef, FeatureView, Registry
from .registry_load import LazyWarehouse, cached_registry
from .staleness import ProjectState
from .summary import feature_summary, view_summary

if TYPE_CHECKING:
    import pyarrow as pa

    from .catalog import Site, SiteWritten
    from .catalog.site import Progress as CatalogProgress
    from .diff import RegistryDiff
    from .serving.online import OnlineResponse, OnlineStore, ViewStatus
    from .serving.served_export import Progress as ExportProgress
    from .serving.served_export import ServedExport
    from .serving.served_log import ServedLogOptions
    from .serving.server import FeatureServer
    from .serving.sync import Progress as SyncProgress
    from .serving.sync import ViewSync
    from .serving.verify import Progress as VerifyProgress
    from .serving.verify import VerifyReport
    from .serving.replay_report import ReplayReport
    from .warehouse import Warehouse


class FeatureStore:
    """A dbt project seen as a feature store.

    Takes dbt's own options as keywords (``project_dir``, ``profiles_dir``, ``target``,
    ``vars``); with none, it uses the dbt project around the current directory, like dbt.
    The registry is loaded once and kept; call ``refresh()`` after changing the project.

    A broken feature definition does not stop the others: it is left out of the registry and
    listed in ``registry.problems`` (``validate()`` raises on any); ``on_problems``, when set, is
    called with the registry once it is loaded with problems (the CLI prints a warning).
    """

    def __init__(
        self,
        project_dir: str | None = None,
        *,
        profiles_dir: str | None = None,
        target: str | None = None,
        vars: dict[str, Any] | None = None,
        served_log: ServedLogOptions | bool | None = None,
    ) -> None:
        self.options = DbtOptions(project_dir, profiles_dir, target, dict(vars or {}))
        self.served_log = served_log
        """Log what online reads serve (``dbt_features.serving.served_log.ServedLogOptions``,
        or True for its defaults): ``get_online_features`` and the HTTP server."""
        self.project: Project = find_project(self.options)
        self._registry: Registry | None = None
        self._manifest: Manifest | None = None
        self._adapter_type: str | None = None
        self.on_problems: Callable[[Registry], None] | None = None

    @property
    def adapter_type(self) -> str:
        """The target's kind of warehouse (``duckdb``, ``postgres``, ...): the current
        registry's, else what dbt renders from the profile (which imports dbt)."""
        if self._adapter_type is None:
            saved = cached_registry(self.project.target_path / REGISTRY_FILE)
            if saved is not None and self._is_current(saved, current_state(self.project)):
                self._adapter_type = saved.adapter_type
            else:
                self._adapter_type = load_credentials(self.project)[0]
        return self._adapter_type

    @cached_property
    def target(self) -> str:
        return target_name(self.project)

    @property
    def manifest(self) -> Manifest:
        if self._manifest is None:
            self._manifest = load_manifest(self.project, self.adapter_type)
        return self._manifest

    @property
    def registry(self) -> Registry:
        """The registry, loaded once: ``target/feature_registry.json`` as it is while it is
        current (no dbt involved), else rebuilt from the manifest (dbt parses if needed)."""
        if self._registry is None:
            self._registry = self._load_registry(refresh=False)
            if self._registry.problems and self.on_problems is not None:
                self.on_problems(self._registry)
        return self._registry

    def refresh(self) -> Registry:
        """Re-read the project: re-parse with dbt and rebuild the registry."""
        self._manifest = load_manifest(self.project, self.adapter_type, refresh=True)
        self._registry = self._load_registry(refresh=True)
        return self._registry

    def validate(self) -> Registry:
        """Check every feature definition against the project and the warehouse; raise
        ``DefinitionError`` listing every problem. dbt runs only if the manifest is not current
        (``refresh()`` forces it); the registry is always rebuilt."""
        self._registry = self._load_registry(refresh=True)
        if self._registry.problems:
            raise self._registry.definition_error()
        return self._registry

    def warehouse(self) -> Warehouse:
        """A new connection to the target's warehouse (close it, or use ``with``)."""
        from .warehouse import open_warehouse

        return open_warehouse(self.project)

    @cached_property
    def online(self) -> OnlineStore:
        """The online store: connected on first use, with the registry as loaded then; Redis
        from the project's configuration or the embedded one."""
        from .serving.config import resolve_config
        from .serving.online import OnlineStore

        online = OnlineStore.open(self.registry, resolve_config(self.project))
        if self.served_log:
            online.enable_served_log(self.served_log)
        return online

    def sync(self, select: str | None = None, *, exclude: str | None = None,
             state: str | None = None, full_refresh: bool = False, from_sql: bool = False,
             batch_size: int | None = None, allow_eviction: bool = False,
             progress: SyncProgress | None = None) -> list[ViewSync]:
        """Sync the online views (chosen as by ``select``) into the online store. Incremental
        unless ``full_refresh``; either way the store ends up serving what a full refresh
        would."""
        from .serving.sync import DEFAULT_BATCH_SIZE, SyncOptions, online_views, sync_views

        options = SyncOptions(full_refresh=full_refresh, from_sql=from_sql,
                              batch_size=DEFAULT_BATCH_SIZE if batch_size is None else batch_size,
                              allow_eviction=allow_eviction, progress=progress)
        views = online_views(self.select(select, exclude, state=state), select, "sync")
        return sync_views(views, self.online, self.warehouse, options)

    def get_online_features(self, features: list[str] | str,
                            entity_rows: list[dict[str, Any]]) -> OnlineResponse:
        """Latest values of ``features`` (``view:feature``/``view:*``) for ``entity_rows``
        (join key -> value); logged when the store has a ``served_log``."""
        return self.online.get_online_features(features, entity_rows)

    def online_status(self, select: str | None = None, *, exclude: str | None = None,
                      state: str | None = None) -> list[ViewStatus]:
        """Per online view: last sync, watermark, keys, synced fingerprint."""
        chosen = select or exclude
        return self.online.status(self.select(select, exclude, state=state) if chosen else None)

    def verify(self, select: str | None = None, *, exclude: str | None = None,
               state: str | None = None, sample: int = 1000, seed: int = 0,
               progress: VerifyProgress | None = None) -> VerifyReport:
        """Compare online values with offline values as of now for up to ``sample`` entities
        per online view (the report's ``exit_code`` is 1 on any mismatch)."""
        from .catalog.model import VERIFY_FILE, save_verify
        from .serving.sync import online_views
        from .serving.verify import verify_views

        views = online_views(self.select(select, exclude, state=state), select, "verify")
        report = verify_views(views, self.registry, self.online, self.warehouse, sample=sample,
                              seed=seed, progress=progress)
        save_verify(self.project.target_path / VERIFY_FILE, report.to_dict())  # the catalog's
        return report

    def verify_served(self, source: str, *, as_known_at: bool = False,
                      max_mismatch_rate: float = 0.0, select: str | None = None,
                      exclude: str | None = None, state: str | None = None) -> ReplayReport:
        """Replay what was served: each value of a served log (an exported folder or .parquet
        file, a dbt model or source, or ``stream``) against the training set's value at its
        request time; ``exit_code`` 1 when a feature's mismatch rate is above
        ``max_mismatch_rate``. The report is kept in target/ for the server's /metrics."""
        from .serving.replay import ReplayOptions, replay
        from .serving.replay_report import REPLAY_FILE, save_replay
        from .serving.replay_source import SourceContext, load_served, read_stream
        from .training import ManifestRelations

        options = ReplayOptions(as_known_at=as_known_at, max_mismatch_rate=max_mismatch_rate)
        chosen = None
        if select or exclude:
            chosen = frozenset(v.name for v in self.select(select, exclude, state=state))
        ctx = SourceContext(self.registry, chosen, lambda: ManifestRelations(self.manifest),
                            self.warehouse, lambda: read_stream(self.project, self.read_served))
        report = replay(load_served(source, ctx), self.registry, self.warehouse, options)
        save_replay(self.project.target_path / REPLAY_FILE, report)
        return report

    def app(self, *, token: str | None = None, request_timeout: float | None = None,
            served_log: ServedLogOptions | bool | None = None) -> FeatureServer:
        """The HTTP feature server as an ASGI application: Feast's ``/get-online-features``,
        plus ``/health``, ``/features``, ``/metrics``, and the feature catalog at ``/``;
        ``served_log`` (default: the store's) logs what it serves."""
        from .serving.config import resolve_config
        from .serving.server import REQUEST_TIMEOUT_S, open_server

        server = open_server(self.registry, resolve_config(self.project), token=token,
                             request_timeout=request_timeout or REQUEST_TIMEOUT_S,
                             catalog=self.catalog_site())
        logged = self.served_log if served_log is None else served_log
        if logged:
            server.online.enable_served_log(logged)
        from .serving.replay_report import REPLAY_FILE

        server.replay_file = self.project.target_path / REPLAY_FILE  # the last verify --served
        return server

    def export_served(self, output: str | Path, *,
                      progress: ExportProgress | None = None) -> ServedExport:
        """Move the served-value log from the online store's Redis into Parquet files,
        ``output/<view>/*.parquet`` (exported entries are deleted from Redis; an interrupted
        export loses nothing and writes nothing twice when run again)."""
        from .serving.served_export import export_served

        self._flush_served_log()
        return export_served(self.online, Path(output), progress)

    def read_served(self) -> dict[str, pa.Table]:
        """The served-value log as it is in Redis, one Arrow table per view (nothing deleted)."""
        from .serving.served_export import read_served

        self._flush_served_log()
        return read_served(self.online)

    def _flush_served_log(self) -> None:
        """What this store's own reads logged is in Redis before the log is read."""
        log = self.online.served_log
        if log is not None:
            log.flush()

    def serve(self, host: str = "127.0.0.1", port: int = 6566, *,
              token: str | None = None,
              served_log: ServedLogOptions | bool | None = None) -> None:
        """Run the HTTP feature server until interrupted."""
        from .serving.serving_process import bind, run

        app = self.app(token=token, served_log=served_log)
        run(app, bind(host, port))

    def catalog_site(self, *, state: str | Path | None = None,
                     online_status: bool = False) -> Site:
        """The feature catalog's pages, rendered as they are asked for (``Site.render``): with
        ``state``, what changed against that environment (as ``diff``); with
        ``online_status``, what the online store holds now; the last ``verify`` if kept."""
        from .catalog import OnlineInfo, Site, build_catalog
        from .catalog.model import VERIFY_FILE, load_verify

        diff = self.diff(state) if state is not None else None
        registry = self.registry
        status = None
        if online_status:
            status = {s.view: OnlineInfo.from_status(s.to_dict()) for s in self.online_status()}
        catalog = build_catalog(registry, self._catalog_manifest(), diff=diff, status=status,
                                verify=load_verify(self.project.target_path / VERIFY_FILE))
        return Site(catalog)

    def _catalog_manifest(self) -> Manifest:
        """The manifest the registry came from: the one loaded, else target/manifest.json as
        it is (a current registry was made from it), so serving the catalog runs no dbt."""
        if self._manifest is None and self.project.manifest_path.is_file():
            return read_manifest(self.project.manifest_path)
        return self.manifest

    def catalog(self, output: str | Path | None = None, *, state: str | Path | None = None,
                online_status: bool = False,
                progress: CatalogProgress | None = None) -> SiteWritten:
        """Write the feature catalog, a static site (open its ``index.html`` in a browser), to
        ``output`` (default ``target/feature_catalog/``), replacing a previous one whole."""
        from .catalog import write_site
        from .catalog.site import CATALOG_DIR

        site = self.catalog_site(state=state, online_status=online_status)
        folder = Path(output) if output is not None else self.project.target_path / CATALOG_DIR
        return write_site(site, folder, progress)

    def _is_current(self, saved: Registry, state: ProjectState) -> bool:
        """Whether the saved registry is current: made for this target, from the manifest in
        target/ and the project as it is now (``state``: files, profile, target, vars). Judged
        without dbt."""
        if saved.target != self.target or saved.project_fingerprint != state.fingerprint:
            return False
        metadata = read_metadata(self.project.manifest_path) or {}
        return saved.manifest_invocation_id == metadata.get("invocation_id")

    def _load_registry(self, *, refresh: bool) -> Registry:
        path = self.project.target_path / REGISTRY_FILE
        state = current_state(self.project)
        saved = None if refresh else cached_registry(path)
        if saved is not None and self._is_current(saved, state):
            self._adapter_type = saved.adapter_type
            return saved
        if saved is not None and saved.target != self.target:
            # The manifest's relation names may belong to another target: parse again.
            self._manifest = load_manifest(self.project, self.adapter_type, refresh=True)
        if self._manifest is None:
            self._manifest = load_manifest(self.project, self.adapter_type, state=state)
        from .build import build_registry

        with LazyWarehouse(self.project) as lazy:
            registry = build_registry(
                self._manifest, project=self.project.name, target=self.target,
                columns_of=lazy.describe, strict=False, project_fingerprint=state.fingerprint,
            )
        registry.save(path)
        return registry

    def select(self, selector: str | None = None, exclude: str | None = None, *,
               state: str | Path | None = None) -> list[FeatureView]:
        """Feature views matching a dbt selector (``--select``: names, ``tag:``, paths, graph
        operators, ``state:`` against ``state`` or ``DBT_STATE``) minus ``exclude``, with dbt's
        own selection engine on the loaded manifest (nothing is written; without a selector,
        every view and no dbt). A selector matching no feature view raises ``UsageError`` with
        the closest names."""
        registry = self.registry  # before .manifest: loading it may re-parse
        if not selector and not exclude:
            return list(registry.views)
        from .selection import select_views

        return select_views(registry, self.manifest, selector, exclude, state=state,
                            project_root=self.project.root, target_path=self.project.target_path)

    def describe(self, ref: str) -> dict[str, Any]:
        """A view (``customer_spend``) or one feature (``customer_spend:avg_amount_30d``), as
        the dict ``describe --json`` prints."""
        view_name, sep, feature_name = ref.partition(":")
        view = self.registry.view(view_name)
        if not sep:
            return view_summary(view, detail=True)
        if feature_name == "*":
            raise UsageError(f"describe takes one feature or a view; {ref!r} names several.")
        feature = view.feature(feature_name)
        FeatureRef.parse(ref)
        return feature_summary(view, feature)

    def diff(self, state: str | Path) -> RegistryDiff:
        """This project's feature definitions against another environment's dbt artifacts
        (dbt's ``--state`` folder, e.g. production's target/): see ``dbt_features.diff``."""
        from .diff import diff_against_state
        from .state import load_state

        other, notes = load_state(state)  # a bad --state fails before any dbt work
        registry = self.registry  # before .manifest: it may re-parse, replacing the manifest
        if registry.problems:
            raise registry.definition_error()  # a view left out would look removed
        return diff_against_state(registry, self.manifest, other, notes)

    def get_training_set(
        self,
        spine: Any,
        features: list[str] | str,
        *,
        spine_timestamp: str | None = None,
        full_feature_names: bool = False,
        as_known_at: bool = False,
    ) -> pa.Table:
        """Point-in-time training set as a ``pyarrow.Table``: every spine row once, in order,
        with each feature as of the row's timestamp (see README "Training sets").

        ``spine``: a pandas/polars DataFrame, an Arrow table, a .parquet/.csv path, or the name
        of a dbt model or source (``source_name.table``; the joins run in the warehouse).
        ``features``: ``view:feature`` / ``view:*`` references. ``as_known_at``: a row of a view
        with a ``created_timestamp`` counts only once created, at or before the spine time
        (docs/training-sets.md, "As known at")."""
        from .training import ManifestRelations, get_training_set

        return get_training_set(
            self.registry, self.warehouse, spine, features,
            spine_timestamp=spine_timestamp, full_feature_names=full_feature_names,
            relations=ManifestRelations(self.manifest), as_known_at=as_known_at,
        )

    def training_sql(
        self,
        spine: str,
        features: list[str] | str,
        *,
        dialect: str | None = None,
        spine_timestamp: str | None = None,
        full_feature_names: bool = False,
        pretty: bool = True,
        as_known_at: bool = False,
    ) -> str:
        """The training-set SQL for a spine that is a dbt model or source, in ``dialect``
        (duckdb, postgres, snowflake, bigquery, spark, trino; default: the target's);
        ``as_known_at`` as for ``get_training_set``."""
        from .training import ManifestRelations, training_sql

        return training_sql(
            self.registry, self.warehouse, ManifestRelations(self.manifest), spine, features,
            dialect=dialect, spine_timestamp=spine_timestamp,
            full_feature_names=full_feature_names, pretty=pretty, as_known_at=as_known_at,
        )
