"""The serving core, apart from HTTP: answers recommendation, similar-item and search requests
from one loaded bundle, with the online state, the business rules and the experiments.

`Snapshot` is everything loaded from one bundle (immutable once built); `Service` holds the
current snapshot and swaps in a new one when `bundles/CURRENT` changes (hot swap: requests in
flight finish on the snapshot they started with, new requests see the new one; nothing is
dropped). The HTTP layer (`_app`) only parses, validates and serializes.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import logging
import os
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ShelfwiseError
from ..features import Interactions
from ..governance import Pseudonymizer
from ..search import Filters
from ..storage._faq_version import FAQ_VERSION, faq_version
from ..storage._product_ids import PRODUCT_IDS, CuratedProducts
from ._bundle import BUNDLES_DIR, CURRENT, Bundle, current_bundle
from ._consent import ConsentView, LookDue
from ._experiments import Experiment, Variant, load_experiments, shop_rules_for
from ._online import MemoryState, OnlineState
from ._ranking import rank_user, user_history
from ._recommend import Recommendations
from ._rules import CatalogView, ItemInfo, Rules
from ._synonyms import LiveSynonyms

log = logging.getLogger("shelfwise.serve")
_CALIBRATION_TEXTS = itertools.count(1)  # see `Service.calibrate_encoder`
# no business rule at all (not even the default out-of-stock filter): the models' ranking alone
NO_RULES = Rules(filter_out_of_stock=False)


@dataclass(frozen=True)
class ServeSettings:
    """Limits and knobs of `shelfwise serve` (documented in the README)."""

    max_k: int = 100  # k above this is a 422
    max_body_bytes: int = 1 << 20  # POST bodies above this are a 413
    max_events_per_request: int = 1000  # longer event lists are a 413
    max_query_chars: int = 512  # longer queries are a 422
    max_id_chars: int = 256  # longer user / product ids are a 422
    reload_interval_s: float = 2.0  # how often bundles/CURRENT is checked (0 = never)
    absorb_interval_s: float = 30.0  # how often accepted events are ingested (0 = never)
    cache_size: int = 50_000  # computed recommendation lists kept per process (LRU)
    search_cache_size: int = 5_000  # search result pages kept per process (LRU)
    warm_search_queries: int = 1_000  # most frequent logged queries searched after a bundle loads
    redis_url: str | None = None  # shared online state and event stream for several replicas
    fsync: bool = True  # acknowledge events only after fsync (group commit)
    candidates_factor: int = 3  # candidates taken before rules = k * factor + 20
    drain_seconds: float = 20.0  # on a graceful stop, absorb the spooled events for at most this long
    event_id_window_s: float = 7 * 86400.0  # how long accepted event_ids are answered `duplicate`
    # search misses (see `_search_queue`): the time a miss may take from arrival to answer (the
    # queue skips stages to keep it), how many may wait or be in progress, and the predicted wait
    # (at the cheapest level) beyond which a miss is refused with 503 + Retry-After
    search_budget_ms: float = 40.0
    search_queue: int = 256
    search_max_wait_ms: float = 500.0
    # recommendation lists that need the model (see `_recommend_queue`): how many may wait or be
    # in progress, and the predicted time to answer beyond which one is refused (503)
    recommend_queue: int = 256
    recommend_max_wait_ms: float = 200.0
    # similar-item lists not cached (see `_recommend_queue`): a queue of their own, same rules
    similar_queue: int = 256
    similar_max_wait_ms: float = 200.0
    # False: every answer is the non-personalized one (`serve --no-personalization`; the shop-wide
    # `personalized_serving` of config/privacy.json does the same for every server)
    personalization: bool = True


class LRU:
    def __init__(self, size: int):
        self.size = size
        self._d: OrderedDict[Any, Any] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Any) -> Any:
        with self._lock:
            v = self._d.get(key)
            if v is not None:
                self._d.move_to_end(key)
            return v

    def put(self, key: Any, value: Any) -> None:
        with self._lock:
            self._d[key] = value
            if len(self._d) > self.size:
                self._d.popitem(last=False)


# models whose similar-items score is evidence (shared sessions, steps): a zero relates nothing
NEIGHBOUR_MODELS = ("itemknn", "transitions")
# the most candidates a similar-items list looks at for k products of k groups (`similar`)
SIMILAR_MAX_CANDIDATES = 2000


@dataclass
class Answer:
    items: list[str]
    source: str  # model name, "precomputed:<model>", "cold_start"
    model: str
    bundle: str
    variant: Variant | None = None
    experiment: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    user: str | None = None  # the pseudonym the answer was for


def similar_fields(ans: Answer) -> dict[str, Any]:
    """A similar-items answer as /v1/items/{id}/similar and `Shop.similar(detail=True)` give it:
    the model, the items, how many the model relates to the product, what filled the rest."""
    return {
        "model": ans.model,
        "items": ans.items,
        "related": ans.extra.get("related", len(ans.items)),
        "fallback": ans.extra.get("fallback"),
    }


def recommendation_fields(ans: Answer) -> dict[str, Any]:
    """What a recommendation answer says of where its items came from, as
    /v1/recommendations, `Shop.recommend` and `shelfwise recommend` give it: `personalized`
    (some place is the model's for this shopper's own data), `filled` (how many places the
    popular list filled: every place of a cold-start list, and for a known shopper those the
    model had no evidence for or the rules thinned) and `fallback` (`popular` when it filled
    any; similar items and search say their fallback so)."""
    filled = int(ans.extra.get("filled", 0))
    return {
        "personalized": bool(ans.extra.get("personalized")),
        "fallback": "popular" if filled else None,
        "filled": filled,
    }


@dataclass(frozen=True)
class SearchArgs:
    """One search request as the HTTP layer parsed it."""

    q: str
    k: int
    filters: Any = None
    sort: str = "relevance"
    offset: int = 0
    raw_user: str | None = None
    personalized: bool = True  # False: the shopper's history is not used (`?personalized=false`)


# the most candidates a page asks for when the rules thin them (`Service._deepen`): a page past
# `offset` 1000 (the API's limit) of 100 with most candidates hidden
_DEEPEST = 8192


@dataclass
class _SearchRequest:
    args: SearchArgs
    level: str
    snap: Snapshot
    experiment: str | None
    variant: Variant | None
    rules: Rules = NO_RULES  # the variant's (or the shop's) business rules
    key: tuple[Any, ...] = ()
    n_cand: int = 0
    profile: Any = None
    page: dict[str, Any] | None = None  # the cached or computed page
    answer: Answer | None = None  # set when there is nothing to search (no index)
    computed: bool = False  # the page was computed for this request (not from the cache)
    cost_s: float | None = None  # what computing it took (engine time + share of the encoder call)
    # its share of the encoder call (the call's time over the texts it encoded; 0.0 when the
    # call found every vector cached) and how many texts that call encoded (0: none)
    encoder_s: float | None = None
    encoder_batch: int | None = None
    shown: list[str] | None = None  # the page's products after the rules (`Service._deepen`)
    pinned: str | None = None  # a later page's level: its query's first page's (`_search_request`)
    origin: tuple[Any, ...] = ()  # its cache key at `_search_key`'s depth, and its rules (`Service._depths`)


def _filtered(engine: Any, filters: Any) -> Any:
    """A product id -> whether it passes a search's filters (None: no filter): a pinned product
    is on a filtered page only if it passes them, as every other product of the page did."""
    if filters is None or not filters.active():
        return None

    def ok(product_id: str) -> bool:
        d = engine._index.get(product_id)
        return d is not None and bool(engine._filter_mask(filters, np.array([d], np.int64))[0])

    return ok


def search_counts(
    snap: Snapshot, page: dict[str, Any], rules: Rules, query: Any, pin_allowed: Any = None
) -> tuple[int, dict[str, Any]]:
    """A search page's `total` and facets as the shopper sees them after `rules`: what the rules
    hide is not a result, a pinned product is, on a page that matched nothing too (its popular
    fallback is no result; the engine's page counts before the rules, so that one cached page
    serves every rule set)."""
    total, facets = _search_counts(snap, page, rules, query, pin_allowed)
    engine = snap.search
    if (
        engine is not None
        and engine.attributes_
        and isinstance(snap.info, CatalogView)
        and (page.get("counted") is not None or page.get("count_spec") is not None)
        and (rules is not NO_RULES or snap.info.has_groups)
    ):
        # the attribute facets after the rules too, a catalog of variants' counted by style:
        # a style under each of its variants' values (red and blue: once under each)
        base = engine.attribute_rows(page)
        if rules is not NO_RULES:
            base = rules.search_kept(
                base, engine._index, snap.search_rows, snap.info, query, pin_allowed=pin_allowed
            )
        groups = snap.info.group_rows(snap.search_rows[base])
        attrs = engine.attributes_.facets(base, page.get("attribute_filter"), groups)
        facets = {**facets, "attributes": attrs}
    return total, facets


def _search_counts(
    snap: Snapshot, page: dict[str, Any], rules: Rules, query: Any, pin_allowed: Any = None
) -> tuple[int, dict[str, Any]]:
    """`search_counts` less the attribute facets' recount."""
    engine = snap.search
    if (
        engine is None
        or (page.get("counted") is None and page.get("count_spec") is None)
        or not isinstance(snap.info, CatalogView)  # (a test's planted catalog)
    ):
        return page["total"], page["facets"]
    if rules is NO_RULES:
        if not snap.info.has_groups:  # (no groups: the engine's count stands)
            return page["total"], page["facets"]
        # a catalog of variants counts its groups (styles), one product each, rules or none
        shown = snap.info.one_per_group(engine.counted_rows(page), snap.search_rows)
        if shown is None:
            return page["total"], page["facets"]
        return len(shown), engine._facets(shown)
    shown = rules.search_counted(
        engine.counted_rows(page),
        engine._index,
        snap.search_rows,
        snap.info,
        query,
        pin_allowed=pin_allowed,
    )
    if shown is None:
        return page["total"], page["facets"]
    return len(shown), engine._facets(shown)


