"""`Shop`: a shop's workdir as a Python object, everything the command line does.

The CLI is a thin layer over this class (it parses flags, calls a method, prints), so a notebook,
a script and `shelfwise ...` behave the same: each method checks the acting person's permission
(`governance.authorize`: a denial raises `AccessDenied` and is audited) and the audit entries the
work writes name that person. Ids in and out are the shop's own; pseudonyms and index positions
stay inside. Heavy libraries are imported by the methods that need them.

    >>> shop = Shop("shop", as_="alice")          # API key from SHELFWISE_API_KEY (or api_key=)
    >>> shop.ingest("data/")                       # doctest: +SKIP
    >>> shop.recommend("C1001", k=5)["items"]      # doctest: +SKIP
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypedDict, cast, overload

from .errors import (
    AttributeFiltersWarning,
    EmptyRangeWarning,
    NoSearchIndex,
    ShelfwiseError,
    UnknownContextWarning,
    UnknownModel,
    UnknownName,
    WarehouseBusy,
    did_you_mean,
    whole_number,
)

if TYPE_CHECKING:
    import pandas as pd
    from typing_extensions import Unpack

    from .governance import IngestReport, Verification
    from .lifecycle import TrainResult, TrainSettings
    from .serving import Service
    from .storage import Engine

__all__ = ["Shop"]


# a Shop's answers catch up with events other processes spooled or absorbed at most this often
# (the replay reads every served event its bundle did not learn from)
REPLAY_SECONDS = 2.0

# the models whose lists owe nothing to the shopper's history: no "because" (their items were
# explained by an item-neighbour model that did not choose them)
UNEXPLAINED = frozenset({"popularity"})  # (serving._ranking.NON_PERSONAL, not imported here: light start-up)


class SearchOptions(TypedDict, total=False):
    """What `/v1/search` takes besides the query (same names, same meanings): facet filters, the
    sort, the page's offset (up to 1,000) and the shopper the page is personalized for."""

    category: str | None  # a category path prefix, e.g. "Home > Kitchen"
    brand: str | None  # a brand, case-insensitive
    price_min: float | None
    price_max: float | None
    in_stock: bool | None
    # attribute filters, key -> a value or several (`{"color": "red", "size": ["M", "L"]}`):
    # the values of one key ORed, keys ANDed, as `attr.color=red&attr.size=M&attr.size=L`
    attributes: Mapping[str, str | Sequence[str]] | None
    sort: str  # one of `shelfwise.search.SORTS` (default "relevance")
    offset: int  # results skipped (paging), 0..1000
    user_id: str | None  # the shop's own user id: personalizes by their history (with consent)
    personalized: bool  # False: that history is not used


ColumnMap = Sequence[str] | Mapping[str, Any]
"""Column maps: `"events.user_id=customer"` strings (as `--map` takes), `{"events.user_id":
"customer"}`, or per table as `shelfwise.toml`'s `[map.events]`: `{"events": {"user_id":
"customer"}}`; a list of headers joins them (`{"products.category": ["Dept", "Sub Dept"]}`)."""


def _map_flags(column_map: ColumnMap | None) -> tuple[str, ...]:
    if not column_map:
        return ()
    if isinstance(column_map, str):
        return (column_map,)
    if not isinstance(column_map, Mapping):
        return tuple(column_map)
    flags: list[str] = []

    def add(target: str, headers: Any) -> None:
        for h in headers if isinstance(headers, list | tuple) else [headers]:
            flags.append(f"{target}={h}")

    for key, value in column_map.items():
        if isinstance(value, Mapping):  # {"events": {"user_id": "customer"}}
            for column, headers in value.items():
                add(f"{key}.{column}", headers)
        else:
            add(str(key), value)
    return tuple(flags)