def erased_pseudonyms(workdir: Path) -> dict[str, datetime]:
    """The pseudonyms the erasure register names, each with the time of its latest erasure
    (naive UTC; `governance._erasures.erased_users`)."""
    from ..governance._erasures import erased_users

    return erased_users(workdir)


def _read_at(bundle: Any) -> datetime | None:
    """When a bundle's training read the data (naive UTC): its `feedback_as_of` mark, taken
    before the warehouse is read; else its creation (a bundle written before the mark was kept,
    later than the read: an erasure in between counts as before it). None when neither is
    known."""
    mark = str(bundle.manifest.lineage.get("feedback_as_of") or "")
    try:
        return datetime.strptime(mark, "%Y%m%dT%H%M%S%fZ")
    except ValueError:
        pass
    try:
        made = datetime.fromisoformat(str(bundle.manifest.get("created_at") or ""))
    except ValueError:
        return None
    return made.astimezone(UTC).replace(tzinfo=None) if made.tzinfo is not None else made


def _stamp_of(path: Path) -> tuple[int, ...]:
    """A file's (inode, mtime_ns, size), (0, 0, 0) when absent: whether it changed since last
    read (the register is replaced whole: a new inode, whatever its size and time)."""
    try:
        st = path.stat()
    except OSError:
        return (0, 0, 0)
    return (st.st_ino, st.st_mtime_ns, st.st_size)


class Snapshot:
    """One bundle, loaded and indexed for answering."""

    def __init__(self, path: Path, pseudonymize: Pseudonymizer, *, load_search: bool = True):
        t0 = time.monotonic()
        self.bundle = Bundle.load(path)
        self.version = self.bundle.version
        self.recs = Recommendations(self.bundle, pseudonymize)
        inter = self.interactions = self.bundle.interactions
        self.item_ids: list[str] = [str(p) for p in inter.item_ids]
        self.item_index = self.recs._item_index  # (one product id -> index map per bundle)
        self.user_index = self.recs._user_index
        # a user erased after this bundle's training read the data is a stranger here whatever
        # its files still hold: a server that reloaded between the erasure's register and its
        # scrub of the bundle kept serving their precomputed list (the register is written
        # first), and a training that read the data before an erasure publishes after it. One
        # who came back and is in a bundle trained on data read since is theirs again.
        read = _read_at(self.bundle)
        for pseudo, erased in erased_pseudonyms(path.parent.parent).items():
            if read is None or erased >= read:
                self.user_index.pop(pseudo, None)
        # read from the bundle's memory-mapped catalog per look-up, not one tuple per product
        self.info: ItemInfo = CatalogView(self.item_index, self.bundle)
        arrays = self.bundle.arrays
        self.toplist = arrays.get("toplist")
        self.toplist_model = self.bundle.manifest.get("serving", {}).get("toplist_model")
        self.purchases: dict[int, dict[str, float]] = {}
        if "purchase_user" in arrays:
            for u, i, ts in zip(
                arrays["purchase_user"], arrays["purchase_item"], arrays["purchase_ts"], strict=True
            ):
                self.purchases.setdefault(int(u), {})[self.item_ids[int(i)]] = float(ts)
        self.cold = [self.item_ids[i] for i in self.recs.cold_start(200)]
        self.search = None
        self.search_rows = np.zeros(0, np.int64)
        if load_search and (path / "search").exists():
            from ..search import SearchEngine

            self.search = SearchEngine.load(path / "search")
            # per engine row, the product's item index here (-1: none), for counting after rules
            index = self.item_index
            self.search_rows = np.fromiter(
                (index.get(p, -1) for p in self.search.catalog.product_ids),
                np.int64,
                len(self.search.catalog),
            )
        sim_name = next((n for n in ("itemknn", "transitions") if n in self.bundle.models), None)
        self.similar_model = self.bundle.models[sim_name or self.bundle.manifest["default_model"]]
        self.similar_model_name = sim_name or self.bundle.manifest["default_model"]
        # text similarity completes the list of an item with few co-occurrences (a new shop, a
        # new product) instead of items with no evidence at all
        content = self.bundle.models.get("content")
        self.similar_fill = content if sim_name is not None else None
        self.load_seconds = round(time.monotonic() - t0, 2)

    def history(self, user: int | None, recent: list[str]) -> Interactions:
        return user_history(self, user, recent)

    def cold_candidates(self, n: int, context: str | None) -> list[str]:
        return [self.item_ids[i] for i in self.recs.cold_start(n, context)]