class Shop:
    """A shop's working directory (warehouse, models, reports, governance), opened as `as_`.

    `as_` and `api_key` identify the acting person once for every call; left out, they are
    read from `SHELFWISE_AS` and `SHELFWISE_API_KEY` here, when the Shop is made, as on the
    command line: changing the environment afterwards changes nobody's identity (a Shop acts as
    one person for its whole life; `repr` says who). `as_` given without `api_key` takes
    `SHELFWISE_API_KEY` only when `SHELFWISE_AS` is unset or names the same person (another
    person's key is never tried under `as_`'s name). A workdir with nobody registered runs in
    single-user mode: everything is allowed. The workdir need not exist yet (`ingest` and
    `train(data=...)` make it).
    """

    def __init__(self, workdir: str | Path, *, as_: str | None = None, api_key: str | None = None) -> None:
        if not isinstance(workdir, str | os.PathLike):
            raise ShelfwiseError(f"workdir {workdir!r}: a folder's path (a string or a Path)")
        # absolute, as given when made (a relative path was looked up again on every call: after
        # `os.chdir` the same Shop answered from another shop), `~` expanded (DuckDB expanded it
        # and shelfwise did not: a literal `./~` folder beside a warehouse in the home folder)
        self.workdir = Path(workdir).expanduser().absolute()
        # the identity, read once (a Shop made without `as_` changed person with the environment)
        env_as = os.environ.get("SHELFWISE_AS") or None
        self._as = as_ if as_ is not None else env_as
        if api_key is None and (as_ is None or env_as in (None, as_)):
            api_key = os.environ.get("SHELFWISE_API_KEY") or None
        self._key = api_key
        self._services: dict[tuple[bool, bool], Service] = {}
        self._served: tuple[Any, ...] | None = None  # `served_stamp` the services replayed
        self._replayed_at = 0.0  # (monotonic) when they last replayed
        self._engines: dict[Path, Any] = {}
        self._profiles: Any = None  # the served profiles (`profile`), read once
        self._cli = False  # the command line's Shop: its refusals name `--as`, a notebook's `as_=`
        self._exposures: Any = None  # the served lists not yet written (`serving.ExposureBuffer`)

    def __repr__(self) -> str:
        who = f", as_={self._as!r}" if self._as else ""
        return f"Shop({str(self.workdir)!r}{who})"

    def __enter__(self) -> Shop:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Write the lists served with `served=True` that are still buffered to the exposure log
        and close its segment (also done at the end of a `with Shop(...)` block, when the Shop
        is collected, and at the process's normal exit; in a forked or `multiprocessing` child
        each list is written as it is served). The Shop stays usable."""
        if self._exposures is not None:
            self._served_log(self._exposures.close)

    # -- permissions ----------------------------------------------------------------------------
    def authorize(self, action: str) -> str | None:
        """The name of the person allowed to do `action` (a `governance.PERMISSIONS` key), None in
        single-user mode; raises `AccessDenied` (audited) otherwise."""
        from .errors import AccessDenied
        from .governance import authorize

        try:
            # ("" and not None: `authorize` must not read the environment again, it was read once)
            person = authorize(self.workdir, action, name=self._as or "", key=self._key or "")
        except AccessDenied as exc:
            said = str(exc)
            if not self._cli and "--as NAME" in said:  # a notebook has no flags: say its way
                said = said.split(" with --as NAME")[0] + (
                    ": Shop(W, as_=NAME, api_key=KEY), or SHELFWISE_AS and SHELFWISE_API_KEY"
                )
                raise AccessDenied(said) from None
            if self._as and not self._key and "wrong API key" in said:  # (no key at all: say so)
                raise AccessDenied(
                    f"{said}: no API key was given for {self._as!r} (api_key=, or SHELFWISE_API_KEY "
                    "with SHELFWISE_AS unset or naming the same person)"
                ) from None
            raise
        return person.name if person else None

    @contextmanager
    def _acting(self, action: str | None, *, workdir: bool = True) -> Iterator[str | None]:
        """Authorize `action` (None: no permission needed), require a workdir (`workdir`), and
        let the audit entries written inside name the person."""
        from .governance._audit import acting_as

        actor = self.authorize(action) if action else None
        if workdir:
            self._require_workdir()
        with acting_as(actor or self._as):
            try:
                yield actor
            except Exception as exc:
                # another process holds the warehouse (a server absorbing, another command):
                # a ShelfwiseError saying so, as the CLI says it (exit 3), not DuckDB's IOException
                from .storage._warehouse import busy_message

                busy = busy_message(exc)
                if busy is None:
                    raise
                raise WarehouseBusy(busy) from exc

    def _absorb_if_allowed(self, actor: str | None) -> None:
        """Absorb the served events first when the person may (`events.absorb`): a report
        counts the newest attributed events. A reader who may not is not refused the report; it
        counts what was absorbed before (a report must not absorb in a reader's name)."""
        from .governance._access import PERMISSIONS, People
        from .serving._feedback import absorb

        self._written_served()  # (the lists the events are attributed to, this process's too)
        if actor is not None:
            person = People(self.workdir).load().get(actor)
            if person is None or person.role not in PERMISSIONS["events.absorb"]:
                return
        absorb(self.workdir)

    def _outside(self, out: str | Path) -> None:
        """`out` must be outside the workdir (`storage.outside_workdir`)."""
        from .storage import outside_workdir

        outside_workdir(out, self.workdir)

    def _pseudonym(self, user_id: str) -> str:
        """The warehouse's pseudonym of a shop's user id (the workdir's key)."""
        from .governance import Pseudonymizer

        return Pseudonymizer.of(self.workdir)(user_id)

    def _not_blank(self, user_id: str) -> None:
        """An empty id is refused in the caller's words: `--user` on the command line, the
        argument in Python (`erase("")` said "--user: an empty user id")."""
        from .governance._compile import trim_id

        if not trim_id(user_id):
            raise ShelfwiseError(f"{'--user' if self._cli else 'user id'}: an empty user id")

    def _require_workdir(self) -> None:
        if not (self.workdir / "warehouse.duckdb").exists():
            raise ShelfwiseError(
                f"{self.workdir}: not a shelfwise workdir (no warehouse.duckdb; ingest data first: `Shop.ingest(DIR)` or `shelfwise ingest`)"
            )

    # -- data -----------------------------------------------------------------------------------
    def ingest(
        self,
        data: str | Path,
        *,
        append: bool = False,
        column_map: ColumnMap | None = None,
        engine: Engine | None = None,
    ) -> IngestReport:
        """Governed ingestion of a dataset directory (canonical or a known public format):
        contracts, cleaning + quarantine, privacy, lineage and the HTML quality report.
        `append` adds a delivery to what is curated instead of replacing it with a snapshot.
        `engine` (`storage.engine_from`): where the data work runs, DuckDB by default."""
        _a_path(data, "data")
        with self._acting("ingest", workdir=False):
            from .lifecycle import ingest_dataset

            report: IngestReport = ingest_dataset(
                data, self.workdir, append=append, map_flags=_map_flags(column_map), engine=engine
            )
            return report

    def export(self, table: str, out: str | Path) -> int:
        """Write a curated table (pseudonymized ids, masked text) to CSV, Parquet or JSON lines;
        returns the number of rows. The users' consent columns say the consent in force now (the
        consent register's, the shop's default where it has none)."""
        with self._acting("export") as actor:
            from .governance import AuditLog
            from .storage import read_only
            from .storage._warehouse import export_curated

            self._outside(out)
            # a read: it must not need the write lock a running server's readers keep it from
            from .governance import CONTRACTS

            contract = CONTRACTS.get(table)
            whole = [c.name for c in contract.columns if c.integer] if contract is not None else []
            with read_only(self.workdir) as (con, tables):
                select = _users_now(con, self.workdir) if table == "users" and table in tables else None
                n = export_curated(con.sql, sorted(tables), table, out, whole, select)
            # a whole table leaving the workdir (pseudonymized ids are still a person's data):
            # who took it, where
            from .governance._audit import file_named

            AuditLog(self.workdir).append("export", actor=actor, table=table, rows=n, out=file_named(out))
            return n

    def table(self, name: str) -> pd.DataFrame:
        """A curated table as a pandas DataFrame (what `export` writes: pseudonymized, masked);
        audited as an export."""
        with self._acting("export") as actor:
            from .governance import AuditLog
            from .storage import read_only

            with read_only(self.workdir) as (con, tables):
                if name not in tables:
                    known = ", ".join(sorted(tables)) or "none yet"
                    raise UnknownName(
                        f"no curated table {name!r} (curated tables: {known})",
                        kind="curated table",
                        name=name,
                        known=sorted(tables),
                    )
                select = (
                    _users_now(con, self.workdir) if name == "users" else f'SELECT * FROM curated."{name}"'
                )
                df = con.sql(select).df()
            AuditLog(self.workdir).append("export", actor=actor, table=name, rows=len(df), out="dataframe")
            return df

    def pending_events(self) -> int:
        """Acknowledged events waiting in the spool (served, not yet in the warehouse)."""
        # the operations status of the data: the catalog's readers (freshness, loads) may see it
        with self._acting("catalog.read", workdir=False):
            from .serving._feedback import pending_events

            return pending_events(self.workdir)

    def absorb_events(self, *, redis_url: str | None = None) -> dict[str, Any]:
        """Ingest the events the server accepted (governed path), quarantine the rejected ones;
        `status` is "busy" when the warehouse was held by another process. `pending`: what is
        still waiting."""
        with self._acting("events.absorb"):
            from .serving._feedback import absorb, pending_events

            self._written_served()  # (what its events are attributed to, this process's too)
            client = _redis(redis_url)
            res = absorb(self.workdir, client)
            res["pending"] = pending_events(self.workdir, client)
            return res

    def send_events(
        self, events: Iterable[Mapping[str, Any]], *, redis_url: str | None = None
    ) -> dict[str, Any]:
        """Send shopper events as `POST /v1/events` does (same permission, `events.post`): each is
        checked against the events contract and answered in `results` (`accepted`, `rejected`
        with its reasons and quarantined, or `duplicate` of an `event_id` accepted before, here
        or by the server); the accepted ones are stored in the spool the server writes (or the
        shared Redis, `redis_url`, whose online state every replica reads) and reach the
        warehouse with the next absorb (`absorb_events`, `train`). This Shop's later answers
        know them at once; a server keeping its online state in memory (no Redis) knows them
        when it next starts or loads a bundle, as it knows another worker's. Values as pandas
        and numpy give them (`df.to_dict("records")`: numpy numbers, Timestamps, NaN for a
        missing field) are read as their JSON twins. Returns `{"accepted", "rejected",
        "duplicates", "results"}`, with `error`, `errors` and `note` when some were rejected."""
        with self._acting("events.post") as actor:
            from .serving._intake import send_events

            if _is_frame(events):  # a DataFrame of events: its rows (iterated: its column names)
                events = _frame_rows(events)
            if isinstance(events, Mapping | str | bytes) or not isinstance(events, Iterable):
                raise ShelfwiseError("events: a list of events (dicts with the events contract's fields)")
            body = [_plain_event(ev) for ev in events]
            if not body:
                raise ShelfwiseError("events: an empty list")
            if len(body) > 1000:
                raise ShelfwiseError(f"events: {len(body)} in one call; send at most 1000 at a time")
            svc = self._service(True, search=False)
            client = _redis(redis_url)
            out, accepted = send_events(
                self.workdir, body, svc.event_references(), redis_client=client, poster=actor
            )
            if accepted:
                for cached in self._services.values():
                    cached.record_events(accepted)
                if client is not None:  # the replicas' shared online state, as the route records it
                    from .serving import RedisState

                    RedisState(client).record(svc._online_rows(accepted))
            return out

    # -- training and evaluation ----------------------------------------------------------------
    def train(
        self,
        data: str | Path | None = None,
        *,
        models: Sequence[str] | None = None,
        settings: TrainSettings | None = None,
        append: bool = False,
        column_map: ColumnMap | None = None,
        log: Callable[[str], Any] | None = None,
        progress: bool = False,
        engine: Any = None,
        **options: Any,
    ) -> TrainResult:
        """Ingest `data` first (when given), build features, tune and fit the models, evaluate
        them out of sample, write and register a bundle (single-user mode: live at once).

        `models` picks models (default: the whole pipeline); `options` are `TrainSettings`
        fields (`seed`, `split`, budgets...) over `settings`; the CLI's flags are named after
        them, but for `--tune-seconds` (`tune_budget_s`), `--sasrec-seconds` (`sasrec_budget_s`),
        `--no-fusion` (`fusion=False`), `--finetune-steps`/`--finetune-seconds`
        (`search_finetune_steps`/`search_finetune_budget_s`), `--cross-encoder-steps`/
        `--cross-encoder-seconds` (`search_cross_steps`/`search_cross_budget_s`) and
        `--refit-seconds` (`refit_budget_s`). The result carries the protocol,
        the test-fold metrics per model (`results`), the report paths and the registry entry.
        `engine` (a `SparkEngine`): the ingestion and the interactions run on Spark. `log`: a
        callable given each progress line (`log=print` in a notebook); left None, nothing is
        printed (a library call in an app): the lines are in the run's log file all the same
        (`logs/train-<time>.log` in the workdir). No
        thread is left behind (the libraries' progress bars' monitor thread is not started)."""
        if data is not None:
            _a_path(data, "data")
        with self._acting("train", workdir=data is None) as actor:
            if data is not None:  # loading data is ingesting it, whoever trains on it after
                self.authorize("ingest")
            from .lifecycle import TrainSettings
            from .lifecycle import train as run_train
            from .lifecycle._train import check_choices, model_names

            if (append or column_map) and data is None:
                raise ShelfwiseError("append and column_map apply to the data given (data=DIR)")
            chosen = replace(settings or TrainSettings(), **_train_options(options))
            if models is not None:
                chosen = replace(chosen, models=tuple(model_names(models)))
            _in_range(chosen)
            # before anything is loaded: a typo must not leave a delivery appended behind it
            check_choices(
                chosen.models,
                chosen.split,
                models_said=f"models {list(chosen.models)!r}",
                split_said=f"split {chosen.split!r}",
            )
            self._written_served()  # (the search ranker learns from the served pages)
            with _no_tqdm_monitor():
                result: TrainResult = run_train(
                    self.workdir,
                    data,
                    chosen,
                    log=log or (lambda _msg: None),
                    actor=actor,
                    append=append,
                    map_flags=_map_flags(column_map),
                    progress=progress,
                    engine=engine,
                )
            self._services.clear()
            _keep_console_figures(self.workdir)
            return result

    def evaluate(
        self, models: Sequence[str] | None = None, *, sampled: int | None = None, version: str | None = None
    ) -> dict[str, Any]:
        """Evaluate the current bundle's models under its protocol, by full ranking: the `--json`
        report of `shelfwise evaluate`. `sampled=N` evaluates under a sampled protocol instead
        (each target ranked among N random unseen items, labelled so in `protocol`): a report of
        its own (`reports/evaluation-sampledN.json`), the full-ranking one left as it was
        (`full_ranking_report` names it). `version`: a registry version's bundle instead of the
        current one (a candidate before it is approved; its report `evaluation-<bundle>.json`)."""
        with self._acting("evaluate"):
            from .lifecycle import evaluate_workdir
            from .lifecycle._train import model_names

            bundle_dir = None
            if version is not None:
                from .lifecycle._registry import Registry

                bundle_dir = Registry(self.workdir).bundle_dir(str(version))
            return evaluate_workdir(
                self.workdir,
                models=model_names(models) if models else None,
                sampled=sampled,
                bundle_dir=bundle_dir,
            )

    # -- answering ------------------------------------------------------------------------------
    def _service(self, rules: bool, search: bool) -> Service:
        """A serving `Service` over the current bundle (kept between calls, refreshed when the
        bundle, the rules or the experiments change)."""
        from .serving import Service
        from .serving._feedback import served_stamp

        # events spooled or absorbed since (by another Shop, a notebook, a server, `absorb`):
        # the services' online state is replayed from them, as a server started now would
        # answer; at most once per REPLAY_SECONDS (a live server's spool grows with every event,
        # and a notebook's loop of calls must not replay it on each)
        now = time.monotonic()
        if self._services and now - self._replayed_at >= REPLAY_SECONDS:
            stamp = served_stamp(self.workdir)
            if stamp != self._served:
                for cached in self._services.values():
                    cached.replay_again()
                self._served, self._replayed_at = stamp, now
        for key in ((rules, search), (rules, True)):
            svc = self._services.get(key)
            if svc is not None:
                svc.refresh()
                return svc
        # with the served events the bundle did not learn from, as a server starts: a batch
        # answers what `/v1/recommendations` answers (a product just bought is not offered again)
        from .serving._consent import ConsentView

        stamp = served_stamp(self.workdir)
        # the consent register checked on every call (one stat): a consent withdrawn by another
        # Shop of this process was still honoured for the server's 0.1 s follow interval
        consent = ConsentView(self.workdir, follow_interval_s=0.0)
        svc = Service(
            self.workdir, apply_rules=rules, load_search=search, replay_served=True, consent=consent
        )
        self._services[(rules, search)] = svc
        if len(self._services) == 1:  # (the others replayed at their stamp: the oldest counts)
            self._served, self._replayed_at = stamp, now
        return svc

    @overload
    def recommend(  # type: ignore[overload-overlap]  # a str is an Iterable[str]: this one wins
        self,
        users: str,
        k: int = 10,
        *,
        model: str | None = None,
        explain: bool = False,
        context: str | None = None,
        rules: bool = True,
        served: bool = False,
    ) -> dict[str, Any]: ...

    @overload
    def recommend(
        self,
        users: Iterable[str],
        k: int = 10,
        *,
        model: str | None = None,
        explain: bool = False,
        context: str | None = None,
        rules: bool = True,
        served: bool = False,
    ) -> list[dict[str, Any]]: ...

    def recommend(
        self,
        users: str | Iterable[str],
        k: int = 10,
        *,
        model: str | None = None,
        explain: bool = False,
        context: str | None = None,
        rules: bool = True,
        served: bool = False,
    ) -> dict[str, Any] | list[dict[str, Any]]:
        """Top-k products for a user (a shop user id) or for each of several: what
        /v1/recommendations answers (same model, experiments and business rules; `rules=False`:
        the model's ranking alone). Each answer is `{"user_id", "items", "source", "personalized",
        "fallback", "filled", "model", "bundle_version"}` (source: the model, or "cold_start" for a user the shop has no
        history of or not to personalize; `filled`: how many places the popular list filled,
        `fallback: "popular"` when it filled any, and `personalized` false when no place is the
        model's for the shopper), with `experiment` when one assigned the user and, with
        `explain`, `because`: the history items behind the top item.
        `model` names one of the bundle's models; `context` (a category path prefix) steers the
        cold-start list. `explain` needs the permission to read a customer's history by their
        id too (`insights.profile`): the items behind a list are steps of that history.
        `served=True`: the lists are shown to shoppers (an app serving them through Python):
        each gets a `recommendation_id`, and is written to the exposure log as
        /v1/recommendations writes it, so that events posted with that id are attributed to the
        list, its model and experiment variant (`experiment_report`). Left False (an offline
        batch, an evaluation), no id is given: a list nobody was shown must not count as served.
        Serving lists to shoppers needs what the endpoint needs (`serve.call`: the service role
        has it), an offline list `recommend`."""
        with self._acting(_serving("recommend", served)):
            _a_flag(served, "served")
            _served_as_shown(served, rules, model)
            if explain:
                self.authorize("insights.profile")
            k = _k(k)
            if context is not None and not isinstance(context, str):
                raise ShelfwiseError(
                    f"context {context!r}: a category path prefix (a string), e.g. 'Sports > Cycling'"
                )
            one = isinstance(users, str)
            if not one and not isinstance(users, Iterable):
                raise ShelfwiseError(f"users {users!r}: a user id (a string) or several")
            if _is_frame(users) or isinstance(users, Mapping):
                # (iterated, a DataFrame gives its column names and a dict its keys: "user_id"
                # answered as a stranger, a cold-start list an evaluation would have read)
                raise ShelfwiseError(
                    f"users: a {type(users).__name__} is no list of user ids; give its column "
                    "(`df['user_id']`) or a list"
                )
            # read after the checks: the CLI passes a generator reading its file. Each id must be
            # a string (checked below): 1.0 from a pandas column with gaps would have become the
            # stranger "1.0" and got the cold-start list without a word
            ids = [users] if isinstance(users, str) else list(users)
            from .serving._service import recommendation_fields

            service = self._service(rules, search=False)
            snap = service.snapshot
            try:
                snap.recs.model_name(model)
            except KeyError as exc:
                raise UnknownModel(
                    str(exc.args[0]),
                    kind="model of the bundle",
                    name=model,
                    known=sorted(snap.recs.bundle.models),
                ) from exc
            out = []
            exposures: list[dict[str, Any]] = []
            said: str | None = None
            for n, raw in enumerate(ids):
                who = _user_id(raw, "user id" if one else f"users[{n}]")
                if who in snap.user_index:  # an id from a curated table or an export
                    raise ShelfwiseError(
                        f"user {who!r} is a pseudonym (curated tables and exports show those): "
                        "recommend takes the shop's own user id"
                    )
                ans = service.recommend(who, k, context=context, model=model)
                # (per answer: a variant's rules and bundle may know a context production does not)
                said = said or service.context_warning(context, ans.variant)
                line: dict[str, Any] = {
                    "user_id": who,  # (as the CLI writes it: the id answered for, trimmed)
                    "items": ans.items,
                    "source": "cold_start" if ans.source == "cold_start" else ans.model,
                    # (as /v1/recommendations says them: personalized, fallback, filled)
                    **recommendation_fields(ans),
                    "model": ans.model,
                    "bundle_version": ans.bundle,
                }
                if served:  # (as /v1/recommendations mints and logs it)
                    from .serving._exposures import exposure_record

                    line["recommendation_id"] = rid = service.new_id("rec")
                    exposures.append(
                        exposure_record("recommendations", rid, ans, ans.user, {"context": context})
                    )
                if ans.experiment:
                    line["experiment"] = {
                        "name": ans.experiment,
                        "variant": ans.variant.name if ans.variant else None,
                    }
                # a shopper not personalized (no consent) is explained by nothing of theirs
                personal = bool(ans.extra.get("personalized"))
                user = snap.user_index.get(ans.user) if ans.user and personal else None
                if explain and user is not None and ans.items and ans.model not in UNEXPLAINED:
                    line["because"] = snap.recs.explain(user, snap.item_index[ans.items[0]], ans.model)
                elif explain:  # a list by popularity is not "because of" anything of theirs
                    line["because"] = []
                out.append(line)
            self._log_served(exposures)
            # (whoever the users are: a known shopper's context-limited rules read it too, and
            # /v1/recommendations says it in `warnings` for every answer)
            if said:
                import warnings

                warnings.warn(UnknownContextWarning(said), stacklevel=2)
            return out[0] if one else out

    def recommend_on_spark(
        self,
        engine: Any,
        out: str | Path,
        users: Iterable[str] | None = None,
        k: int = 10,
        *,
        model: str | None = None,
    ) -> dict[str, int]:
        """`recommend(users, k, rules=False)` as a Spark job (`engine`: a `SparkEngine`), written
        as Parquet in `out` (user_id, rank, product_id, score, source; a new or empty folder, or
        one holding only an earlier output, outside the workdir); `users=None`: every user of the
        current bundle whose shop id the raw layer holds, a list of every customer's shop id, so
        it also needs `recommend.all_users` and is audited. Returns counts."""
        from .governance._audit import AuditLog, file_named
        from .lifecycle._spark_jobs import recommend_batch_spark

        with self._acting("recommend") as actor:
            if users is None:
                actor = self.authorize("recommend.all_users")
            ids = None if users is None else [_user_id(u, f"users[{n}]") for n, u in enumerate(users)]
            counts = recommend_batch_spark(self.workdir, engine.session, out, ids, k, model=model)
            if users is None:
                AuditLog(self.workdir).append(
                    "recommend.all_users", actor=actor, out=file_named(out), model=model, counts=counts
                )
            return counts

    def explain(self, user_id: str, product_id: str) -> list[str]:
        """The user's history items that most raise `product_id` for them (shop ids; empty for a
        user the current bundle does not know, or without personalization consent); a
        ShelfwiseError for a product it does not know (as `similar`: a mistyped id is said, not
        answered as "nothing explains it"). Needs `insights.profile` too, as a customer's
        history does: the items it names are steps of it (the console's shopper page agrees)."""
        with self._acting("recommend"):
            self.authorize("insights.profile")
            service = self._service(True, search=False)
            snap = service.snapshot
            pseudo = snap.recs.pseudonymize(_user_id(user_id))
            user = snap.user_index.get(pseudo) if service.personalizes(pseudo) else None
            item = snap.item_index.get(product_id) if isinstance(product_id, str) else None
            if item is None:
                raise _not_in_bundle(product_id)
            if user is None:
                return []
            return snap.recs.explain(user, item, snap.recs.model_name(None))  # (as the default list's)

    @overload
    def similar(
        self,
        product_id: str,
        k: int = 10,
        *,
        rules: bool = True,
        detail: Literal[False] = False,
        served: Literal[False] = False,
    ) -> list[str]: ...

    @overload
    def similar(
        self, product_id: str, k: int = 10, *, rules: bool = True, detail: Literal[True], served: bool = False
    ) -> dict[str, Any]: ...

    def similar(
        self, product_id: str, k: int = 10, *, rules: bool = True, detail: bool = False, served: bool = False
    ) -> list[str] | dict[str, Any]:
        """Products like `product_id` (what /v1/items/{id}/similar answers); ShelfwiseError for a
        product the current bundle does not know. With `detail`, the answer as the endpoint gives
        it: `{"product_id", "model", "items", "related", "fallback", "bundle_version"}`
        (`related`: how many items the model relates to the product; `fallback: "popular"` when
        best sellers fill the rest). `served=True` (with `detail`): the list is shown to a
        shopper: it gets a `recommendation_id` and is written to the exposure log as the
        endpoint writes it (see `recommend`; `serve.call`, as the endpoint needs)."""
        with self._acting(_serving("recommend", served)):
            _a_flag(served, "served")
            _served_as_shown(served, rules)
            if served and not detail:
                raise ShelfwiseError("served=True gives the list's recommendation_id: ask for detail=True")
            if not isinstance(product_id, str):
                raise ShelfwiseError(f"product {product_id!r}: give the product id as a string")
            svc = self._service(rules, search=False)
            ans = svc.similar(product_id, _k(k))
            if ans is None:
                if product_id in svc.snapshot.item_index:
                    raise UnknownName(svc.unlisted_reason(product_id), kind="product", name=product_id)
                raise _not_in_bundle(product_id)
            if not detail:
                return ans.items
            from .serving._service import similar_fields

            got = {"product_id": product_id, **similar_fields(ans), "bundle_version": ans.bundle}
            if served:
                from .serving._exposures import exposure_record

                got["recommendation_id"] = rid = svc.new_id("rec")
                self._log_served([exposure_record("similar", rid, ans, None, {"product_id": product_id})])
            return got

    @overload
    def search(  # type: ignore[overload-overlap]  # a str is an Iterable[str]: this one wins
        self,
        queries: str,
        k: int = 10,
        *,
        candidates: Iterable[Sequence[str] | None] | None = None,
        rules: bool = True,
        **options: Unpack[SearchOptions],
    ) -> list[str]: ...

    @overload
    def search(
        self,
        queries: Iterable[str],
        k: int = 10,
        *,
        candidates: Iterable[Sequence[str] | None] | None = None,
        rules: bool = True,
        **options: Unpack[SearchOptions],
    ) -> list[list[str]]: ...

    def search(
        self,
        queries: str | Iterable[str],
        k: int = 10,
        *,
        candidates: Iterable[Sequence[str] | None] | None = None,
        rules: bool = True,
        **options: Unpack[SearchOptions],
    ) -> list[str] | list[list[str]]:
        """Product ids for a query (or a list per query): lexical + semantic retrieval, fused and
        re-ranked; the results /v1/search answers (business rules included; `rules=False`: the
        search ranking alone), with its filters, sort, paging and personalization as keywords
        (`SearchOptions`: `category=`, `brand=`, `price_min=`, `price_max=`, `in_stock=`,
        `attributes=` (`{"color": "red", "size": ["M", "L"]}`), `sort=`, `offset=`, `user_id=`, `personalized=`). `candidates` (one list or None per
        query) re-ranks given lists only, with the ranker alone (no rules, no options); a query
        given None is searched as without `candidates`. A blank query finds nothing.
        `search_pages` also says how each list was found (a fallback list says it is one), the
        total, the facets and the stages that ran."""
        if "served" in options:  # (its ids would be lost with the pages: a list per query comes back)
            raise ShelfwiseError("served=True: use search_pages, whose pages carry the search_id")
        one = isinstance(queries, str)
        if isinstance(candidates, str):  # (iterated, "50" was the list ["5", "0"])
            raise ShelfwiseError(
                f"candidates {candidates!r}: a list of product ids for the query (one list, or None, per "
                "query for several), not a string"
            )
        if one and candidates is not None:
            cands = list(candidates)
            # one query's own list of ids, or one list (or None) per query as for several
            candidates = (
                [cast(list[str], cands)] if cands and all(isinstance(c, str) for c in cands) else cands
            )
        pages = self.search_pages(
            [queries] if isinstance(queries, str) else queries,
            k,
            candidates=candidates,
            rules=rules,
            **options,
        )
        out = [p["items"] for p in pages]
        return out[0] if one else out

    def search_pages(
        self,
        queries: Iterable[str],
        k: int = 10,
        *,
        candidates: Iterable[Sequence[str] | None] | None = None,
        rules: bool = True,
        served: bool = False,
        **options: Unpack[SearchOptions],
    ) -> list[dict[str, Any]]:
        """`search`, one dict per query with how its list was found, as /v1/search says it:
        `items`, `match` (`keyword`, `semantic_only`, `none`; None for a blank query or a given
        candidate list), `fallback` (`popular` when nothing matched and the popular products are
        shown instead), `corrected_query`, `total` (the matches before paging), `facets`
        (counts per category, brand, price band, stock, and attribute value), `stages` (those that ran), `degraded`,
        `personalized`, `bundle_version` (the bundle that answered), `warnings` (attribute filters
        asked of a bundle trained before they existed, which match nothing: also warned once a
        call, `AttributeFiltersWarning`), and `experiment` when one assigned the shopper. `served=True`: the pages are shown to shoppers: each (but a blank
        query's, which /v1/search refuses) gets a `search_id` and is written to the exposure log
        as /v1/search writes it, so that events posted with the id are attributed to it (CTR per
        query, experiments); not with `candidates`. Served pages need what /v1/search needs
        (`serve.call`: the service role has it), others `search`."""
        with self._acting(_serving("search", served)):
            from .serving import current_bundle

            _a_flag(served, "served")
            _served_as_shown(served, rules)
            if served and candidates is not None:
                raise ShelfwiseError(
                    "served: a re-ranking of given candidate lists is no page /v1/search serves"
                )
            k = _k(k)
            make_args = _search_args(options)
            if queries is None or not isinstance(queries, Iterable):
                raise ShelfwiseError(f"queries {queries!r}: a query (a string) or several")
            bundle = current_bundle(self.workdir)
            if not (bundle / "search").exists():
                raise NoSearchIndex(
                    f"{bundle}: no search index (the catalog had no text when it was trained)",
                    bundle=bundle.name,
                )
            # the inputs are read after the checks (and `candidates` after `queries`): the CLI
            # passes generators that read its files, so its errors come in the order they did
            texts = [queries] if isinstance(queries, str) else [str(q) for q in queries]

            def page(items: list[str], answer: Any = None) -> dict[str, Any]:
                extra = answer.extra if answer is not None else {}
                out = {
                    "items": items,
                    "match": extra.get("match"),
                    "fallback": extra.get("fallback"),
                    "corrected_query": extra.get("corrected_query"),
                    "total": extra.get("total", len(items)),
                    "facets": extra.get("facets", {}),
                    "stages": extra.get("stages", []),
                    "degraded": bool(extra.get("degraded")),
                    "personalized": bool(extra.get("personalized")),
                    "bundle_version": answer.bundle if answer is not None else bundle.name,
                    "warnings": list(extra.get("warnings", [])),
                }
                if answer is not None and answer.experiment:
                    variant = answer.variant.name if answer.variant else None
                    out["experiment"] = {"name": answer.experiment, "variant": variant}
                return out

            def serve(batch: list[str]) -> list[dict[str, Any]]:
                """The serving path itself (its whole pipeline), batched as the server batches."""
                service = self._service(rules, search=True)
                pages: list[dict[str, Any]] = []
                exposures: list[dict[str, Any]] = []
                for lo in range(0, len(batch), 256):
                    chunk = batch[lo : lo + 256]
                    jobs = [(make_args(t, k), "full") for t in chunk if t.strip()]
                    answers = iter(service.search_batch(jobs) if jobs else ())
                    for t in chunk:
                        if t.strip():
                            a = next(answers)
                            if served and a.source == "no_search_index":
                                # an experiment variant's bundle without an index: /v1/search
                                # answers 404 and logs nothing; so does this call (none of its pages)
                                via = (
                                    f" (experiment {a.experiment!r}, variant {a.variant.name!r}, "
                                    "serves it to this shopper)"
                                    if a.experiment and a.variant
                                    else ""
                                )
                                raise NoSearchIndex(
                                    f"bundle {a.bundle} has no search index (the catalog had no text "
                                    f"when it was trained){via}: no page to serve for {t!r}",
                                    bundle=a.bundle,
                                )
                            pages.append(page(a.items, a))
                            if served:  # (as /v1/search mints and logs it)
                                pages[-1]["search_id"] = sid = service.new_id("srch")
                                exposures.append(_search_exposure(service, sid, a, make_args(t, k)))
                        else:
                            pages.append(page([]))
                            if served:
                                pages[-1]["search_id"] = None  # (not served: /v1/search refuses it)
                self._log_served(exposures)
                # (as /v1/search says it in `warnings`: once a call, the options are every query's)
                said = next((w for p in pages for w in p["warnings"]), None)
                if said:
                    _warn_caller(said, AttributeFiltersWarning)
                return pages

            if candidates is None:
                return serve(texts)
            # (an option given as None, or an empty filter, is not given: the CLI passes
            # `attributes=None`, a form with no attribute ticked `attributes={}`)
            chosen = sorted(name for name, value in options.items() if not _not_given(value))
            if chosen:
                raise ShelfwiseError(
                    f"{', '.join(chosen)}: filters, sort, paging and personalization apply to "
                    "a search, not to re-ranking given candidate lists"
                )
            # re-ranking given lists has no HTTP twin: the ranker alone; a query given no list
            # is searched as without `candidates` (the serving path: rules, fallback, match)
            given = list(candidates)  # (a generator reading the CLI's file: read once)
            if any(isinstance(c, str) for c in given):
                raise ShelfwiseError(
                    "candidates: one list of product ids (or None) per query, not product ids: "
                    "a string is not a list"
                )
            cands = [list(c) if c is not None else None for c in given]
            if len(cands) != len(texts):
                raise ShelfwiseError(f"{len(cands)} candidate lists for {len(texts)} queries")
            listed = [i for i, c in enumerate(cands) if c is not None]
            pages: dict[int, dict[str, Any]] = {}
            if listed:
                engine = self._engine(bundle / "search")
                for lo in range(0, len(listed), 512):
                    part = listed[lo : lo + 512]
                    hits = engine.search_many([texts[i] for i in part], k, [cands[i] for i in part])
                    pages.update({i: page([p for p, _ in h]) for i, h in zip(part, hits, strict=True)})
            unlisted = [i for i, c in enumerate(cands) if c is None]
            if unlisted:
                pages.update(zip(unlisted, serve([texts[i] for i in unlisted]), strict=True))
            return [pages[i] for i in range(len(texts))]

    def _log_served(self, records: list[dict[str, Any]]) -> None:
        """Served lists into the exposure log (`serving._exposures`), batched as the server
        batches them: this Shop's buffer writes them when full or half a second old, before
        anything reads the log (`_written_served`), and when the Shop is closed or collected or
        the process exits."""
        if not records:
            return
        if self._exposures is None:
            import weakref

            from .serving._exposures import ExposureBuffer

            with _EXPOSURES_MADE:  # (two threads serving at once made two, `close` closed one)
                if self._exposures is None:
                    self._exposures = buf = ExposureBuffer(self.workdir)
                    weakref.finalize(self, buf.close)  # (a Shop dropped unclosed: its lists written)
        self._served_log(lambda: self._exposures.add(records))

    def _written_served(self) -> None:
        """Every served list this process holds for the workdir written (any Shop's), before the
        exposure log is read: a report, an absorb's attribution, an erasure, an export, training."""
        if "shelfwise.serving._exposures" not in sys.modules:  # (nothing served in this process)
            return
        from .serving._exposures import flush_exposures

        self._served_log(lambda: flush_exposures(self.workdir))

    @staticmethod
    def _served_log(write: Callable[[], Any]) -> None:
        try:
            write()
        except OSError as exc:  # (a full disk): the ids would attribute to nothing
            raise ShelfwiseError(
                f"the served lists could not be logged ({exc}); their ids would attribute nothing"
            ) from exc

    def suggest(self, prefix: str, k: int = 8) -> list[str]:
        """Query suggestions for what a shopper has typed so far (what /v1/suggest answers: the
        shop's popular queries and catalog terms); none for a blank prefix. What /v1/suggest
        needs (`serve.call`: the service role, a shop front, has it; every role with `search`
        too)."""
        with self._acting("serve.call"):
            if not isinstance(prefix, str):
                raise ShelfwiseError(f"prefix {prefix!r}: give the text typed so far as a string")
            k = whole_number(k, "k", "the number of suggestions", minimum=1, maximum=20)
            engine = self._service(True, search=True).snapshot.search
            # (no search index: none, as /v1/suggest answers)
            return list(engine.suggest(prefix, k)) if engine is not None and prefix.strip() else []

    def _engine(self, path: Path) -> Any:
        from .search import SearchEngine

        if path not in self._engines:
            self._engines = {path: SearchEngine.load(path)}  # keep only the current bundle's
        return self._engines[path]

    # -- business rules and experiments ---------------------------------------------------------
    def rules(self) -> dict[str, Any]:
        """The business rules in force, and the installed rules file (`file`, None without one)."""
        # the governance catalog lists the rules file: reading the rules is reading the catalog
        with self._acting("catalog.read", workdir=False):
            from .serving._rules import RULES_FILE, Rules, rules_installed

            rules = Rules.load(self.workdir)
            path = self.workdir / RULES_FILE
            return {
                **rules.as_dict(),
                **rules_installed(self.workdir, rules.version),  # who and when, from the audit trail
                "file": json.loads(path.read_text()) if path.exists() else None,
            }

    def set_rules(self, rules: Mapping[str, Any] | str | Path) -> dict[str, Any]:
        """Validate and install a rules document (or JSON file) as the next version; a running
        server picks it up. Returns the installed rules (with `version`) and `warnings`: each
        rule that cannot do what it says now (a pin of a product not in the catalog, not
        published or out of stock, one another rule hides, a window that ended, pins at one
        position), also warned (`RulesWarning`) and recorded in the change's audit entry."""
        with self._acting("rules.change", workdir=False) as actor:
            import warnings

            from .governance._audit import actor_name
            from .serving._rules import RulesWarning, save_rules

            doc = _json_doc(rules, "rules")
            said: list[str] = []
            got = save_rules(self.workdir, doc, actor=actor_name(actor), said=said)
            for w in said:
                warnings.warn(RulesWarning(w), stacklevel=2)
            return {**got.as_dict(), "warnings": said}

    def set_synonyms(self, file: str | Path) -> dict[str, Any]:
        """Install a search synonyms file (one group per line, `a, b, c` or `a => b, c`) as the
        next version of config/synonyms.txt; running servers use it on their next search (no
        retraining). The rules' permission and audit action (`rules.change`, `what: synonyms`)."""
        with self._acting("rules.change", workdir=False) as actor:
            from .governance._audit import actor_name
            from .serving._synonyms import save_synonyms

            try:
                text = Path(file).read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as exc:
                raise ShelfwiseError(f"{file}: cannot read a synonyms file: {exc}") from None
            return save_synonyms(self.workdir, text, actor=actor_name(actor))

    @overload
    def set_experiments(
        self,
        experiments: Mapping[str, Any] | str | Path,
        *,
        end_missing: bool = ...,
        detail: Literal[False] = ...,
    ) -> list[str]: ...
    @overload
    def set_experiments(
        self,
        experiments: Mapping[str, Any] | str | Path,
        *,
        end_missing: bool = ...,
        detail: Literal[True],
    ) -> dict[str, Any]: ...
    def set_experiments(
        self, experiments: Mapping[str, Any] | str | Path, *, end_missing: bool = False, detail: bool = False
    ) -> list[str] | dict[str, Any]:
        """Install an experiments configuration (document or JSON file); returns their names.
        The file is the whole configuration: one that leaves out a running experiment would end
        it, refused (naming them and their users) unless `end_missing`. `detail=True`: a dict of
        the names (`experiments`), the running experiments it ended (`ended`: name, surface,
        users, since) and `warnings` (a variant whose rules change nothing; also warned as an
        `ExperimentsWarning`), all recorded in the change's audit entry."""
        with self._acting("experiments.change", workdir=False) as actor:
            import warnings

            from .lifecycle._variant_gates import changes_shop_rules, variants_may_serve
            from .serving._experiments import ExperimentsWarning, parse_experiments, save_experiments

            doc = _json_doc(experiments, "experiments")
            exps = parse_experiments(doc)
            if changes_shop_rules(exps):
                # a variant's rules are the shop's rules for its shoppers: who may not change
                # those may not put them in a variant, nor serve one without the shop's pins,
                # boosts and buries (`shop_rules: false`), either (the refusal is audited)
                self.authorize("rules.change")
            variants_may_serve(self.workdir, exps)
            said: list[str] = []
            ended: list[dict[str, Any]] = []
            # (the running experiments it would end are told by their served lists: this
            # process's own too, held for the next write)
            self._written_served()
            names = [
                e.name
                for e in save_experiments(
                    self.workdir, doc, actor=actor, end_missing=end_missing, said=said, ended=ended
                )
            ]
            for w in said:
                warnings.warn(ExperimentsWarning(w), stacklevel=2)
            if detail:
                return {"experiments": names, "ended": ended, "warnings": said}
            return names

    def experiment_report(self, experiment: str | None = None) -> dict[str, Any]:
        """Per experiment and variant: users, exposures, CTR, add-to-cart rate, conversion,
        revenue per user (95% intervals; conversion and revenue net of the returns attributed to
        the arm, `gross_revenue_per_user` and `returns_per_user` beside them); `comparisons`: each other variant against the `control`,
        per metric the difference, relative lift, 95% interval of the difference and a verdict
        (none below `min_users_per_arm` users an arm). Absorbs the newest attributed events first."""
        with self._acting("evaluate") as actor:
            from .serving._experiments import experiment_report
            from .serving._feedback import pending_events

            self._absorb_if_allowed(actor)
            rep = experiment_report(self.workdir, experiment)
            # what was acknowledged and is not counted yet (a reader who may not absorb, or a
            # running server's open segment): said, not read as zero outcomes
            rep["pending_events"] = pending_events(self.workdir)
            return rep

    # -- the model registry ---------------------------------------------------------------------
    def _registry(self) -> Any:
        from .lifecycle._registry import Registry

        return Registry(self.workdir)

    @staticmethod
    def _version_or_candidate(reg: Any, version: str | int | None) -> str:
        v = version if version is not None else reg.candidate()
        if v is None:
            raise ShelfwiseError(
                "no candidate version; name one (`version=` in Python, `--version` on the command line; see "
                "`Shop.versions()` or `shelfwise models list`)"
            )
        return str(v)

    def versions(self) -> list[dict[str, Any]]:
        """Every registered bundle version: aliases, status, headline metric, gates, approvals."""
        with self._acting("models.read"):
            from .governance._model_versions import registered_versions

            # what the registry's last read or write left (`state/registry_versions.json`) while
            # its files are unchanged since: the same rows, without importing MLflow (~1.3 s CPU)
            return registered_versions(self.workdir, use_snapshot=True)

    def gates(self, version: str | int | None = None) -> dict[str, Any]:
        """The promotion gates of a version (default: the candidate, else production's as it
        went live): `{"version", "metric", "gates"}`, each gate `{"name", "passed", "detail"}`;
        `metric`: the test metric the quality gates read, the one that chose the bundle's default
        model (`group_ndcg@10` where its catalog has product groups, else `ndcg@10`)."""
        with self._acting("models.read"):
            reg = self._registry()
            # (with no candidate, production's gates: "no candidate version" answered a shop whose
            # one bundle was live)
            if version is None and reg.candidate() is None and reg.production() is not None:
                version = reg.production()
            v = self._version_or_candidate(reg, version)
            from .governance._model_versions import chosen_metric

            gates = [asdict(g) for g in reg.gates(v)]
            return {"version": v, "metric": chosen_metric(reg.manifest(v)), "gates": gates}

    def approve(self, version: str | int | None = None) -> dict[str, str]:
        """Sign off a version (default: the candidate) for production; someone other than the
        person who trained it. Returns `{"version", "approved_by"}`."""
        with self._acting("models.approve") as actor:
            reg = self._registry()
            v = self._version_or_candidate(reg, version)
            reg.approve(v, actor or "single-user")
            return {"version": v, "approved_by": actor or "single-user"}

    def promote(self, version: str | int | None = None) -> dict[str, Any]:
        """Put a version (default: the candidate) live: its gates must pass and it must be
        approved (in single-user mode nobody else could approve: the gates alone); servers
        follow. A server's absorb holding the warehouse (the data gate reads it) is waited for,
        up to `PROMOTE_WAIT_S`. Returns `{"version", "production": True, "gates"}`."""
        from .storage import waiting_for_the_warehouse

        with self._acting("models.promote") as actor, waiting_for_the_warehouse(PROMOTE_WAIT_S):
            reg = self._registry()
            v = self._version_or_candidate(reg, version)
            gates = reg.promote(v, actor)  # (single-user mode, `actor` None: the gates alone)
            self._services.clear()
            return {"version": v, "production": True, "gates": [asdict(g) for g in gates]}

    def rollback(self) -> str:
        """Production goes back to the version it replaced; returns that version."""
        with self._acting("models.rollback") as actor:
            v: str = self._registry().rollback(actor)
            self._services.clear()
            return v

    # -- governance -----------------------------------------------------------------------------
    def catalog(self) -> dict[str, Any]:
        """Datasets, contracts, models and rules with owner, steward, classification, rows,
        freshness, latest quality result and lineage."""
        with self._acting("catalog.read"):
            from .governance._catalog import catalog

            return {k: v for k, v in catalog(self.workdir).items() if k != "loads"}

    def governance_report(self) -> dict[str, Any]:
        """Write reports/governance.html and .json (quality trend, quarantine by reason, failing
        owners, models and gates); returns the JSON report (less the catalog) with `html` and
        `json`: the files' paths."""
        with self._acting("catalog.read"):
            from .governance._catalog import write_governance_report

            page, js = write_governance_report(self.workdir)
            doc = {k: v for k, v in json.loads(js.read_text()).items() if k != "catalog"}
            return {**doc, "html": str(page), "json": str(js)}

    def search_report(self) -> dict[str, Any]:
        """Search analytics (top queries, zero-result queries; click-through, add-to-cart rate,
        conversion and engaged share per query), written to reports/search-analytics.html and
        .json; returns the JSON with `html` and `json` paths."""
        with self._acting("catalog.read") as actor:
            from .search._analytics import write_search_report

            self._absorb_if_allowed(actor)  # count the newest attributed events
            page, js = write_search_report(self.workdir)
            return {**json.loads(js.read_text()), "html": str(page), "json": str(js)}

    def lineage(self) -> list[dict[str, Any]]:
        """The workdir's OpenLineage run events."""
        with self._acting("lineage.read"):
            from .governance import read_lineage

            return read_lineage(self.workdir)

    def recover_audit(self) -> dict[str, Any]:
        """Write the audit entry of each ingest run the warehouse records as committed that the
        trail lacks (a process killed right after its commit, an audit folder it could not
        write), marked `recovered`, as the next `ingest` does; reading the trail (`audit`,
        `verify_audit`) does it first. Returns `recovered` (run ids) and `pending`: None, or why
        such runs could not be looked for or written now (the warehouse held by a writer, the
        audit folder not writable, a log that fails its check: never written to)."""
        with self._acting("audit.read"):
            return self._recover_audit()

    def _recover_audit(self) -> dict[str, Any]:
        import duckdb

        from .governance import AuditLog
        from .governance._ingest import recover_unaudited
        from .storage import read_only

        done: dict[str, Any] = {"recovered": [], "pending": None}
        log = AuditLog(self.workdir)
        if not (self.workdir / "warehouse.duckdb").exists() or not log.path.exists():
            return done

        class _Sql:  # (`recover_unaudited` reads through a warehouse's `sql`)
            def __init__(self, con: Any) -> None:
                self.con = con

            def sql(self, query: str, params: list[Any] | None = None) -> Any:
                return self.con.execute(query, params or [])

        try:
            with read_only(self.workdir) as (con, _):
                has = con.execute(
                    "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'meta' "
                    "AND table_name = 'runs'"
                ).fetchone()
                if not has or not has[0]:
                    return done
                if not log.verify().ok:  # (a log that fails its check is evidence: not written to)
                    done["pending"] = "the audit log fails its check: no missing entry written to it"
                    return done
                done["recovered"] = recover_unaudited(self.workdir, cast(Any, _Sql(con)))
        except (duckdb.Error, OSError) as exc:
            done["pending"] = (
                "committed ingest runs without an audit entry could not be looked for or written now "
                f"({str(exc).splitlines()[0][:200]}); the next `shelfwise audit` or `shelfwise ingest` does it"
            )
        return done

    def audit(self, limit: int | None = None) -> list[dict[str, Any]]:
        """The audit trail's entries, oldest first (`limit`: only the newest that many); an
        ingest run committed without its entry gets it first (`recover_audit`)."""
        with self._acting("audit.read"):
            from .governance import AuditLog

            self._recover_audit()
            if limit is not None:
                limit = whole_number(limit, "limit", "the number of newest entries (None: all)", minimum=1)
            entries = AuditLog(self.workdir).entries()
            return entries[-limit:] if limit else entries

    def verify_audit(self, anchor: tuple[int, str] | None = None) -> Verification:
        """Check the audit trail's hash chain (`ok`, `entries`, `first_bad_line`, `reason`, as
        attributes; `.to_dict()`: the same as a plain JSON document);
        `anchor` (seq, hash): an entry's hash recorded outside the workdir before (`audit_head`),
        which the log must still hold."""
        with self._acting("audit.read"):
            from .governance import AuditLog

            self._recover_audit()  # (a committed run's missing entry is no gap: written first)
            return AuditLog(self.workdir).verify(anchor)

    def audit_head(self) -> dict[str, Any] | None:
        """The audit log's last entry's `seq` and `hash`: recorded outside the workdir (a ticket,
        another machine), `verify_audit(anchor=(seq, hash))` later tells a log rewritten whole."""
        with self._acting("audit.read"):
            from .governance import AuditLog

            return AuditLog(self.workdir).head_entry()

    def quarantine(
        self,
        table: str | None = None,
        reason: str | None = None,
        *,
        status: str = "open",
        limit: int | None = 20,
    ) -> dict[str, Any]:
        """Quarantined rows: `summary` (rows per table, reason and status) and the first `rows`
        with their file, line and detail. `status`: open, released, superseded, redelivered, withheld (re-processed
        into a row of an erased user) or all. `limit=0`: the summary alone, which every person
        may read, not a service (`quarantine.summary`: counts, no row's fields; the people's
        roles, the `service` role is refused); rows need `quarantine.read_raw`."""
        if limit is not None:  # None: every row; 0: the summary alone
            limit = whole_number(limit, "limit", "the number of rows to show (None: all)", minimum=0)
        if limit != 0:
            from .errors import AccessDenied

            try:
                self.authorize("quarantine.read_raw")
            except AccessDenied as exc:  # (the counts are everyone's: say how to read them)
                raise AccessDenied(
                    f"{exc}; the counts per table, reason and status are every person's: "
                    "`shelfwise quarantine list --limit 0` (`Shop.quarantine(limit=0)`)"
                ) from None
        with self._acting("quarantine.summary" if limit == 0 else "quarantine.read_raw"):
            from .governance import Quarantine
            from .governance._quarantine import refuse_unknown_filters

            qr = Quarantine(self.workdir)
            summary = qr.summary()
            # a mistyped filter lists nothing, as if nothing were quarantined: refused, as the CLI does
            refuse_unknown_filters(table, reason, status, summary)
            rows = qr.list(table, reason, None if status == "all" else status, limit=limit)
            return {"summary": summary, "rows": rows}

    def export_quarantine(self, out: str | Path, table: str | None = None, reason: str | None = None) -> int:
        """Write the open quarantined rows (raw fields + `_quarantine_id`) as JSON lines to fix;
        returns the number of rows."""
        with self._acting("quarantine.read_raw") as actor:
            from .governance import AuditLog, Quarantine
            from .governance._audit import file_named
            from .governance._quarantine import refuse_unknown_filters

            self._outside(out)
            refuse_unknown_filters(table, reason, None, Quarantine(self.workdir).summary())
            n = Quarantine(self.workdir).export(out, table, reason)
            # raw rows left the warehouse: who took which, where (as a subject access export)
            AuditLog(self.workdir).append(
                "quarantine.export",
                actor=actor,
                table=table,
                reason=reason,
                rows=n,
                file=file_named(out),
            )
            return n

    def reprocess(self, table: str, fixed: str | Path | None = None) -> dict[str, Any]:
        """Re-run a table's quarantined rows (or the `fixed` JSON-lines file from
        `export_quarantine`) through the governed path; rows that now pass are released."""
        with self._acting("quarantine.reprocess"):
            from .governance import Quarantine

            return Quarantine(self.workdir).reprocess(table, fixed)

    def enforce_retention(self) -> dict[str, Any]:
        """Delete what is older than the retention periods (config/retention.json)."""
        with self._acting("retention.enforce", workdir=False) as actor:
            from .governance._retention import enforce_retention

            self._written_served()  # (its served log's old lines, this process's too)
            return enforce_retention(self.workdir, actor=actor)

    def erase(self, user_id: str, *, redis_url: str | None = None) -> dict[str, Any]:
        """The right to erasure: remove a user (the shop's id) from raw, curated, quarantine,
        spool and every bundle, without retraining (and from a Redis's online state)."""
        with self._acting("privacy.erase", workdir=False) as actor:
            from .governance._erase import erase_user

            _a_string(user_id, "user id")  # (erase(None) erased a user "None", audited "ok")
            self._not_blank(user_id)

            # the user's served lists this process holds: written first, and erased with the rest
            # (written after, they would have named the erased user again)
            self._written_served()
            client = _redis(redis_url)
            report = erase_user(self.workdir, user_id, actor=actor, redis_client=client)
            self._services.clear()
            return report

    def set_consent(
        self,
        user_id: str,
        *,
        personalization: bool | None = None,
        marketing: bool | None = None,
        source: str = "python",
        redis_url: str | None = None,
    ) -> dict[str, Any]:
        """Record a user's consent (flags left None stay as they are) in the consent register,
        audited; running servers follow on the next request (and at once through `redis_url`).
        Returns `{"user_id", "consent": current flags, "recorded", "known"}` (known: whether the
        shop has seen the id; when not, `did_you_mean`: the seen ids differing in case only)."""
        # a shop's workdir, not a new one a typo would make (with a key of its own)
        with self._acting("privacy.consent") as actor:
            from .governance._consent import record_consent

            user_id = _user_id(user_id)
            values = {"personalization": personalization, "marketing": marketing}
            for flag, value in values.items():
                if value is not None and not isinstance(value, bool):  # "false" is truthy
                    raise ShelfwiseError(f"{flag}={value!r}: give True or False (None leaves it as it is)")
            pseudo = self._pseudonym(user_id)
            from .governance import Pseudonymizer
            from .governance._consent import id_lookup

            # (looked up before recording: the record itself would make the id known)
            lookup = id_lookup(self.workdir, user_id, Pseudonymizer.of(self.workdir))
            rec = record_consent(self.workdir, pseudo, values, source=source, actor=actor)
            client = _redis(redis_url)
            if client is not None:
                from .serving._consent import ConsentView

                ConsentView(self.workdir, client)  # catches Redis up with the register
            self._services.clear()
            out = {"user_id": user_id, "consent": rec["consent"], "recorded": rec["recorded"], **lookup}
            if rec["reports_removed"]:  # (the reports naming a user who withdrew personalization)
                out["reports_removed"] = rec["reports_removed"]
            return out

    def consent(self, user_id: str) -> dict[str, Any]:
        """A user's current consent flags and their history (oldest first); audited. A user
        erased (`erase`) with no consent recorded since is said so: `erased_at` and a `note`
        that the flags are the shop's defaults (what a shopper new under this id would start
        from), not a consent the person gave; nothing is held under the id."""
        with self._acting("privacy.consent") as actor:
            from .governance import AuditLog
            from .governance._consent import Consents, consent_history

            user_id = _user_id(user_id)
            pseudo = self._pseudonym(user_id)
            # a person's consent history read: audited as its changes are
            AuditLog(self.workdir).append("privacy.consent.read", actor=actor, pseudonym=pseudo)
            out: dict[str, Any] = {
                "user_id": user_id,
                "consent": Consents.of(self.workdir).current(pseudo),
                "history": [
                    {k: v for k, v in r.items() if k != "pseudonym"}
                    for r in consent_history(self.workdir, pseudo)
                ],
            }
            from .governance._erasures import erased_users

            erased = erased_users(self.workdir).get(pseudo)  # (naive UTC)
            if erased is not None:
                from datetime import UTC, datetime

                def after(r: dict[str, Any]) -> bool:  # a consent recorded since: a person again
                    try:
                        at = datetime.fromisoformat(str(r.get("at")))
                    except ValueError:
                        return False
                    return (at.astimezone(UTC).replace(tzinfo=None) if at.tzinfo else at) > erased

                if not any("erased" not in r and after(r) for r in out["history"]):
                    out["erased_at"] = erased.isoformat()
                    out["note"] = (
                        f"erased at {erased.isoformat()}: nothing is held under this id; the flags are "
                        "the shop's defaults (what a shopper new under this id would start from), "
                        "not a consent this person gave"
                    )
            return out

    def access_export(self, user_id: str, out: str | Path, *, redis_url: str | None = None) -> dict[str, Any]:
        """The right of access: everything held about a user (rows of every layer, spool,
        served lists, bundle histories, profile, consent, erasure; with `redis_url`, the served
        events and online state a shared Redis holds) with each part's lineage, as JSON in `out`
        (owner-only); audited. Returns `{"pseudonym", "out", "parts": rows per part}`."""
        with self._acting("privacy.export") as actor:
            from .governance._subject_access import write_subject_access
            from .insights._run import profile_part

            _a_string(user_id, "user id")
            self._not_blank(user_id)
            self._outside(out)
            self._written_served()  # (the lists served to them, this process's too)
            return write_subject_access(
                self.workdir,
                user_id,
                out,
                actor=actor,
                extra={"profile": profile_part(self.workdir, user_id)},
                redis_client=_redis(redis_url),
            )

    # -- insights (issue 18) --------------------------------------------------------------------
    def profile(self, user_id: str) -> dict[str, Any]:
        """One customer's profile as /v1/users/{id}/profile answers it (RFM, expected purchases and
        churn risk in the next 90 days, expected value, segment, tastes, price level), fitted once
        per data version and kept in the workdir (the first call after new data fits them all,
        and waits for it). A ShelfwiseError for a user without one, saying why (unknown,
        erased, no consent)."""
        with self._acting("insights.profile"):
            from .insights._profiles import ProfileStore

            who = _user_id(user_id)
            if self._profiles is None:  # (kept: it reloads when the warehouse changes)
                self._profiles = ProfileStore(self.workdir)
            store = self._profiles
            pseudo = self._pseudonym(who)
            ready, rec = store.get(pseudo, wait_s=3600.0)
            if not ready:
                raise ShelfwiseError(
                    f"customer profiles could not be fitted: {store.error}"
                    if store.error
                    else "customer profiles are still being fitted after an hour; try again later"
                )
            if rec is None:
                raise ShelfwiseError(store.none_said(pseudo, who))
            return {"user_id": who, "data_version": store.key or "", **rec}

    def customers(
        self, out: str | Path, *, as_of: str | None = None, horizon_days: int = 90
    ) -> dict[str, Any]:
        """One profile per user (RFM, expected purchases and churn risk in the horizon, expected
        value, segment, top categories/brands, price level, marketing_consent), from events up to
        `as_of`, written to `out` (.jsonl or .csv); returns the run's summary. Users are named by
        the shop's own ids for roles that may see them (`audiences.shop_ids`, as `audiences
        export`), by the warehouse's pseudonyms otherwise (`ids`, `pseudonymized`)."""
        with self._acting("insights.customers", workdir=False) as actor:
            self._outside(out)
            from .insights._audiences import may_see_shop_ids
            from .insights._run import run_customers

            return run_customers(
                self.workdir, out, as_of=as_of, horizon_days=horizon_days, actor=actor,
                shop_ids=may_see_shop_ids(self.workdir, actor),
            )  # fmt: skip

    def demand(
        self,
        out: str | Path,
        *,
        as_of: str | None = None,
        horizon_weeks: int = 13,
        level: str = "product",
    ) -> dict[str, Any]:
        """Weekly demand forecasts (units with an 80% interval) per product or category for
        `horizon_weeks` after the last complete week up to `as_of`, written to `out`."""
        with self._acting("insights.demand", workdir=False) as actor:
            self._outside(out)
            from .insights._demand_run import run_demand

            return run_demand(
                self.workdir, out, as_of=as_of, horizon_weeks=horizon_weeks, level=level, actor=actor
            )

    def replenishment(
        self,
        out: str | Path,
        *,
        as_of: str | None = None,
        service_level: float = 0.95,
        review_days: float = 7.0,
    ) -> dict[str, Any]:
        """Reorder suggestions per product (stock, lead time, demand over lead time + review
        period, safety stock, reorder point, order quantity, reason), written to `out`."""
        with self._acting("insights.replenishment", workdir=False) as actor:
            self._outside(out)
            from .insights._demand_run import run_replenishment

            return run_replenishment(
                self.workdir, out, as_of=as_of, service_level=service_level, review_days=review_days,
                actor=actor,
            )  # fmt: skip

    def demand_report(
        self,
        *,
        as_of: str | None = None,
        horizon_weeks: int = 13,
        service_level: float = 0.95,
        review_days: float = 7.0,
        level: str = "product",
    ) -> dict[str, Any]:
        """Write reports/demand.html (charts) and .json: weekly demand and forecasts with their
        80% intervals, stock-out weeks, reorder suggestions; audited (`report.demand`) with a
        lineage run from the curated versions read. `level="category"`: the series are the
        categories (no reorder suggestions: they are per product), written as
        reports/demand-category.html and .json. Returns the JSON with `html`, `json` and
        `lineage_run_id`."""
        with self._acting("insights.replenishment", workdir=False) as actor:
            from .insights._reports import run_demand_report

            return run_demand_report(
                self.workdir, as_of=as_of, horizon_weeks=horizon_weeks, service_level=service_level,
                review_days=review_days, level=level, actor=actor,
            )  # fmt: skip

    def customers_report(self, *, as_of: str | None = None, horizon_days: int = 90) -> dict[str, Any]:
        """Write reports/customers.html (charts) and .json: profiles summarized per segment, the
        churn risk distribution, the customers most at risk (pseudonyms only; users without the
        personalization consent left out), the audiences, and the churn model's held-out
        evaluation beside BG/NBD; audited (`report.customers`) with a lineage run from the
        curated versions read. Returns the JSON with `html`, `json` and `lineage_run_id`."""
        with self._acting("insights.customers", workdir=False) as actor:
            from .insights._customers_report import run_customers_report

            return run_customers_report(self.workdir, as_of=as_of, horizon_days=horizon_days, actor=actor)

    def audiences_report(self) -> dict[str, Any]:
        """Write reports/audiences.html (charts) and .json: the stored audiences' sizes, lift and
        lineage; audited (`report.audiences`) with a lineage run from the audiences' member files.
        Returns the JSON with `html`, `json` and `lineage_run_id`."""
        with self._acting("audiences.read", workdir=False) as actor:
            from .insights._reports import run_audiences_report

            return run_audiences_report(self.workdir, actor=actor)

    def ask(self, questions: str | Path, out: str | Path) -> dict[str, Any]:
        """Answer shoppers' questions (a `question_id,question` CSV or JSON lines) from the shop's
        FAQ, abstaining when no entry answers; writes JSON lines to `out`."""
        with self._acting("ask", workdir=False) as actor:
            from .insights._run import run_ask

            self._outside(out)
            return run_ask(self.workdir, questions, out, actor=actor)

    def answer(self, question: str, *, top: int = 3) -> dict[str, Any]:
        """One shopper's question answered as `ask` answers it (`faq_id` null: no entry answers),
        with the `top` closest FAQ entries and their scores, the abstention threshold and the
        products attached; audited (`ask`, the entry and score, not the question's text)."""
        with self._acting("ask") as actor:
            from .insights._ask import answer_question

            if not isinstance(question, str):
                raise ShelfwiseError(f"question {question!r}: a shopper's question, as a string")
            top = whole_number(top, "top", "the closest FAQ entries to show", minimum=1)
            return answer_question(self.workdir, question, top=top, actor=actor)

    def ask_report(self, questions: str | Path | None = None) -> dict[str, Any]:
        """Write reports/ask.html and .json: the FAQ, and with `questions` (a labeled CSV,
        `question_id,question,faq_id`, an empty faq_id where no entry answers) the matcher's
        accuracy beside bm25s's, with the protocol; audited (`report.ask`) with lineage."""
        with self._acting("ask") as actor:
            from .insights._ask import run_ask_report

            return run_ask_report(self.workdir, questions, actor=actor)

    def build_audience(self, spec: Any = None, *, replace: bool = False, **fields: Any) -> dict[str, Any]:
        """Build and store a marketing audience: an `insights.AudienceSpec`, a TOML/JSON spec
        file, or its fields (`name=`, and one of `rule=`, `products=`, `category=`; `days`,
        `size`, `model`, `min_size`, `lift`); refused below its minimum size. Returns its summary
        (size, lift estimate, lineage)."""
        with self._acting("audiences.build") as actor:
            from .insights._audiences import AudienceSpec, build_audience

            if spec is None:
                spec = AudienceSpec(**fields)
            elif not isinstance(spec, AudienceSpec):
                spec = AudienceSpec.from_file(spec, **fields)
            return build_audience(self.workdir, spec, actor=actor, replace=replace)

    def audiences(self) -> list[dict[str, Any]]:
        """The stored audiences: kind, definition, size now, lift, bundle and data versions."""
        with self._acting("audiences.read", workdir=False):
            from .insights._audiences import list_audiences

            return list_audiences(self.workdir)

    def export_audience(self, name: str, out: str | Path, *, pseudonyms: bool = False) -> dict[str, Any]:
        """Write an audience (CSV or JSON lines: user_id, score) for a campaign: the shop's own
        ids when the acting role may see them (`audiences.shop_ids`) and `pseudonyms` is not
        asked for, the warehouse's pseudonyms otherwise. Audited."""
        with self._acting("audiences.export") as actor:
            from .insights._audiences import export_audience, may_see_shop_ids

            self._outside(out)
            may_see = may_see_shop_ids(self.workdir, actor)  # single-user mode: the shop's owner
            return export_audience(self.workdir, name, out, shop_ids=may_see and not pseudonyms, actor=actor)

    # -- people ---------------------------------------------------------------------------------
    def add_person(self, name: str, role: str) -> str:
        """Register a person or service with a role; returns their API key (shown once, stored
        hashed). The first person must be an admin; afterwards only admins add people."""
        from .governance import People

        people = People(self.workdir)
        by = None
        if people.governed:
            actor = self.authorize("users.manage")
            by = people.load()[actor] if actor else None
        return people.add(name, role, by)

    def revoke_person(self, name: str) -> None:
        """`name`'s API key stops working (the entry stays, inactive); admins only, audited."""
        people, by = self._managing("revoke")
        people.revoke(name, by)

    def rotate_key(self, name: str, *, reactivate: bool = False) -> str:
        """A new API key for `name` (returned, shown once; the old one stops working); admins
        only, audited. A revoked person is refused unless `reactivate=True`, which makes them
        active again with the new key (the audit entry says `reactivated`)."""
        if not isinstance(reactivate, bool):
            raise ShelfwiseError(f"reactivate={reactivate!r}: give True or False")
        people, by = self._managing("rotate")
        return people.rotate_key(name, by, reactivate=reactivate)

    def _managing(self, what: str) -> tuple[Any, Any]:
        """The register and the admin acting on it (`users.manage`), for a key to `what`."""
        from .governance import People

        actor = self.authorize("users.manage")
        people = People(self.workdir)
        if not people.governed or actor is None:
            raise ShelfwiseError(f"nobody is registered in this workdir: there is no key to {what}")
        return people, people.load()[actor]

    def people(self) -> list[dict[str, Any]]:
        """Who is registered, with which role (never the keys)."""
        with self._acting("users.manage", workdir=False):
            from .governance import People

            return [
                {
                    "name": p.name,
                    "role": p.role.value,
                    "active": p.active,
                    "created_at": p.created_at,
                    "created_by": p.created_by,
                }
                for p in People(self.workdir).load().values()
            ]


# the trainings running in this process (their threads) and, from the first's start, tqdm's
# monitor setting and monitors as they were: restored when the last one ends
_TQDM_QUIET = threading.Lock()
_EXPOSURES_MADE = threading.Lock()  # (a Shop's exposure buffer made once)
_tqdm_held: dict[str, Any] = {"trainings": 0, "interval": None, "monitors": set()}


@contextmanager
def _no_tqdm_monitor() -> Iterator[None]:
    """tqdm's monitor thread (`tqdm_monitor`, started by the first progress bar a library makes
    and alive for the rest of the process) not started while training: `monitor_interval` (a
    setting of the process) 0 from the first training's start to the last one's end, as it was
    after; one started anyway (another thread's bar) is stopped. Counted, so that trainings in
    two threads do not interfere (the first to end turned the monitor back on under the other,
    and the last left it off for good: it restored the 0 it found)."""
    try:
        from tqdm import std
    except ImportError:  # (tqdm is a dependency; a trimmed install trains without it)
        yield
        return
    with _TQDM_QUIET:
        if _tqdm_held["trainings"] == 0:
            _tqdm_held["interval"] = std.tqdm.monitor_interval
            _tqdm_held["monitors"] = _tqdm_monitors(std.tqdm)
            std.tqdm.monitor_interval = 0
        _tqdm_held["trainings"] += 1
    try:
        yield
    finally:
        with _TQDM_QUIET:
            _tqdm_held["trainings"] -= 1
            if _tqdm_held["trainings"] == 0:
                std.tqdm.monitor_interval = _tqdm_held["interval"]
                for cls in _tqdm_classes(std.tqdm):
                    mon = cls.__dict__.get("monitor")
                    if mon is not None and id(mon) not in _tqdm_held["monitors"]:
                        mon.exit()
                        cls.monitor = None


def _tqdm_classes(base: Any) -> list[Any]:
    out, todo = [], [base]
    while todo:
        cls = todo.pop()
        out.append(cls)
        todo.extend(cls.__subclasses__())
    return out


def _tqdm_monitors(base: Any) -> set[int]:
    return {id(m) for c in _tqdm_classes(base) if (m := c.__dict__.get("monitor")) is not None}


# how long `Shop.promote` waits for another process's hold on the warehouse (a server's absorb:
# seconds) before it says "busy"
PROMOTE_WAIT_S = 60.0


def _serving(action: str, served: Any) -> str:
    """The permission of a list: `serve.call` when it is served to shoppers (what its endpoint
    needs, so the service role may serve through Python what it may serve over HTTP), else the
    offline `action` (`recommend`, `search`: people's, not a service's)."""
    return "serve.call" if served is True else action


def _a_flag(value: Any, what: str) -> None:
    if not isinstance(value, bool):
        raise ShelfwiseError(f"{what}={value!r}: give True or False")


def _not_given(value: Any) -> bool:
    """An option that asks nothing of a search: None, or an empty filter (`attributes={}`)."""
    return value is None or (isinstance(value, (dict, list, tuple, set)) and not value)


def _search_exposure(service: Any, sid: str, ans: Any, args: Any) -> dict[str, Any]:
    """A served search page's exposure record, as /v1/search writes it (`_http_lists.search`)."""
    from .governance._compile import trim_id
    from .serving._exposures import exposure_record

    who = trim_id(args.raw_user or "")
    extra = {
        "query": args.q, "offset": args.offset, "sort": args.sort, "filtered": args.filters.active(),
        "words_found": ans.extra.get("words_found"),
        "match": ans.extra.get("match"), "fallback": ans.extra.get("fallback"),
    }  # fmt: skip
    return exposure_record("search", sid, ans, service.pseudonymize(who) if who else None, extra)


def _a_string(value: Any, what: str) -> None:
    """A user id given to a privacy request must be the shop's id as a string: `erase(None)`,
    `erase(123)` and `erase(['C1'])` erased users "None", "123" and "['C1']" (audited "ok"),
    leaving the person asked for untouched."""
    if not isinstance(value, str):
        raise ShelfwiseError(f"{what} {value!r}: give the shop's own user id as a string")


def _not_in_bundle(product_id: Any) -> UnknownName:
    """The refusal of a product the current bundle does not hold (`explain`, `similar`)."""
    return UnknownName(
        f"product {product_id!r} is not in the current bundle (unknown, or new since it was trained)",
        kind="product",
        name=product_id,
    )


def _user_id(value: Any, what: str = "user id") -> str:
    """A shop's user id as given by a caller: a string, trimmed as curation trims ids (so " C1"
    is C1's consent, not another pseudonym's; the server trims alike), not empty, not a
    warehouse pseudonym."""
    from .governance._compile import trim_id
    from .governance._privacy import refuse_pseudonym

    _a_string(value, what)
    if not trim_id(value):
        raise ShelfwiseError(f"{what}: an empty user id")
    refuse_pseudonym(trim_id(value), what)  # (it names nobody: its pseudonym is another id)
    return trim_id(value)


def _plain_event(ev: Any) -> Any:
    """An event as JSON would carry it: numpy numbers as Python's, a NaN (pandas' missing) as
    no value, a date or Timestamp as ISO text. Anything else is left for the intake's verdict."""
    import datetime as dt
    import math

    if not isinstance(ev, Mapping):
        return ev  # (the intake rejects it: "an event must be a JSON object")
    out: dict[Any, Any] = {}
    for k, v in ev.items():
        if hasattr(v, "item") and type(v).__module__ == "numpy":
            v = v.item()  # numpy.int64(5) -> 5
        if (isinstance(v, float) and math.isnan(v)) or _missing(v):
            v = None  # (pandas' NaT and NA too: "NaT" was sent as the event's time)
        elif isinstance(v, dt.datetime | dt.date):
            v = v.isoformat()
        out[k] = v
    return out


def _warn_caller(message: str, category: type[Warning]) -> None:
    """`message` warned as `category`, naming the caller's line outside this file."""
    import warnings

    frame, level = sys._getframe(0), 1
    while frame.f_back is not None and frame.f_code.co_filename == __file__:
        frame, level = frame.f_back, level + 1
    warnings.warn(message, category, stacklevel=level)


def _search_args(options: Mapping[str, Any]) -> Callable[[str, int], Any]:
    """The search options checked as `/v1/search` checks its parameters (a ShelfwiseError naming
    the one that fails): a maker of each query's `SearchArgs`."""
    from .governance._compile import trim_id
    from .search import SORTS, Filters
    from .serving._service import SearchArgs

    unknown = sorted(set(options) - set(SearchOptions.__annotations__))
    if unknown:
        known = ", ".join(SearchOptions.__annotations__)
        raise ShelfwiseError(f"search options {', '.join(unknown)}: not known (known: {known})")
    o = dict(options)
    for name in ("category", "brand"):
        if o.get(name) is not None and not isinstance(o[name], str):
            raise ShelfwiseError(f"{name} {o[name]!r}: give it as text")
    for name in ("price_min", "price_max"):
        v = o.get(name)
        if v is not None and (isinstance(v, bool) or not isinstance(v, int | float) or not 0 <= v <= 1e9):
            raise ShelfwiseError(f"{name} {v!r}: a price, a number in 0..1e9")
    for name in ("in_stock", "personalized"):
        if o.get(name) is not None and not isinstance(o[name], bool):
            raise ShelfwiseError(f"{name} {o[name]!r}: True or False")
    attrs = o.get("attributes") or {}
    if not isinstance(attrs, Mapping) or not all(
        isinstance(key, str)
        and (isinstance(v, str) or (isinstance(v, Sequence) and all(isinstance(x, str) for x in v)))
        for key, v in attrs.items()
    ):
        raise ShelfwiseError(
            f"attributes {attrs!r}: a mapping of attribute key to a value or a list of values, as text "
            '(e.g. {"color": "red", "size": ["M", "L"]})'
        )
    sort = o.get("sort", "relevance")
    if sort not in SORTS:
        raise ShelfwiseError(f"sort {sort!r}: one of {', '.join(SORTS)}")
    offset = whole_number(o.get("offset", 0), "offset", "the results skipped", minimum=0, maximum=1000)
    # an empty id is no shopper (an anonymous page), as `/v1/search` reads `user_id=`
    given = o.get("user_id")
    user = (
        _user_id(given) if given is not None and not (isinstance(given, str) and not trim_id(given)) else None
    )
    lo, hi = o.get("price_min"), o.get("price_max")
    if lo is not None and hi is not None and lo > hi:  # (HTTP answers the empty page: no 422)
        _warn_caller(
            f"price_min {lo!r} is above price_max {hi!r}: no product can match (the pages are "
            "empty, as /v1/search answers them); swapped?",
            EmptyRangeWarning,
        )
    filters = Filters(o.get("category"), o.get("brand"), lo, hi, o.get("in_stock"), dict(attrs))
    personalized = o.get("personalized", True) is not False

    def make(q: str, k: int) -> Any:
        return SearchArgs(q, k, filters, sort, offset, user, personalized)

    return make


def _k(k: Any) -> int:
    """A list length as callers give it: a whole number >= 1 (HTTP answers 422 otherwise)."""
    return whole_number(k, "k", "the number of items to return", minimum=1)


def _redis(url: str | None) -> Any:
    if not url:
        return None
    import redis

    return redis.Redis.from_url(url)


def _json_doc(doc: Mapping[str, Any] | str | Path, what: str) -> Any:
    if isinstance(doc, Mapping):
        return dict(doc)
    file = Path(doc)
    try:
        return json.loads(file.read_text())
    except (OSError, ValueError) as exc:
        raise ShelfwiseError(f"{file}: cannot read a JSON {what} file: {exc}") from None


def _keep_console_figures(workdir: Path) -> None:
    """The console's warehouse figures for the next server's first pages (`web._data.keep_figures`:
    after a training run, which a server needs before it starts)."""
    from .web._data import keep_figures

    keep_figures(workdir)


def _train_options(options: dict[str, Any]) -> dict[str, Any]:
    """`Shop.train`'s keyword options checked against `TrainSettings`' fields: an unknown name
    (a close one suggested) or a value of the wrong type is a ShelfwiseError naming it, before
    anything runs (a string budget failed minutes into training with a TypeError)."""
    import dataclasses
    import numbers
    import typing

    from numpy import bool_ as np_bool

    from .lifecycle import TrainSettings

    fields = {f.name for f in dataclasses.fields(TrainSettings)}
    hints = typing.get_type_hints(TrainSettings)
    out = dict(options)
    for name, value in options.items():
        if name not in fields:
            flag = _TRAIN_FLAGS.get(name)
            raise ShelfwiseError(
                f"train has no option {name!r}"
                + (
                    f" (the CLI's --{name.replace('_', '-')} is {flag})"
                    if flag
                    else did_you_mean(name, sorted(fields))
                )
                + f"; its options are TrainSettings' fields: {', '.join(sorted(fields))}"
            )
        hint = hints[name]
        allowed = tuple(a for a in (typing.get_args(hint) or (hint,)) if isinstance(a, type)) or (object,)
        origin = typing.get_origin(hint)
        if origin in (tuple, dict):
            allowed = (tuple, list) if origin is tuple else (dict,)
        said = " or ".join(a.__name__ for a in allowed if a is not type(None))
        # numpy and pandas numbers are numbers (a seed from a DataFrame is an int64)
        if bool in allowed:
            allowed = (*allowed, np_bool)
        if float in allowed:
            allowed = (*allowed, numbers.Real)
        elif int in allowed:
            allowed = (*allowed, numbers.Integral)
        ok = isinstance(value, allowed) and not (isinstance(value, bool | np_bool) and bool not in allowed)
        if value is None and type(None) in typing.get_args(hint):
            ok = True
        if not ok:
            raise ShelfwiseError(
                f"train option {name}={value!r}: expected {said}, not {type(value).__name__}"
            )
        if origin is tuple:
            out[name] = tuple(value)
        elif int in allowed and bool not in allowed and isinstance(value, numbers.Integral):
            out[name] = int(value)
        elif float in allowed and isinstance(value, numbers.Real):
            out[name] = float(value)
        elif bool in allowed and isinstance(value, np_bool):
            out[name] = bool(value)
    return out


def _missing(v: Any) -> bool:
    """pandas' missing markers (NaT, NA), without importing pandas."""
    return type(v).__name__ in ("NaTType", "NAType") and type(v).__module__.startswith("pandas")


def _users_now(con: Any, workdir: Path) -> str:
    """The users table as exported: its consent columns say the consent in force now."""
    from .governance._consent import users_now

    return users_now(con, workdir)


def _is_frame(obj: Any) -> bool:
    """Whether `obj` is a DataFrame (pandas, Polars, Spark...), without importing any."""
    return type(obj).__name__ == "DataFrame" and hasattr(obj, "columns")


def _frame_rows(frame: Any) -> list[dict[str, Any]]:
    """A DataFrame's rows as dicts: pandas' `to_dict("records")`, Polars' `to_dicts()`; any other
    kind is refused, naming what to give."""
    module = type(frame).__module__
    if module.startswith("pandas"):
        return list(frame.to_dict("records"))
    if module.startswith("polars"):
        return list(frame.to_dicts())
    raise ShelfwiseError(
        f"events: a {module.split('.')[0]} DataFrame; give a list of dicts (or a pandas or Polars DataFrame)"
    )


def _a_path(value: Any, what: str) -> None:
    """`value` must name a file or directory (a DataFrame has none: said, not a pathlib error)."""
    if not isinstance(value, str | os.PathLike):
        hint = (
            " (write it first: `df.to_csv(DIR / 'events.csv', index=False)`, then give DIR)"
            if _is_frame(value)
            else ""
        )
        raise ShelfwiseError(f"{what}: a directory or file path, not a {type(value).__name__}{hint}")


def _served_as_shown(served: bool, rules: bool, model: str | None = None) -> None:
    """`served=True` logs a list as the endpoint would have shown it: with the business rules
    and the experiment's variant (a list ranked without them, or by a model named outside the
    experiment, counted as served would put lists no shopper was shown in the A/B readout)."""
    if served and not rules:
        raise ShelfwiseError("served=True logs the list shoppers are shown: not with rules=False")
    if served and model is not None:
        raise ShelfwiseError(
            "served=True logs the list shoppers are shown: not with model= (outside any experiment)"
        )


# the CLI's `train` flags whose TrainSettings field is named otherwise (a notebook user writing
# `tune_seconds=` was offered `max_tune_users`)
_TRAIN_FLAGS = {
    "tune_seconds": "tune_budget_s",
    "sasrec_seconds": "sasrec_budget_s",
    "no_fusion": "fusion=False",
    "finetune_steps": "search_finetune_steps",
    "finetune_seconds": "search_finetune_budget_s",
    "cross_encoder_steps": "search_cross_steps",
    "cross_encoder_seconds": "search_cross_budget_s",
    "refit_seconds": "refit_budget_s",
}

# the least each TrainSettings number may be (the CLI's flags refuse the same): a negative budget
# ran as none, bootstrap_rounds=0 failed after every fit with numpy's IndexError
_AT_LEAST = {
    "tune_trials": 0,
    "sasrec_epochs": 1,
    "sasrec_refresh_epochs": 0,
    "fusion_min_users": 1,
    "max_tune_users": 1,
    "bootstrap_rounds": 1,
    "toplist_width": 1,
    "toplist_max_users": 0,
    "search_candidates": 1,
    "search_finetune_steps": 0,
    "search_cross_steps": 0,
}


def _in_range(settings: Any) -> None:
    """Every budget, count and cap of `settings` at least what it may be (seconds >= 0)."""
    import dataclasses
    import math

    for f in dataclasses.fields(settings):
        value = getattr(settings, f.name)
        least = 0 if f.name.endswith("_budget_s") else _AT_LEAST.get(f.name)
        if least is None or value is None or isinstance(value, bool):
            continue
        if not isinstance(value, int | float) or math.isnan(value) or value < least:
            what = "seconds, 0 or more" if f.name.endswith("_budget_s") else f"at least {least}"
            raise ShelfwiseError(f"train option {f.name}={value!r}: {what}")
    language = getattr(settings, "search_language", None)
    if language is not None:  # (before the run: an unknown language failed at the search index)
        from .search._analyze import language_name

        try:
            language_name(language)
        except ValueError as exc:
            raise ShelfwiseError(f"train option search_language={language!r}: {exc}") from None