class Service:
    def __init__(
        self,
        workdir: str | Path,
        settings: ServeSettings | None = None,
        *,
        online: OnlineState | None = None,
        apply_rules: bool = True,
        load_search: bool = True,
        consent: ConsentView | None = None,
        snapshot: Snapshot | None = None,
        replay_served: bool = False,
    ):
        """`apply_rules=False` answers with the models' ranking alone (the batch CLI's
        `--no-rules`); `load_search=False` skips the search index (a recommendations-only batch);
        `snapshot`: the current bundle already loaded (by `serve --workers N` before it forks),
        used when it is still the current one. `replay_served` (a server without Redis): the
        online state starts from the served events the bundle did not learn from, and starts
        again from them when a new bundle is loaded (`shelfwise.Shop`'s batch answers too, so
        that they are what a server answers)."""
        self.workdir = Path(workdir)
        self.apply_rules = apply_rules
        self._load_search = load_search
        self.settings = settings or ServeSettings()
        self.pseudonymize = Pseudonymizer.of(self.workdir)
        self.online: OnlineState = online or MemoryState()
        # (Redis keeps its state across restarts itself)
        self._memory = replay_served and online is None
        self._rebuilding: OnlineState | None = None  # the state a bundle swap is replaying into
        # consent lives beside the online state: in the same Redis when there is one
        self.consent = consent or ConsentView(self.workdir, getattr(self.online, "client", None))
        path = current_bundle(self.workdir)
        if snapshot is None or snapshot.bundle.path != path:
            snapshot = Snapshot(path, self.pseudonymize, load_search=load_search)
        # the curated catalog now: what posted events are checked against, and what lists may
        # show (a product a delivery dropped since the bundle was trained is on none)
        self._curated_products = CuratedProducts(self.workdir)
        _follow_catalog(snapshot, self._curated_products)
        self.snapshot = snapshot
        # the erasures whose online state this process has forgotten (each at its time): a new
        # one (or a later erasure of the same user) is forgotten when the register moves, not a
        # user erased long ago who came back and shops again (before the replay: it records
        # events, which leave out an erased user's dated before their erasure)
        self._erasures_applied = erased_pseudonyms(self.workdir)
        # in memory, what shoppers did since the bundle was trained is rebuilt from the served
        # events it did not learn from: a restart (a deploy, a crash) forgets nobody's clicks
        self.replayed = self._replay_served(self.snapshot, self.online) if self._memory else 0
        self._others: dict[str, Snapshot] = {}  # bundles named by experiment variants
        # a variant's bundle or model this server could not serve (said once in the log; a
        # bundle is tried again when the experiments change)
        self._unservable: set[tuple[str, str]] = set()
        self._variant_rules: dict[tuple[str, str, str], Rules] = {}  # (variant, shop rules) -> merged
        # (bundle, rules, context) -> what an unknown recommendation context is said as
        self._context_said: dict[tuple[str, str, str], str | None] = {}
        self.rules = Rules.load(self.workdir)
        self.synonyms = LiveSynonyms(self.workdir)  # config/synonyms.txt, checked per search
        self.experiments: list[Experiment] = load_experiments(self.workdir)
        # the curated FAQ's version (`governance/faq_version.json`): POST /v1/ask keeps its
        # matcher per bundle and FAQ version, so an FAQ delivery is answered from without a
        # restart (it kept the bundle's old answers)
        self.faq_version: tuple[int, str] | None = faq_version(self.workdir)
        self._config_mtimes = self._mtimes()
        from ..governance import PERMISSIONS
        from ..governance._access import PEOPLE_FILE

        self._people_path = self.workdir / PEOPLE_FILE
        self._roles_of = {action: {r.value for r in roles} for action, roles in PERMISSIONS.items()}
        self._keys_lock = threading.Lock()
        self._keys: tuple[tuple[int, ...], dict[str, tuple[str, str]], dict[str, str]] | None = None
        self.keys: dict[str, tuple[str, str]] = self._load_keys()  # sha256(key) -> (name, role)
        self._clear_caches()
        self.swaps = 0
        # queries pre-searched for the current snapshot (None: warming; 0 with warming off)
        self.search_warm: int | None = self._unwarmed()
        self._swap_lock = threading.Lock()

    def _unwarmed(self) -> int | None:
        return None if self.settings.warm_search_queries > 0 else 0

    def _clear_caches(self) -> None:
        """Cached lists and pages belong to one snapshot."""
        self.cache = LRU(self.settings.cache_size)
        self.search_cache = LRU(self.settings.search_cache_size)
        # the level each query's first page was answered at (`_search_request`): its later pages
        # are computed at that level, so that no product is on two pages whatever the load
        self._page_levels = LRU(self.settings.search_cache_size)
        self._depths = LRU(self.settings.search_cache_size)  # a page's key -> the depth it needed

    # -- hot swap -----------------------------------------------------------------------------
    def _pointer(self) -> str | None:
        p = self.workdir / BUNDLES_DIR / CURRENT
        try:
            return p.read_text().strip()
        except FileNotFoundError:
            return None

    def _mtimes(self) -> tuple[float, ...]:
        def m(p: Path) -> float:
            try:
                return p.stat().st_mtime_ns
            except FileNotFoundError:
                return 0.0

        return (
            m(self.workdir / "config" / "rules.json"),
            m(self.workdir / "config" / "experiments.json"),
            m(self.workdir / "governance" / "people.json"),
            m(self.workdir / "governance" / "erasures.jsonl"),
            m(self.workdir / PRODUCT_IDS),
            m(self.workdir / FAQ_VERSION),
        )

    def _catalog_changed(self) -> None:
        """A catalog delivery changed the curated products: every loaded bundle's lists follow
        (`CatalogView.narrowed`), and the answers cached before are dropped."""
        for snap in (self.snapshot, *self._others.values()):
            _follow_catalog(snap, self._curated_products)
        self._clear_caches()

    def _apply_erasures(self) -> None:
        """A user was erased: forget their online state and reload the (re-signed) bundle."""
        erased = erased_pseudonyms(self.workdir)
        for pseudo, at in erased.items():
            if self._erasures_applied.get(pseudo) != at:
                self.online.forget(pseudo)
        self._erasures_applied = erased
        self.snapshot = Snapshot(self.snapshot.bundle.path, self.pseudonymize)
        self._others.clear()
        self._clear_caches()

    def _load_keys(self) -> dict[str, tuple[str, str]]:
        """sha256(key) -> (name, role) of the active people (`keys`), the register read again
        when it changed (`_keys_state`)."""
        return self._keys_state()[1]

    def _keys_state(self) -> tuple[tuple[int, ...], dict[str, tuple[str, str]], dict[str, str]]:
        """(the register's stamp, active keys, revoked keys: sha256 -> name), one immutable
        state swapped whole under a lock: a request thread that read the register before a
        revoke can never put its older keys back over a newer reading. The register is looked
        at (a stat) on every call: a revoked key stops at once, not at the next refresh. A
        damaged or unreadable register keeps the keys it last held (said once per change)."""
        stamp = _stamp_of(self._people_path)
        state = self._keys
        if state is not None and state[0] == stamp:
            return state
        with self._keys_lock:
            state = self._keys
            stamp = _stamp_of(self._people_path)
            if state is not None and state[0] == stamp:
                return state
            from ..governance import People

            try:
                people = People(self.workdir).load().values()
                state = (
                    stamp,
                    {p.key_sha256: (p.name, p.role.value) for p in people if p.active},
                    {p.key_sha256: p.name for p in people if not p.active},
                )
            except (ShelfwiseError, OSError) as exc:
                log.error("%s", exc)
                state = (stamp, *(state[1:] if state is not None else ({}, {})))
            self._keys = state
            self.keys = state[1]
            return state

    @property
    def revoked_keys(self) -> dict[str, str]:
        """sha256(key) -> name of the revoked people (their calls refused in their name)."""
        return self._keys_state()[2]

    def registered(self) -> bool:
        """Whether anyone is registered (the register looked at now: a server started in
        single-user mode asks for keys from the first person's registration on)."""
        return bool(self._keys_state()[1])

    def caller(self, key: str | None, action: str) -> tuple[bool, str | None]:
        """(allowed, name) for an API key; everyone is allowed when nobody is registered."""
        _, keys, revoked = self._keys_state()
        if not keys:
            return True, None
        if not key:
            return False, None
        digest = hashlib.sha256(key.encode()).hexdigest()
        who = keys.get(digest)
        if who is None:
            return False, revoked.get(digest)  # (a revoked key's owner is named, refused)
        return who[1] in self._roles_of[action], who[0]

    def refresh(self) -> bool:
        """Load a new bundle when CURRENT moved, new rules / experiments when their files changed
        (and note a new curated FAQ version: `faq_version`, which POST /v1/ask follows).
        Loading happens off the request path; the swap itself is one reference assignment."""
        changed = False
        with self._swap_lock:
            mt = self._mtimes()
            if mt != self._config_mtimes:
                # each file on its own: a bad rules or experiments file keeps its last good
                # version (said once, until the file changes again) and never holds up the keys
                # or an erasure
                for what, load in (
                    ("erasures", self._apply_erasures if mt[3] != self._config_mtimes[3] else None),
                    ("keys", lambda: setattr(self, "keys", self._load_keys())),
                    ("rules", lambda: setattr(self, "rules", Rules.load(self.workdir))),
                    ("experiments", lambda: setattr(self, "experiments", load_experiments(self.workdir))),
                    ("catalog", self._catalog_changed if mt[4] != self._config_mtimes[4] else None),
                    ("faq", lambda: setattr(self, "faq_version", faq_version(self.workdir))),
                ):
                    if load is None:
                        continue
                    try:
                        load()
                    except Exception as exc:
                        log.error("%s not reloaded, the last good ones stay in force: %s", what, exc)
                        if what == "erasures":  # tried again at the next refresh, not forgotten
                            mt = (*mt[:3], self._config_mtimes[3], *mt[4:])
                self._unservable.clear()
                self._config_mtimes = mt
                changed = True
            version = self._pointer()
            if version and version != self.snapshot.version:
                try:
                    new = Snapshot(
                        self.workdir / BUNDLES_DIR / version, self.pseudonymize, load_search=self._load_search
                    )
                except Exception as exc:
                    log.error(
                        "bundle %s not loaded, still serving %s: %s", version, self.snapshot.version, exc
                    )
                    return changed
                if self._memory:  # the new bundle learned what was absorbed before it
                    online = MemoryState()
                    # events recorded meanwhile reach it too (an event spooled before the replay
                    # reads the spool and recorded after this may count twice; none is lost)
                    self._rebuilding = online
                    try:
                        self.replayed = self._replay_served(new, online)
                        self.online = online
                    finally:
                        self._rebuilding = None
                _follow_catalog(new, self._curated_products)
                self.snapshot = new
                self.search_warm = self._unwarmed()
                self._clear_caches()
                self.swaps += 1
                log.info("now serving bundle %s (loaded in %.1fs)", new.version, new.load_seconds)
                changed = True
        return changed

    def _snapshot_for(self, variant: Variant | None) -> Snapshot:
        snap = self.snapshot
        if variant is None or not variant.bundle or variant.bundle == snap.version:
            return snap
        other = self._others.get(variant.bundle)
        if other is None:
            if ("bundle", variant.bundle) in self._unservable:
                return snap
            try:
                other = Snapshot(
                    self.workdir / BUNDLES_DIR / variant.bundle,
                    self.pseudonymize,
                    load_search=self._load_search,
                )
                _follow_catalog(other, self._curated_products)
            except Exception as exc:
                # `experiments set` checked that it existed, but it may have gone since (retention,
                # a file edited by hand): its users get the current bundle (`bundle_version` says
                # which) rather than an error on every request
                self._unservable.add(("bundle", variant.bundle))
                log.error(
                    "variant %r: bundle %s not loaded, serving %s: %s",
                    variant.name,
                    variant.bundle,
                    snap.version,
                    exc,
                )
                return snap
            self._others[variant.bundle] = other
        return other

    def _variant_model(self, variant: Variant | None, snap: Snapshot) -> str:
        """The model a variant's users get: its own, or where the bundle serving it has no such
        model (`experiments set` refuses one the bundle lacks; a later bundle may) the bundle's
        default, said in the log once and in the answer's `model`, never an error."""
        default = str(snap.bundle.manifest["default_model"])
        if variant is None or not variant.model:
            return default
        if variant.model in snap.bundle.models:
            return variant.model
        if ("model", f"{snap.version}/{variant.model}") not in self._unservable:
            self._unservable.add(("model", f"{snap.version}/{variant.model}"))
            log.error(
                "variant %r: bundle %s has no model %r, serving its default %r",
                variant.name,
                snap.version,
                variant.model,
                default,
            )
        return default

    def assign(self, surface: str, raw_user: str | None) -> tuple[Experiment | None, Variant | None]:
        if raw_user is None or not self.experiments:
            return None, None
        now = datetime.now(UTC)
        for e in self.experiments:
            if e.surface == surface and e.active(now):
                return e, e.assign(raw_user)
        return None, None

    def _rules_for(self, variant: Variant | None) -> Rules:
        if not self.apply_rules:
            return NO_RULES
        if variant is None or (not variant.rules and variant.shop_rules):
            return self.rules
        # built once per variant and shop rules (a request does not re-check and re-hash them)
        key = (
            variant.name,
            json.dumps([variant.rules, variant.shop_rules], sort_keys=True, default=str),
            self.rules.sha256,
        )
        cached = self._variant_rules.get(key)
        if cached is not None:
            return cached
        merged = self._merged_rules(variant)
        if len(self._variant_rules) > 256:
            self._variant_rules.clear()
        self._variant_rules[key] = merged
        return merged

    def _merged_rules(self, variant: Variant) -> Rules:
        doc: dict[str, Any] = {
            "filter_out_of_stock": self.rules.filter_out_of_stock,
            "max_per_category": self.rules.max_per_category,
            "category_level": self.rules.category_level,
            "repurchase_days": self.rules.repurchase_days,
        }
        doc.update(variant.rules)
        base = Rules.from_dict(doc)
        # the variant's settings replace the shop's; its `items` come after the shop's, which
        # stay in force: a variant tests more merchandising, it cannot lift a rule of the shop
        # (a product the shop hides stays hidden in every variant); `"shop_rules": false`: without
        # the shop's pins, boosts and buries (the "rules off" arm of a test of them)
        shop = shop_rules_for(self.rules, variant)
        both = hashlib.sha256(f"{self.rules.sha256}:{base.sha256}:{variant.shop_rules}".encode()).hexdigest()
        return replace(base, items=shop + base.items, version=self.rules.version, sha256=both)

    # -- answering ----------------------------------------------------------------------------
    def personalizes(self, pseudo: str, requested: bool = True, *, wait: bool = True) -> bool:
        """Whether an answer for this shopper may use their data: asked for (`?personalized`),
        allowed by the server and the shop (`--no-personalization`, config/privacy.json) and by
        the shopper's current personalization consent (read per request: see `ConsentView`).
        `wait=False` (the event loop's lookups): `LookDue` when knowing needs a file read."""
        return requested and self.settings.personalization and self.consent.personalizes(pseudo, wait=wait)

    def recommend(
        self,
        raw_user: str,
        k: int,
        context: str | None = None,
        model: str | None = None,
        *,
        personalized: bool = True,
    ) -> Answer:
        """What /v1/recommendations answers (and `shelfwise recommend`); `model` names one of the
        bundle's models instead of the default or an experiment's (no experiment then). A shopper
        not to be personalized (`personalized=False`, the server's or shop's setting, no consent)
        gets exactly a never-seen user's answer; `extra["personalized"]` says whether the
        shopper's own data shaped it."""
        ans = self._recommend(raw_user, k, context, model, cached_only=False, personalized=personalized)
        assert ans is not None
        return ans

    def recommend_cached(
        self, raw_user: str, k: int, context: str | None = None, *, personalized: bool = True
    ) -> Answer | None:
        """`recommend`'s answer when it needs no model computation (a precomputed, cached or
        cold-start list), else None: the HTTP layer answers those on the event loop and sends the
        others to the recommendation queue (see `_recommend_queue`)."""
        return self._recommend(raw_user, k, context, None, cached_only=True, personalized=personalized)

    def _recommend(
        self,
        raw_user: str,
        k: int,
        context: str | None,
        model: str | None,
        *,
        cached_only: bool,
        personalized: bool = True,
    ) -> Answer | None:
        from ..governance._compile import trim_id

        raw_user = trim_id(raw_user)  # as curation trims ids: " C1" is C1 (the Python API's too)
        exp, variant = self.assign("recommendations", raw_user) if model is None else (None, None)
        snap = self._snapshot_for(variant)
        if model is None:
            model = self._variant_model(variant, snap)
        pseudo = self.pseudonymize(raw_user)
        try:  # a lookup (`cached_only`, on the event loop) reads no consent file
            allowed = self.personalizes(pseudo, personalized, wait=not cached_only)
        except LookDue:  # the consent view must read: the recommendation queue's thread will
            return None
        if allowed:
            user = snap.user_index.get(pseudo)
            version, recent = self.online.recent(pseudo)
        else:  # their history and recent events are not read: a never-seen user
            user, version, recent = None, 0, []
        n_cand = min(k * self.settings.candidates_factor + 20, len(snap.item_ids))
        ranked = rank_user(
            snap,
            model,
            snap.bundle.models[model],
            user,
            k,
            n_cand,
            self._rules_for(variant),
            recent=recent,
            context=context,
            online_purchases=(lambda: self.online.purchases(pseudo)) if recent else None,
            cache=self.cache,
            cache_key=(snap.version, pseudo, model, version, n_cand),
            cached_only=cached_only,
        )
        if ranked is None:
            return None
        # personalized: the shopper's own data was read (history, recent events) and some place
        # of the list is the model's for them; a list the popular fill made whole (the model had
        # no evidence for them: item-kNN, transitions) is not a personal list, whatever `source`
        # says (the model's: `cold_start` says the shopper was not to be personalized). An empty
        # list (everything seen) is their history's doing.
        used = user is not None or bool(recent)
        personal = {
            "personalized": used and (ranked.personal > 0 or not ranked.items),
            "filled": ranked.filled,
        }
        return Answer(
            ranked.items,
            ranked.source,
            model,
            snap.version,
            variant,
            exp.name if exp else None,
            personal,
            user=pseudo,
        )

    def context_warning(self, context: str | None, variant: Variant | None = None) -> str | None:
        """What a recommendation `context` that steers nothing is said as (None when it steers
        something, or none was given): it starts no category path of the bundle (the cold-start
        list reads those) and no rule of the shop is limited to a context it starts with. Said in
        /v1/recommendations' `warnings`, by `Shop.recommend` (`UnknownContextWarning`) and
        `shelfwise recommend` (a `warning:` line): a misspelled context was answered as if none
        had been sent. Contexts stay open-ended (any category prefix), so this is no refusal.
        `variant`: the experiment variant that answered (its bundle's categories and its rules
        count: a context only a variant's rule is limited to steers that variant's lists)."""
        if context is None or not context.strip():
            return None
        snap = self._snapshot_for(variant)
        rules = self._rules_for(variant)
        key = (snap.version, rules.sha256, context)
        if key in self._context_said:
            return self._context_said[key]
        lowered = context.lower()
        known = snap.recs.knows_context(context) or any(
            r.context is not None and lowered.startswith(r.context) for r in rules.items
        )
        said = (
            None
            if known
            else f"context {context!r} starts no category path of the bundle and no rule's context: "
            "it steered nothing (a shopper without history gets the shop-wide best sellers)"
        )
        if len(self._context_said) > 1024:
            self._context_said.clear()
        self._context_said[key] = said
        return said

    def knows_product(self, product_id: str) -> bool:
        """A product of the bundle that its catalog view still lists (`CatalogView.narrowed`: a
        product a catalog delivery dropped answered 200 with items similar to it)."""
        return product_id in self.snapshot.item_index and product_id in self.snapshot.info

    def unlisted_reason(self, product_id: str) -> str:
        """Why a product of the bundle is on no list (`knows_product` false), in the words the
        CLI, the Python API and the HTTP 404 share: not published (the catalog holds it as a
        draft, private or archived), no longer in the catalog (a delivery dropped it since the
        training), or not in the catalog (never curated: known from events alone, its catalog
        row quarantined). All answered "no longer in the catalog" before."""
        curated = self._curated_products.get()
        if product_id in self._curated_products.unpublished():
            return f"product {product_id!r} is not published in the catalog (a draft, private or archived product)"
        listed = getattr(self.snapshot.bundle, "listed", None)
        i = self.snapshot.item_index.get(product_id)
        by_bundle = i is not None and (listed is None or bool(listed[int(i)]))
        if curated is not None and product_id in curated:
            if by_bundle:  # (listed, curated and published: on the lists; not asked here)
                return f"product {product_id!r} is in the catalog"
            # curated, not listed by the bundle: unpublished at its training (a catalog file
            # from before `published` was recorded), or quarantined then and curated since
            return (
                f"product {product_id!r} is not published in the catalog, or was not in it when "
                "the current bundle was trained"
            )
        if by_bundle:
            return f"product {product_id!r} is no longer in the catalog"
        return f"product {product_id!r} is not in the catalog"

    def _similar_candidates(
        self, i: int, product_id: str, n_cand: int, *, cached_only: bool = False
    ) -> tuple[list[str], int] | None:
        """`similar`'s `n_cand` candidates for product index `i` (cached per depth): the model's
        related products, then the text-similar ones, then best sellers, with how many of them
        are related (by the model or the text); None with `cached_only` when not cached."""
        snap = self.snapshot
        key = (snap.version, "similar", i, n_cand)
        cands = self.cache.get(key)
        if cands is None and cached_only:
            return None
        if cands is None:
            r = snap.similar_model.similar_items(np.array([i]), n_cand)
            # a neighbour model's zero scores relate nothing (a product no session shares with
            # another got 10 items seen once or twice, labelled item-kNN): only its evidence,
            # then text similarity (when the bundle has it), then the popular list, said as such
            # (a popularity-only bundle's "similar" items are its best sellers: no evidence at all)
            name = snap.similar_model_name
            if name in NEIGHBOUR_MODELS:
                evidence = r.scores[0] > 0
            else:
                evidence = np.full(len(r.ids[0]), name != "popularity") & (r.ids[0] >= 0)
            cands = [
                snap.item_ids[j] for j, ok in zip(r.ids[0], evidence, strict=True) if ok and j >= 0 and j != i
            ]
            if len(cands) < n_cand and snap.similar_fill is not None:
                have = set(cands)
                more = snap.similar_fill.similar_items(np.array([i]), n_cand).ids[0]
                cands += [p for p in (snap.item_ids[j] for j in more if j >= 0 and j != i) if p not in have]
            related = len(cands)
            if len(cands) < n_cand:
                have = set(cands) | {product_id}
                # (as deep as the list needs: the snapshot's own 200 cut a list of 300 short)
                popular = snap.cold_candidates(n_cand + len(have), None)
                cands += [p for p in popular if p not in have][: n_cand - len(cands)]
            cands = (cands, related)
            self.cache.put(key, cands)
        listed, related = cands
        return list(listed), int(related)

    def similar(self, product_id: str, k: int, *, cached_only: bool = False) -> Answer | None:
        """What /v1/items/{id}/similar answers; None for a product not in the catalog, or (with
        `cached_only`) when the list needs the model: the HTTP layer answers cached lists on the
        event loop and sends the others to the similar-items queue (see `_recommend_queue`)."""
        snap = self.snapshot
        i = snap.item_index.get(product_id)
        if i is None or product_id not in snap.info:  # (`knows_product`, of this snapshot)
            return None
        # a catalog of variants shows one product per group: as many groups' worth of candidates
        # as the average group holds (a style's 12 sizes and colours took 12 places of the 50; up
        # to 10 times deeper), then deeper while the rules (one product per group) leave fewer
        # than k and the model relates more (one style of 60 variants next to the product took
        # every place of a catalog whose average group is 1.5 products: filled with best sellers)
        depth = min(float(getattr(snap.info, "group_depth", 1.0)), 10.0)
        n_cand = min(int((k * self.settings.candidates_factor + 20) * depth), len(snap.item_ids) - 1)
        deepest = max(n_cand, min(SIMILAR_MAX_CANDIDATES, len(snap.item_ids) - 1))
        rules = self._rules_for(None)
        while True:
            got = self._similar_candidates(i, product_id, n_cand, cached_only=cached_only)
            if got is None:
                return None
            listed, related = got
            # the anchor is never similar to itself, not even where a rule pins it
            items = rules.apply(listed, k, snap.info, surface="similar", exclude=(product_id,))
            if len(items) >= k or related < n_cand or n_cand >= deepest:
                break
            n_cand = min(n_cand * 4, deepest)
        if len(items) < k and len(listed) < len(snap.item_ids) - 1:
            # the rules (one product per group, hidden and sold-out products) thinned the list:
            # the popular list fills it, through the rules once, as a user's recommendations
            have = set(listed) | {product_id}
            need = len(have) + int(k * max(depth, 1.0)) + k
            more = [p for p in snap.cold_candidates(need, None) if p not in have]
            if more:
                listed = [*listed, *more]
                items = rules.apply(listed, k, snap.info, surface="similar", exclude=(product_id,))
        backed, filled = set(listed[:related]), set(listed[related:])
        extra = {
            "related": sum(1 for p in items if p in backed),  # (a product a rule pins is neither)
            "fallback": "popular" if any(p in filled for p in items) else None,
        }
        return Answer(items, snap.similar_model_name, snap.similar_model_name, snap.version, extra=extra)

    def search(
        self,
        q: str,
        k: int,
        *,
        filters: Any = None,
        sort: str = "relevance",
        offset: int = 0,
        raw_user: str | None = None,
        cached_only: bool = False,
        level: str = "full",
        personalized: bool = True,
    ) -> Answer | None:
        """A results page; with `cached_only`, None unless it is in the cache (the HTTP layer
        answers cache hits on the event loop and sends misses to the search queue, which calls
        `search_batch`). `level` bounds the work of a miss (see `SearchEngine.query`)."""
        try:  # a lookup (`cached_only`, on the event loop) reads no consent file
            req = self._search_request(
                SearchArgs(q, k, filters, sort, offset, raw_user, personalized), wait=not cached_only
            )
        except LookDue:  # the consent view must read: the search queue's thread will
            return None
        if req.answer is not None:
            return req.answer
        if req.page is not None:
            return self._search_answer(req)
        if cached_only:
            return None
        return self.search_batch([(req.args, level)])[0]

    def search_batch(
        self, jobs: list[tuple[SearchArgs, str]], encoder_calls: list[int] | None = None
    ) -> list[Answer]:
        """Pages for several searches at once, each at its level: the queries that need the
        encoder are encoded in one call per engine (dynamic batching), cache hits (a page another
        job of the batch just computed, too) are looked up. Degraded pages are not cached: the
        next request for the query gets the whole pipeline when there is time for it.
        `encoder_calls`, when given, gets the number of queries of each encoder call (metrics)."""
        reqs = [self._search_request(args, level) for args, level in jobs]
        # per engine and level ("full" needs both encoders, "fused" the multilingual one only
        # for Chinese queries): the texts to encode, in one call each
        by_engine: dict[tuple[int, bool], tuple[Any, list[str]]] = {}
        for r in reqs:
            if r.page is None and r.answer is None and r.level != "lexical":
                eng = r.snap.search
                assert eng is not None  # else `_search_request` answered
                texts = by_engine.setdefault((id(eng), r.level == "full"), (eng, []))[1]
                texts.append(eng._query(r.args.q).text)
        vectors: dict[tuple[int, bool, str], Any] = {}
        share: dict[tuple[int, bool], float] = {}  # encoder seconds per query
        encoded: dict[tuple[int, bool], int] = {}  # queries per encoder call
        for key, (eng, texts) in by_engine.items():
            t0 = time.perf_counter()
            n_encoded: list[int] = []
            got = eng.encode_queries(texts, multilingual=key[1] or None, encoded=n_encoded)
            for t, v in zip(texts, got, strict=True):
                vectors[(*key, t)] = v
            took = time.perf_counter() - t0
            # the texts the encoder actually read (the others' vectors were cached): a call that
            # encoded none is no encoder call (its time is lookups) - not a cost sample for the
            # encoder's scale, nor a batch in the metric; its queries get no share (the queue
            # prices them as if encoded alone). In a call that encoded some, every query of it
            # gets the call's time over the texts encoded (which of them were cached is unknown)
            n = n_encoded[0] if n_encoded else len(texts)
            encoded[key] = n
            if n:
                share[key] = took / n
                if encoder_calls is not None:
                    encoder_calls.append(n)
        out = []
        for r in reqs:
            if r.answer is not None:
                out.append(r.answer)
                continue
            while True:  # (again, deeper, while the rules leave the page short: `_deepen`)
                if r.page is None:
                    r.page = self.search_cache.get(r.key)  # computed by an earlier job of this batch
                if r.page is None:
                    eng = r.snap.search
                    assert eng is not None  # else `_search_request` answered
                    vkey = (id(eng), r.level == "full")
                    vecs = vectors.get((*vkey, eng._query(r.args.q).text))
                    a = r.args
                    t0 = time.perf_counter()
                    r.page = eng.query(
                        a.q,
                        r.n_cand,
                        filters=a.filters,
                        sort=a.sort,
                        profile=r.profile,
                        level=r.level,
                        vecs=vecs,
                    )
                    took = time.perf_counter() - t0 + (share.get(vkey, 0.0) if vecs is not None else 0.0)
                    r.cost_s = (r.cost_s or 0.0) + took
                    if vecs is not None and vkey in encoded:  # encoder_batch 0: vectors from the cache
                        r.encoder_s, r.encoder_batch = share.get(vkey, 0.0), encoded[vkey]
                    r.computed = True
                    # a degraded page is cached for the later pages of its query alone (its key
                    # names its level): the next first page gets the whole pipeline
                    if not self._degraded(eng, r.page) or r.pinned is not None:
                        self.search_cache.put(r.key, r.page)
                if not self._deepen(r):
                    break
            if r.args.offset == 0 and r.page is not None:
                first = self._first_page_key(r.key)
                self._page_levels.put(first, r.page["level"])
                if self._degraded(r.snap.search, r.page):
                    self.search_cache.put((*r.key, r.page["level"]), r.page)
            out.append(self._search_answer(r))
        return out

    def _search_request(self, args: SearchArgs, level: str = "full", *, wait: bool = True) -> _SearchRequest:
        """Everything a search needs before the engine runs: the experiment variant, the
        snapshot, the cache key (per shopper and history version for personalized search), the
        shopper's profile, and the cached page when there is one. `wait=False`: `LookDue` when
        the shopper's consent needs a file read (see `personalizes`)."""
        from ..governance._compile import trim_id

        if args.raw_user is not None and args.raw_user != trim_id(args.raw_user):
            # as curation trims ids (and `/v1/recommendations`): " C1" is C1, not a stranger
            args = replace(args, raw_user=trim_id(args.raw_user) or None)
        exp, variant = self.assign("search", args.raw_user)
        snap = self._snapshot_for(variant)
        req = _SearchRequest(args, level, snap, exp.name if exp else None, variant)
        engine = snap.search
        if engine is None:
            req.answer = Answer([], "no_search_index", "none", snap.version, variant, req.experiment)
            return req
        req.rules = self._rules_for(variant)
        req.key, req.n_cand = self._search_key(snap, args.q, args.filters, args.sort, args.offset, args.k)
        pseudo = self.pseudonymize(args.raw_user) if args.raw_user is not None else None
        if (
            pseudo is not None
            and engine.personalized_
            and self.personalizes(pseudo, args.personalized, wait=wait)
        ):
            # personalized search: the shopper's history (bundle + events since) -> profile;
            # pages of shoppers with a profile are cached per shopper and history version
            user = snap.user_index.get(pseudo)
            version, recent = self.online.recent(pseudo)
            seq = snap.bundle.interactions.sequence(user).tolist() if user is not None else []
            req.profile = engine.profile([snap.item_ids[i] for i in seq] + list(recent))
            if req.profile is not None:
                req.key = (*req.key, pseudo, version)
        first = self._first_page_key(req.key)
        if args.offset > 0:
            # a later page at its first page's level (a degraded one is cached under its level
            # for them): pages of one query computed at two levels rank alike only by chance
            req.pinned = self._page_levels.get(first)
            if req.pinned is not None:
                req.level = req.pinned  # (whatever the search queue planned)
                if req.pinned != engine.levels()[0]:
                    req.key = (*req.key, req.pinned)
        # the depth the rules made this page need last time (`_deepen`): one cached page, one
        # pass of the rules, not a walk down every depth on the event loop
        # (keyed by the rules too: the rules decide how deep a page must go, and variants differ)
        req.origin = (*req.key, req.rules.sha256)
        deeper = self._depths.get(req.origin)
        if deeper is not None and deeper > req.n_cand:
            req.n_cand, req.key = deeper, self._at_depth(req.key, deeper)
        req.page = self.search_cache.get(req.key)
        while req.page is not None and self._deepen(req):
            if not wait:  # (the event loop: the search queue's thread walks down)
                req.page = None
                break
            req.page = self.search_cache.get(req.key)  # (a miss: the deeper page is computed)
        if args.offset == 0 and req.page is not None:
            self._page_levels.put(first, req.page["level"])
        return req

    @staticmethod
    def _at_depth(key: tuple[Any, ...], n_cand: int) -> tuple[Any, ...]:
        """A page's cache key at another candidate depth."""
        return (*key[:5], n_cand, *key[6:])

    @staticmethod
    def _first_page_key(key: tuple[Any, ...]) -> tuple[Any, ...]:
        """A query's cache key without its candidate depth: what its pages share."""
        return key[:5] + key[6:]

    def _deepen(self, req: _SearchRequest) -> bool:
        """Whether `req.page` leaves the asked page short because the rules (hides, the
        out-of-stock filter) took candidates away and the retrieval holds more: then `req` asks
        for twice as many candidates (its `n_cand` and cache key), up to `_DEEPEST`. Paging a
        query whose candidates the rules thinned stopped early: 71 of "cordless drill"'s 199
        counted products could be reached with one brand hidden. A deeper retrieval ranks its
        new products after the shallower one's, so the pages before keep their products."""
        page, a = req.page, req.args
        assert page is not None
        want = a.offset + a.k
        deepest = min(_DEEPEST, len(req.snap.item_ids))
        req.shown = None
        # (a price or popularity sort orders every candidate retrieved: a deeper retrieval would
        # put new products before those the earlier pages showed, so it keeps its depth)
        if a.sort != "relevance" or req.n_cand >= deepest or len(page["items"]) < req.n_cand:
            return False  # the catalog (or the retrieval) has no more
        req.shown = self._apply_rules(req, [it["product_id"] for it in page["items"]])
        if len(req.shown) >= want:
            return False
        req.shown = None
        req.n_cand = min(deepest, req.n_cand * 2)
        req.key = self._at_depth(req.key, req.n_cand)
        self._depths.put(req.origin, req.n_cand)  # (the next request for it starts there)
        req.page = None
        return True

    def _apply_rules(self, req: _SearchRequest, ranked: list[str]) -> list[str]:
        """The page's products once the rules are applied (as `_search_answer` shows them)."""
        page, a = req.page, req.args
        assert page is not None
        asked = (a.q, page["corrected_query"]) if page.get("corrected_query") else a.q
        pin_ok = _filtered(req.snap.search, a.filters)
        return req.rules.apply(
            ranked, a.offset + a.k, req.snap.info, surface="search", query=asked, pin_allowed=pin_ok
        )

    @staticmethod
    def _degraded(engine: Any, page: dict[str, Any]) -> bool:
        """Whether a page was computed below its engine's richest level (`SearchEngine.levels`)."""
        from ..search import LEVELS

        return LEVELS.index(page["level"]) > LEVELS.index(engine.levels()[0])

    def _search_answer(self, req: _SearchRequest) -> Answer:
        page = req.page
        assert page is not None
        engine = req.snap.search
        assert engine is not None
        ranked = [it["product_id"] for it in page["items"]]
        a = req.args
        # search shows purchased items again (people re-find what they bought): no repurchase rule
        pin_ok = _filtered(engine, a.filters)
        # a rule for the query holds on it as typed and as the engine corrected it
        asked = (a.q, page["corrected_query"]) if page.get("corrected_query") else a.q
        items = req.shown if req.shown is not None else self._apply_rules(req, ranked)
        stages = list(page["stages"])
        available = ["lexical", "semantic"]
        if engine.ranker_ is not None:
            available.append("rerank")
        if engine.cross_ is not None:
            available.append("cross_encoder")
        total, facets = search_counts(req.snap, page, req.rules, asked, pin_ok)
        match, fallback = page["match"], page.get("fallback")
        if match == "keyword" and total == 0 and ranked:
            # the rules hid every product holding a word of the query ("shirt" with Fashion
            # hidden): what was left were neighbours without the words, a short page that said
            # "keyword" with a total of 0. It is a query the shop's page has no result for: the
            # popular products the rules and filters allow, said to be a fallback
            # (as many as the page had, and room for what the rules hide among the best sellers)
            want = max(len(ranked), (a.offset + a.k) * 3)
            popular = engine._no_match(
                engine._query(a.q), want, 0, a.filters, a.sort, stages, int(page.get("depth") or 0)
            )
            items = req.rules.apply(
                [it["product_id"] for it in popular["items"]],
                a.offset + a.k,
                req.snap.info,
                surface="search",
                query=asked,
                pin_allowed=pin_ok,
            )
            match, fallback, facets = "none", "popular" if items else None, popular["facets"]
        # an empty filtered page: whether the words found products the filters then took away
        # (search analytics: "earbuds" under 5 dollars is no query that finds nothing)
        words_found = None
        if a.filters is not None and a.filters.active() and (match == "none" or not items[a.offset :]):
            words_found = bool(len(engine._holding_terms(engine._query(a.q).terms, None)))
        extra = {
            "total": total,
            "facets": facets,
            "corrected_query": page["corrected_query"],
            "match": match,
            "fallback": fallback,
            "words_found": words_found,
            "stages": stages,
            "degraded": self._degraded(engine, page),
            "skipped": [st for st in available if st not in stages],
            "level": req.level if req.computed else None,
            "cost_s": req.cost_s,
            "encoder_s": req.encoder_s,
            "encoder_batch": req.encoder_batch,
            "personalized": req.profile is not None,
            # (attribute filters asked of a bundle trained before they existed: said, not an
            # empty page without a word)
            "warnings": engine.filter_warnings(a.filters, req.snap.version),
        }
        source = "search" if req.computed else "cached:search"
        return Answer(
            items[a.offset :], source, "search", req.snap.version, req.variant, req.experiment, extra
        )

    def _search_key(
        self, snap: Snapshot, q: str, filters: Any, sort: str, offset: int, k: int
    ) -> tuple[tuple[Any, ...], int]:
        # one cached page of >= 100 candidates serves every k and offset that fit in it
        n_cand = max(100, offset + k * self.settings.candidates_factor + 20)
        from ..search import words

        norm = " ".join(words(q)) or q.strip().lower()  # the same normalization as the query log
        syn = self.sync_synonyms(snap)  # a page belongs to the synonyms it was searched with
        return (snap.version, "search", norm, repr(filters), sort, n_cand, syn), n_cand

    def sync_synonyms(self, snap: Snapshot) -> Any:
        """The snapshot's engine with the synonyms in force now (config/synonyms.txt when it
        exists, else the bundle's); returns their stamp. One `stat` per call."""
        stamp = self.synonyms.check()
        if snap.search is not None:
            self.synonyms.apply(snap.search)
        return stamp

    def calibrate_search(self, level: str, runs: int = 3) -> float:
        """Seconds one query takes at `level` on the current engine (the median of `runs`
        queries made of catalog words, after one to warm up): the search queue's first cost
        estimates. Nothing is cached but the queries' vectors."""
        engine = self.snapshot.search
        if engine is None:
            return 0.0
        titles = [t.split() for t in engine.catalog.title[:1000] if t.split()] or [["x"]]
        took = []
        for i in range(runs + 1):
            a, b = (7919 * (i + 1) + 31 * len(level)) % len(titles), (104729 * (i + 1)) % len(titles)
            text = f"{titles[a][0]} {titles[b][-1]}"  # two words of the catalog: a keyword match
            t0 = time.perf_counter()
            engine.query(text, 100, filters=Filters(), level=level)
            took.append(time.perf_counter() - t0)
        return float(np.median(took[1:]))

    def calibrate_encoder(self, level: str, runs: int = 3) -> tuple[float, float]:
        """(seconds per call, seconds per query) of the query encoder call a batch of misses at
        `level` makes ("full": both encoders when the catalog has two; "fused": the main one),
        from calls of 1 and of 8 new queries (median of `runs`): the search queue prices the
        second and later queries of one call without the call's fixed part."""
        engine = self.snapshot.search
        if engine is None:
            return 0.0, 0.0
        titles = [t.split() for t in engine.catalog.title[:1000] if t.split()] or [["x"]]
        multilingual = True if level == "full" else None
        took: dict[int, list[float]] = {1: [], 8: []}
        for _ in range(runs):
            for n in (1, 8):
                texts = []
                for _ in range(n):
                    # new texts at every call of every level (one counter for the process: the
                    # texts of an earlier calibration are in the engine's vector cache)
                    k = next(_CALIBRATION_TEXTS)
                    a, b = (7907 * k + 17) % len(titles), (104723 * k + 5) % len(titles)
                    texts.append(f"{titles[a][0]} {titles[b][-1]} {k}")  # new: not in the vector cache
                t0 = time.perf_counter()
                engine.encode_queries(texts, multilingual=multilingual)
                took[n].append(time.perf_counter() - t0)
        one, eight = float(np.median(took[1])), float(np.median(took[8]))
        per_query = max((eight - one) / 7, 0.0)
        return max(one - per_query, 0.0), per_query

    def warm_search(self, top: int = 1000) -> int:
        """Fill the cache with the first page of the most frequent logged queries (run in the
        background after a bundle is loaded: the head of real traffic is then a lookup)."""
        snap = self.snapshot
        engine = snap.search
        if engine is None:
            return 0
        logged = engine.autocomplete_.logged(top)
        n = 0
        for q in logged:
            if self.snapshot is not snap:  # swapped meanwhile: the new snapshot warms itself
                break
            key, n_cand = self._search_key(snap, q, Filters(), "relevance", 0, 10)
            if self.search_cache.get(key) is None:
                self.search_cache.put(key, engine.query(q, n_cand, filters=Filters(), sort="relevance"))
                n += 1
        if self.snapshot is snap:
            self.search_warm = n
        return n

    def _replay_served(self, snap: Snapshot, into: OnlineState) -> int:
        """Record into `into` the served events bundle `snap` did not learn from
        (`_feedback.served_since`: absorbed after its training read the warehouse, or still
        spooled), checked as /v1/events checks them; returns how many."""
        from ..governance._contracts import EVENTS
        from ..governance._erasures import Erasures
        from ..governance._row_check import check_record
        from ._feedback import served_since

        as_of = snap.bundle.manifest.lineage.get("feedback_as_of") or snap.version
        known = {"product_id": snap.item_index}
        erasures = Erasures.of(self.workdir)  # an erased user's events never come back
        events = []
        for ev in served_since(self.workdir, str(as_of)):
            if erasures is not None and erasures.withholds(ev):
                continue
            chk = check_record(EVENTS, ev, known=known)
            if not chk.failures:
                events.append(online_event(chk.values, ev.get("timestamp")))
        if events:
            into.record(self._online_rows(events))
        return len(events)

    def replay_again(self) -> int:
        """In memory: the online state built again from the served events (another process
        spooled or absorbed some since), replacing this one's; returns how many. A Redis state
        is shared already: nothing to do."""
        if not self._memory:
            return 0
        fresh: OnlineState = MemoryState()
        self.replayed = self._replay_served(self.snapshot, fresh)
        self.online = fresh
        self._clear_caches()  # (their keys count each user's events in the state just replaced)
        return self.replayed

    def record_events(self, events: list[dict[str, Any]]) -> None:
        """Accepted events update the online state right away (before the warehouse has them)."""
        rows = self._online_rows(events)
        self.online.record(rows)
        rebuilding = self._rebuilding
        if rebuilding is not None and rebuilding is not self.online:
            rebuilding.record(rows)

    def withholds(self) -> Any:
        """Whether a posted event is an erased user's dated at or before their erasure
        (`Erasures.withholds`, on the erasures this process applied); None when nobody was
        erased."""
        if not self._erasures_applied:
            return None
        from ..governance._erasures import Erasures

        return Erasures(self._erasures_applied, self.pseudonymize).withholds

    def event_references(self) -> dict[str, Any]:
        """What a posted event's product is checked against, as ingestion checks it: the curated
        products (`CuratedProducts`, read again when an ingestion changes them); none when the
        warehouse has no products table (ingestion checks no reference then); the bundle's
        products for a workdir no ingestion recorded them in yet."""
        ids = self._curated_products.get(missing=self.snapshot.item_index)
        return {} if ids is None else {"product_id": ids}

    def _online_rows(self, events: list[dict[str, Any]]) -> list[tuple[str, str, str, float]]:
        """The online state's rows of accepted events, less those of an erased user dated at or
        before their erasure: the absorb withholds those from the warehouse, and they must not
        personalize the user's next answers either (a client re-sending yesterday's events
        after an erasure brought the user's history back until the server restarted)."""
        rows = [
            (
                self.pseudonymize(str(e["user_id"])),
                e.get("product_id") or "",
                e["_type"],
                e.get("_ts") or time.time(),
            )
            for e in events
        ]
        erased = self._erasures_applied
        if not erased:
            return rows
        return [
            r for r in rows if (at := erased.get(r[0])) is None or r[3] > at.replace(tzinfo=UTC).timestamp()
        ]

    @staticmethod
    def new_id(prefix: str) -> str:
        return f"{prefix}_{os.urandom(16).hex()}"  # 128 random bits, as a uuid4


def _follow_catalog(snap: Any, products: CuratedProducts) -> None:
    """A snapshot's catalog view narrowed to the curated catalog, its stock and what it says is
    not published now
    (`CatalogView.narrowed`, from the bundle's own view: a new one, swapped in whole; a test's
    planted catalog stays as it is)."""
    base = getattr(snap, "_catalog_base", None)
    if base is None:
        base = snap.info
    narrowed = getattr(base, "narrowed", None)
    if narrowed is not None:
        snap._catalog_base = base
        curated = products.get()
        snap.info = narrowed(curated, products.stock(), products.unpublished())


def online_event(values: dict[str, Any], timestamp: Any) -> dict[str, Any]:
    """An accepted event as `Service.record_events` takes it, from its row check's `values` (as
    the warehouse will curate it: trimmed, an anonymous session's user id) and its timestamp."""
    from ..governance._row_check import parse_timestamp

    ts = parse_timestamp(str(timestamp).strip()) if timestamp is not None else None
    return {
        "user_id": values["user_id"],
        "product_id": values.get("product_id") or "",
        "_type": values["event_type"],
        "_ts": ts.replace(tzinfo=UTC).timestamp() if ts else None,
    }
