"""Business rules applied at serve time, shared by search and recommendations.

One versioned JSON file per shop (`<workdir>/config/rules.json`, changed with
`shelfwise rules set`, every change audited and the previous version kept):

    {
      "version": 3,
      "filter_out_of_stock": true,
      "max_per_category": 3,          # category diversity in the top k (null: off)
      "category_level": 2,            # compare categories by their first N path levels
      "repurchase_days": {"default": null, "Grocery": 7},
                                      # a purchased item is not shown again (null) or only after N
                                      # days; keys are category path prefixes, the longest wins
      "items": [                      # merchandising, each with optional start/end (ISO 8601)
        {"action": "pin", "product_id": "P12", "position": 1, "query": "kettle"},
        {"action": "boost", "category": "Home > Kitchen", "factor": 2.0, "surfaces": ["search"]},
        {"action": "bury", "product_id": "P99"},
        {"action": "hide", "brand": "Acme", "context": "Toys"}
      ]
    }

A rule's *target* is a product_id, a category prefix or a brand; its *conditions* are `query`
(search: the normalized query equals it), `context` (recommendations: the request's category
context starts with it), `surfaces` and the dates. boost moves an item up to rank/factor, bury
sends it after every unburied item, hide removes it, pin puts it at `position` (1-based).
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import math
import os
from collections import Counter
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ShelfwiseError
from ..governance._compile import trim_id

ACTIONS = ("pin", "boost", "bury", "hide")
SURFACES = ("search", "recommendations", "similar")
RULES_FILE = Path("config") / "rules.json"


def parse_when(value: Any, where: str) -> datetime | None:
    """An optional ISO 8601 date or time (naive means UTC), or a clear error naming `where`."""
    if value in (None, ""):
        return None
    try:
        ts = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        raise ShelfwiseError(f"{where}: not an ISO 8601 date: {value!r}") from None
    return ts if ts.tzinfo else ts.replace(tzinfo=UTC)


def is_number(value: Any) -> bool:
    """A finite number: a JSON number, or a text that is one (`"2"`: files written before values
    were checked held them, and they were read then; `true` is not one, though Python counts it
    as 1)."""
    if isinstance(value, str):
        try:
            return math.isfinite(float(value))
        except ValueError:
            return False
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _is_whole(value: Any) -> bool:
    return is_number(value) and float(value).is_integer()


# a request's query for the rules: as typed, or (typed, corrected) when the engine corrected it
Asked = str | tuple[str, ...] | None


def _query_key(query: str) -> str:
    """A query as a rule for it compares: lower case, its words one space apart ("black  earbuds"
    and "black\tearbuds" are the query "black earbuds" the rule names, as search reads them)."""
    return " ".join(query.lower().split())


@dataclass(frozen=True)
class ItemRule:
    action: str
    product_id: str | None = None
    category: str | None = None
    brand: str | None = None
    position: int = 1
    factor: float = 2.0
    query: str | None = None
    context: str | None = None
    surfaces: tuple[str, ...] = SURFACES
    start: datetime | None = None
    end: datetime | None = None

    def applies(self, surface: str, query: Asked, context: str | None, now: datetime) -> bool:
        """Whether the rule is in force for a request: its surface, dates, query (a search's
        query as typed or as the engine corrected it: a pin for "kettle" holds on "kettel") and
        category context."""
        if surface not in self.surfaces:
            return False
        if self.start is not None and now < self.start:
            return False
        if self.end is not None and now >= self.end:
            return False
        if self.query is not None:
            asked = (query,) if query is None or isinstance(query, str) else query
            if not any(_query_key(q or "") == self.query for q in asked):
                return False
        return not (self.context is not None and not (context or "").lower().startswith(self.context))

    def targets(self, product_id: str, category: str, brand: str) -> bool:
        if self.product_id is not None:
            return product_id == self.product_id
        if self.category is not None:
            return category.lower().startswith(self.category)
        return self.brand is not None and brand.lower() == self.brand


@dataclass(frozen=True)
class Rules:
    version: int = 0
    sha256: str = ""
    filter_out_of_stock: bool = True
    max_per_category: int | None = None
    category_level: int = 2
    repurchase_days: dict[str, float | None] = field(default_factory=lambda: {"default": None})
    items: tuple[ItemRule, ...] = ()

    @classmethod
    def from_dict(cls, doc: dict[str, Any], source: str = "rules") -> Rules:
        if not isinstance(doc, dict):
            raise ShelfwiseError(f"{source}: the rules file must hold a JSON object")
        known = {
            "version",
            "filter_out_of_stock",
            "max_per_category",
            "category_level",
            "repurchase_days",
            "items",
            "description",
        }
        unknown = set(doc) - known
        if unknown:
            raise ShelfwiseError(f"{source}: unknown setting(s) {sorted(unknown)}; known: {sorted(known)}")
        # every value is checked here, at `rules set`: a bad one is a clear error naming it, not
        # a traceback now or a failing request later (the file is read again at serve time)
        version = doc.get("version", 0)
        if not _is_whole(version) or float(version) < 0:
            raise ShelfwiseError(f"{source}: version must be a whole number >= 0, not {version!r}")
        stock = doc.get("filter_out_of_stock", True)
        if not isinstance(stock, bool):
            raise ShelfwiseError(f"{source}: filter_out_of_stock must be true or false, not {stock!r}")
        mpc = doc.get("max_per_category")
        if mpc is not None and (not _is_whole(mpc) or float(mpc) < 0):
            raise ShelfwiseError(
                f"{source}: max_per_category must be a whole number >= 1 (null or 0: off), not {mpc!r}"
            )
        level = doc.get("category_level", 2)
        if not _is_whole(level) or float(level) < 1:
            raise ShelfwiseError(f"{source}: category_level must be a whole number >= 1, not {level!r}")
        repurchase = doc.get("repurchase_days")
        if repurchase is None:
            repurchase = {}
        if not isinstance(repurchase, dict):
            raise ShelfwiseError(
                f"{source}: repurchase_days must be an object of category prefix -> days, not {repurchase!r}"
            )
        for prefix, days in repurchase.items():
            if not isinstance(prefix, str):
                raise ShelfwiseError(f"{source}: repurchase_days: a key is a category prefix, not {prefix!r}")
            if days is not None and (not is_number(days) or float(days) < 0):
                raise ShelfwiseError(
                    f"{source}: repurchase_days[{prefix!r}] must be a number of days >= 0 or null "
                    f"(never again), not {days!r}"
                )
        raw_items = doc.get("items")
        if raw_items is None:
            raw_items = []
        if not isinstance(raw_items, list | tuple):
            raise ShelfwiseError(f"{source}: items must be a list of rules, not {raw_items!r}")
        items = []
        for i, r in enumerate(raw_items):
            where = f"{source}: items[{i}]"
            if not isinstance(r, dict):
                raise ShelfwiseError(f"{where}: must be an object")
            action = r.get("action")
            if action not in ACTIONS:
                raise ShelfwiseError(f"{where}: action must be one of {ACTIONS}, not {action!r}")
            for name in ("product_id", "category", "brand", "query", "context"):
                value = r.get(name)
                if (
                    value is not None
                    and not isinstance(value, str)
                    and not (name == "product_id" and _is_whole(value))
                ):
                    raise ShelfwiseError(f"{where}: {name} must be a text, not {value!r}")
            targets = [t for t in ("product_id", "category", "brand") if r.get(t)]
            if len(targets) != 1:
                raise ShelfwiseError(f"{where}: name exactly one target: product_id, category or brand")
            if action == "pin" and not r.get("product_id"):
                raise ShelfwiseError(f"{where}: a pin names a product_id")
            raw_surfaces = r.get("surfaces") or list(SURFACES)
            if not isinstance(raw_surfaces, list | tuple) or set(map(str, raw_surfaces)) - set(SURFACES):
                raise ShelfwiseError(
                    f"{where}: surfaces must be a list among {SURFACES}, not {raw_surfaces!r}"
                )
            surfaces = tuple(str(x) for x in raw_surfaces)
            factor = r.get("factor", 2.0)
            if not is_number(factor) or float(factor) <= 0:
                raise ShelfwiseError(f"{where}: factor must be a number > 0, not {factor!r}")
            position = r.get("position", 1)
            if not _is_whole(position) or float(position) < 1:
                raise ShelfwiseError(f"{where}: position must be a whole number >= 1, not {position!r}")
            extra = set(r) - {
                "action",
                "product_id",
                "category",
                "brand",
                "position",
                "factor",
                "query",
                "context",
                "surfaces",
                "start",
                "end",
                "note",
            }
            if extra:
                raise ShelfwiseError(f"{where}: unknown field(s) {sorted(extra)}")
            items.append(
                ItemRule(
                    action=action,
                    # an id as curation reads it: 111422.0 (a spreadsheet's or pandas' whole
                    # number) is product 111422, " p1 " is p1
                    product_id=trim_id(r["product_id"]) if r.get("product_id") else None,
                    category=str(r["category"]).lower() if r.get("category") else None,
                    brand=str(r["brand"]).lower() if r.get("brand") else None,
                    position=int(float(position)),
                    factor=float(factor),
                    query=_query_key(str(r["query"])) if r.get("query") else None,
                    context=str(r["context"]).lower() if r.get("context") else None,
                    surfaces=surfaces,
                    start=parse_when(r.get("start"), where),
                    end=parse_when(r.get("end"), where),
                )
            )
        repurchase = dict(repurchase)
        repurchase.setdefault("default", None)
        canonical = json.dumps(doc, sort_keys=True).encode()
        return cls(
            version=int(float(version)),
            sha256=hashlib.sha256(canonical).hexdigest(),
            filter_out_of_stock=stock,
            max_per_category=int(float(mpc)) if mpc and float(mpc) else None,
            category_level=int(float(level)),
            repurchase_days={
                k.lower() if k != "default" else k: float(v) if v is not None else None
                for k, v in repurchase.items()
            },
            items=tuple(items),
        )

    @classmethod
    def load(cls, workdir: str | Path) -> Rules:
        path = Path(workdir) / RULES_FILE
        if not path.exists():
            return cls()
        try:
            doc = json.loads(path.read_text())
        except ValueError as exc:
            raise ShelfwiseError(f"{path}: not valid JSON: {exc}") from None
        return cls.from_dict(doc, str(path))

    def _repurchase_window(self, category: str) -> float | None:
        best, best_len = self.repurchase_days.get("default"), -1
        low = category.lower()
        for prefix, days in self.repurchase_days.items():
            if prefix != "default" and low.startswith(prefix) and len(prefix) > best_len:
                best, best_len = days, len(prefix)
        return best

    def apply(
        self,
        ranked: Sequence[str],
        k: int,
        catalog: ItemInfo,
        *,
        surface: str,
        query: Asked = None,
        context: str | None = None,
        purchases: dict[str, float] | None = None,
        now: datetime | None = None,
        exclude: Collection[str] = (),
        pin_allowed: Callable[[str], bool] | None = None,
    ) -> list[str]:
        """The top `k` of `ranked` (product ids, best first) after the rules. `exclude`: products
        that must not be on this list at all, not even pinned (a similar-items list's anchor).
        `pin_allowed`: what else a pinned product must pass (a search's filters: a pinned bike
        lock is not on a page filtered to Electronics). A pin at a position beyond `k` is not on
        this list (the page that reaches its position has it), unless the list ends before."""
        now = now or datetime.now(UTC)
        active = [r for r in self.items if r.applies(surface, query, context, now)] if self.items else []
        hides = [r for r in active if r.action == "hide"]
        purchases = purchases or {}
        now_s = now.timestamp()
        excluded = frozenset(exclude)
        # a catalog of variants (`CatalogView.group_of`: a style's sizes and colours): one product
        # per group on a list, the best ranked that may be shown; an excluded product's group is
        # excluded (a similar list's anchor: not its other sizes), a bought product's group is
        # bought (a dress bought in M: not the S and the L)
        group_of = _grouping(catalog)
        excluded_groups = (
            frozenset(g for g in map(group_of, excluded) if g is not None) if group_of else frozenset()
        )
        bought_groups: dict[int, float] = {}
        if group_of is not None:
            for b, ts in purchases.items():
                g = group_of(b)
                if g is not None and ts > bought_groups.get(g, float("-inf")):
                    bought_groups[g] = ts

        def allowed(p: str) -> bool:
            if excluded and p in excluded:
                return False
            if not self._may_show(p, catalog, hides):
                return False
            g = group_of(p) if group_of is not None else None
            if excluded_groups and g in excluded_groups:
                return False
            bought = purchases.get(p) if purchases else None
            if bought is None and g is not None and bought_groups:
                bought = bought_groups.get(g)
            if bought is not None:
                window = self._repurchase_window(catalog[p][0])
                if window is None or now_s - bought < float(window) * 86400:
                    return False
            return True

        def one_per_group(items: Iterable[str]) -> list[str]:
            """The first product of each group in `items` (all of them without groups)."""
            if group_of is None:
                return list(items)
            seen: set[int] = set()
            out = []
            for p in items:
                g = group_of(p)
                if g is None or g not in seen:
                    if g is not None:
                        seen.add(g)
                    out.append(p)
            return out

        boosts = [r for r in active if r.action in ("boost", "bury")]
        n_pins = sum(1 for r in active if r.action == "pin")
        if boosts or self.max_per_category:
            kept = one_per_group(p for p in dict.fromkeys(ranked) if allowed(p))
        else:  # the common case: stop as soon as the page is full
            kept, taken = [], set()
            taken_groups: set[int] = set()
            need = k + n_pins
            for p in ranked:
                if p not in taken and allowed(p):
                    taken.add(p)
                    g = group_of(p) if group_of is not None else None
                    if g is not None:
                        if g in taken_groups:
                            continue
                        taken_groups.add(g)
                    kept.append(p)
                    if len(kept) >= need:
                        break
        if boosts:
            keyed = []
            for rank, p in enumerate(kept):
                category, brand, _ = catalog[p]
                pos, buried = float(rank), False
                for r in boosts:
                    if r.targets(p, category, brand):
                        if r.action == "boost":
                            pos /= r.factor
                        else:
                            buried = True
                keyed.append((buried, pos, rank, p))
            kept = [p for *_, p in sorted(keyed)]
        # a product is on a list once: of two pins of one product (say, one for a query and one
        # for every search) the one nearer the top places it
        pins: list[ItemRule] = []
        pinned: set[str | None] = set()
        pinned_groups: set[int] = set()
        for r in sorted((r for r in active if r.action == "pin"), key=lambda r: r.position):
            if (
                r.product_id
                and r.product_id not in pinned
                and allowed(r.product_id)
                and (pin_allowed is None or pin_allowed(r.product_id))
            ):
                g = group_of(r.product_id) if group_of is not None else None
                if g is not None and g in pinned_groups:
                    continue  # (a second pinned variant of a pinned style: one per group)
                if g is not None:
                    pinned_groups.add(g)
                pins.append(r)
                pinned.add(r.product_id)
        # (a pinned product is only at its position; a pinned variant stands for its group)
        kept = [
            p
            for p in kept
            if p not in pinned
            and not (pinned_groups and group_of is not None and group_of(p) in pinned_groups)
        ]
        within = [r for r in pins if r.position <= k]  # on this list; the others on a later page
        if self.max_per_category:
            kept = self._diversify(kept, k - len(within), catalog)
        out = kept[: max(k - len(within), 0)]
        for r in within:
            assert r.product_id is not None
            out.insert(min(r.position - 1, len(out)), r.product_id)
        for r in pins[len(within) :]:  # a list that ends before a pin's position ends with it
            if len(out) < k and r.product_id is not None:
                out.append(r.product_id)
        return out[:k]

    def search_counted(
        self,
        docs: np.ndarray,
        engine_index: Mapping[str, int],
        rows: np.ndarray,
        catalog: CatalogView,
        query: Asked,
        now: datetime | None = None,
        pin_allowed: Callable[[str], bool] | None = None,
    ) -> np.ndarray | None:
        """What a search page's `total` and facets count once these rules ran (None: `docs`
        unchanged, the common case): of `docs` (the
        engine's matching products, as its row numbers), those `apply` may show on a search
        for `query` (listed, in stock when filtered, not hidden), plus the products an active
        pin puts on the page. `engine_index`: the engine's row of each product id; `rows`: per engine row, the product's item index in `catalog` (-1: none). Position
        rules (boost, bury, the category cap) move products but show every one of them."""
        docs = np.asarray(docs, np.int64)
        kept = self.search_kept(docs, engine_index, rows, catalog, query, now, pin_allowed)
        grouped = catalog.one_per_group(kept, rows)  # (a catalog of variants: counted by style)
        if grouped is not None:
            kept = grouped
        return kept if kept is not docs else None

    def search_kept(
        self,
        docs: np.ndarray,
        engine_index: Mapping[str, int],
        rows: np.ndarray,
        catalog: CatalogView,
        query: Asked,
        now: datetime | None = None,
        pin_allowed: Callable[[str], bool] | None = None,
    ) -> np.ndarray:
        """`search_counted` before a catalog of variants is counted by style: of `docs`, the
        products the rules may show, plus the pinned ones (`docs` itself when that is all of
        them); every variant of a style kept (the attribute facets count a style under each
        of its variants' values)."""
        now = now or datetime.now(UTC)
        docs = np.asarray(docs, np.int64)
        active = [r for r in self.items if r.applies("search", query, None, now)] if self.items else []
        hides = [r for r in active if r.action == "hide"]
        gone = catalog.unavailable(rows[docs], out_of_stock=self.filter_out_of_stock)
        if hides:
            items = rows[docs]
            gone |= catalog.hidden(hides)[np.where(items >= 0, items, 0)]
        kept = docs[~gone] if gone.any() else docs
        pinned = []
        for r in active:
            if r.action != "pin" or r.product_id is None or r.product_id not in engine_index:
                continue
            if not self._may_show(r.product_id, catalog, hides):
                continue
            if pin_allowed is not None and not pin_allowed(r.product_id):
                continue  # (outside the search's filters: not on its page)
            pinned.append(engine_index[r.product_id])
        extra = np.setdiff1d(np.array(pinned, np.int64), kept) if pinned else ()
        if len(extra):
            kept = np.concatenate([kept, extra])
        return kept

    def _may_show(self, p: str, catalog: ItemInfo, hides: Sequence[ItemRule]) -> bool:
        """Whether any list may show product `p`: in the curated catalog, in stock when the
        out-of-stock filter is on, and not hidden by an active `hides` rule (what `apply`
        checks of every candidate and pin, less a request's own exclusions and purchases)."""
        info = catalog.get(p)
        if info is None:
            return False
        category, brand, in_stock = info
        if self.filter_out_of_stock and not in_stock:
            return False
        return not (hides and any(r.targets(p, category, brand) for r in hides))

    def _category(self, p: str, catalog: ItemInfo) -> str:
        return " > ".join(catalog[p][0].split(" > ")[: self.category_level])

    def crowded(self, items: Sequence[str], catalog: ItemInfo) -> bool:
        """Whether a list `apply` made holds more of one category than `max_per_category`: its
        candidates had too few of other categories, so the overflow filled the page (the caller
        adds candidates of other categories, the popular list, and applies the rules again)."""
        if not self.max_per_category:
            return False
        # (pins stand where they are put, outside the cap: a merchant pinning more of one
        # category than it allows would otherwise send every request to the fill)
        pinned = {r.product_id for r in self.items if r.action == "pin"}
        counts = Counter(self._category(p, catalog) for p in items if p in catalog and p not in pinned)
        return max(counts.values(), default=0) > self.max_per_category

    def _diversify(self, ranked: list[str], k: int, catalog: ItemInfo) -> list[str]:
        """Greedy: at most `max_per_category` per category among the first k; the overflow
        follows (a short list is better than an empty one)."""
        assert self.max_per_category is not None
        counts: dict[str, int] = {}
        top: list[str] = []
        rest: list[str] = []
        for p in ranked:
            cat = self._category(p, catalog)
            if len(top) < k and counts.get(cat, 0) < self.max_per_category:
                counts[cat] = counts.get(cat, 0) + 1
                top.append(p)
            else:
                rest.append(p)
        return top + rest

    def as_dict(self) -> dict[str, Any]:
        return {"version": self.version, "sha256": self.sha256, "rules": len(self.items)}


# product id -> (category path, brand, in stock)
ItemInfo = Mapping[str, tuple[str, str, bool]]


def _grouping(catalog: ItemInfo) -> Callable[[str], int | None] | None:
    """The catalog's product -> group (style) look-up, where it has groups (`CatalogView`)."""
    if not getattr(catalog, "has_groups", False):
        return None
    return catalog.group_of  # type: ignore[attr-defined, no-any-return]


# a catalog delivery that would leave fewer of the bundle's listed products than this share is not
# followed by served lists (`CatalogView.narrowed`)
MIN_CATALOG_KEPT = 0.5


class CatalogView(Mapping[str, tuple[str, str, bool]]):
    """`ItemInfo` over a bundle's per-item columns (memory-mapped, `_bundle`): the tuple of a
    product is made when it is looked up, instead of one per product held by every worker.
    Only the products of the curated catalog are in it (`Bundle.listed`): one known from events
    alone (its catalog row quarantined, or never delivered) is never allowed on a list."""

    def __init__(self, index: Mapping[str, int], bundle: Any):
        self._index = index
        self._cat, self._brand, self._stock = bundle.categories, bundle.brands, bundle.in_stock
        listed = getattr(bundle, "listed", None)
        self._listed = None if listed is None or bool(np.all(listed)) else np.asarray(listed, bool)
        self._base = self._listed  # the bundle's own: what `narrowed` narrows
        self._stock_base = self._stock
        self._hidden: dict[tuple[ItemRule, ...], np.ndarray] = {}
        groups = getattr(bundle, "groups", None)
        # per item index, its group's code (`Bundle.groups`); None: every product its own group
        self._group = None if groups is None else np.asarray(groups.codes, np.int64)
        self._depth: float | None = None

    @property
    def has_groups(self) -> bool:
        """Whether the bundle's catalog has product groups (`Bundle.groups`)."""
        return self._group is not None

    @property
    def group_depth(self) -> float:
        """Products per group on average (1.0 without groups): how much deeper than k a list
        must look for k groups, one product each (a similar-items list of a catalog of 12
        sizes and colours a style came back with 4 products of 50 candidates)."""
        if self._depth is None:
            g = self._group
            self._depth = 1.0 if g is None or not len(g) else len(g) / max(len(np.unique(g)), 1)
        return self._depth

    def narrowed(
        self,
        curated: frozenset[str] | None,
        stock: Mapping[str, bool] | None = None,
        unpublished: frozenset[str] = frozenset(),
    ) -> CatalogView:
        """This view narrowed to the products of the curated catalog now (`curated`,
        `storage.CuratedProducts`; None: the bundle's own), as a new view (a request holds one
        view from start to end): a product a catalog delivery dropped after the bundle was
        trained is on no list from then on (it was recommended, found and shown as similar
        until the next training). A catalog that would take away more than half of the bundle's
        products is not followed (a truncated export, ids written another way): logged, and
        the bundle's catalog stays in force until the next training. `stock`: the curated
        catalog's in_stock where it says it, over the bundle's (a stock feed delivered since the
        training: a sold-out product leaves the lists at once, a restocked one comes back).
        `unpublished`: the curated products a catalog delivery says are not published (a draft,
        private, archived): on no list from then on, pinned or not, as a dropped product (they
        were served, and a pin put them first, until the next training)."""
        out = copy.copy(self)
        out._hidden = {}
        out._stock = self._stock_base
        if stock:
            now_stock = np.array(self._stock_base, bool)
            for pid, flag in stock.items():
                i = self._index.get(pid)
                if i is not None:
                    now_stock[int(i)] = flag
            if not np.array_equal(now_stock, np.asarray(self._stock_base, bool)):
                out._stock = now_stock
        base = np.ones(len(self._cat), bool) if self._base is None else np.asarray(self._base, bool)
        now = base.copy()
        if curated is not None:
            held = np.zeros(len(self._cat), bool)
            for pid in curated:
                i = self._index.get(pid)
                if i is not None:
                    held[int(i)] = True
            held &= base
            kept, had = int(held.sum()), int(base.sum())
            # (the guard weighs the catalog's rows alone: a product whose row says it is not
            # published is there, and an archive of most of the range is not a truncated file)
            if kept < MIN_CATALOG_KEPT * had:
                log.warning(
                    "the curated catalog holds %d of the serving bundle's %d listed products: not followed "
                    "(a truncated or re-keyed catalog?); the bundle's catalog stays in force until the next "
                    "training (products it says are not published leave the lists still)",
                    kept,
                    had,
                )
            else:
                now = held
        for pid in unpublished:  # what a catalog row says outright, followed whatever the guard says
            i = self._index.get(pid)
            if i is not None:
                now[int(i)] = False
        out._listed = None if bool(now.all()) else now
        return out

    def hidden(self, hides: Sequence[ItemRule]) -> np.ndarray:
        """Per item index, whether one of the `hides` rules targets it (by product id, category
        or brand): made once per set of rules (a search's matches are counted after the rules,
        thousands of products a request)."""
        key = tuple(hides)
        got = self._hidden.get(key)
        if got is None:
            got = np.zeros(len(self._cat), bool)
            for r in hides:
                if r.product_id is not None:
                    i = self._index.get(r.product_id)
                    if i is not None:
                        got[int(i)] = True
            by_value = [r for r in hides if r.product_id is None]
            if by_value:
                seen: dict[tuple[str, str], bool] = {}
                for i, (category, brand) in enumerate(zip(self._cat, self._brand, strict=True)):
                    hit = seen.get((category, brand))
                    if hit is None:
                        hit = seen[(category, brand)] = any(r.targets("", category, brand) for r in by_value)
                    if hit:
                        got[i] = True
            if len(self._hidden) >= 16:  # (rules with a schedule or a query come and go)
                self._hidden.clear()
            self._hidden[key] = got
        return got

    def group_of(self, product_id: object) -> int | None:
        """The group (style) of a product, as a code (None: the catalog has no groups, or the
        product is not the bundle's)."""
        if self._group is None:
            return None
        i = self._index.get(product_id)  # type: ignore[call-overload]
        return None if i is None else int(self._group[i])

    def group_rows(self, rows: np.ndarray) -> np.ndarray | None:
        """Per item index in `rows` (-1: a product the bundle does not have, its own group), the
        group code; None where the catalog has no groups."""
        if self._group is None:
            return None
        rows = np.asarray(rows, np.int64)
        n = len(self._group)
        # (a row the bundle lacks: a code of its own, past every group's)
        return np.where(rows >= 0, self._group[np.where(rows >= 0, rows, 0)], n + np.arange(len(rows)))

    def one_per_group(self, docs: np.ndarray, rows: np.ndarray) -> np.ndarray | None:
        """Of a search's matching products `docs` (engine rows; `rows`: per engine row, its item
        index here), the first of each group: what `total` and the facets count in a catalog of
        variants (None: no groups, or one product per group already)."""
        docs = np.asarray(docs, np.int64)
        codes = self.group_rows(rows[docs])
        if codes is None:
            return None
        _, first = np.unique(codes, return_index=True)
        return docs[np.sort(first)] if len(first) < len(docs) else None

    def _at(self, product_id: object) -> int | None:
        i = self._index.get(product_id)  # type: ignore[call-overload]
        if i is None or (self._listed is not None and not self._listed[i]):
            return None
        return int(i)

    def __getitem__(self, product_id: str) -> tuple[str, str, bool]:
        i = self._at(product_id)
        if i is None:
            raise KeyError(product_id)
        return self._cat[i], self._brand[i], bool(self._stock[i])

    def get(self, product_id: str, default: Any = None) -> Any:  # (the rules' hot path)
        i = self._at(product_id)
        return default if i is None else (self._cat[i], self._brand[i], bool(self._stock[i]))

    def __contains__(self, product_id: object) -> bool:
        return self._at(product_id) is not None

    def unavailable(self, rows: np.ndarray, *, out_of_stock: bool) -> np.ndarray:
        """Per item index in `rows` (-1: a product the bundle does not have), whether no list may
        show it whatever the rules say: not in the curated catalog, or out of stock when
        `out_of_stock` (vectorized `get`, for counting a search's matches after the rules)."""
        rows = np.asarray(rows, np.int64)
        known = rows >= 0
        at = np.where(known, rows, 0)
        gone = ~known
        if self._listed is not None:
            gone |= ~self._listed[at]
        if out_of_stock:
            gone |= ~np.asarray(self._stock, bool)[at]
        return gone

    def __iter__(self) -> Iterator[str]:
        if self._listed is None:
            return iter(self._index)
        return (p for p, i in self._index.items() if self._listed[i])

    def __len__(self) -> int:
        return len(self._index) if self._listed is None else int(self._listed.sum())


def write_json_atomically(path: Path, doc: Any) -> None:
    """A configuration file appears whole or not at all (a running server may be reading it),
    written through a temporary file of its own (two writers never share one)."""
    _write_atomically(path, json.dumps(doc, indent=2, ensure_ascii=False))


def _write_atomically(path: Path, text: str) -> None:
    import tempfile

    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.chmod(name, 0o644)  # (mkstemp's 0600: a server run by another user reads the config)
        os.replace(name, path)
    except BaseException:
        Path(name).unlink(missing_ok=True)
        raise


@contextmanager
def config_lock(workdir: str | Path, name: str) -> Iterator[None]:
    """One writer at a time of a configuration file (`config/.<name>.lock`): the console and the
    CLI changing the rules together each read the current version, and one version number was
    given twice (the other change lost)."""
    from ..storage._segments import folder_lock

    folder = Path(workdir) / "config"
    folder.mkdir(parents=True, exist_ok=True)
    with folder_lock(folder, shared=False, name=f".{name}.lock"):
        yield


def rules_installed(workdir: str | Path, version: int) -> dict[str, Any]:
    """Who installed rules version `version`, and when (`installed_by`, `installed_at`), from
    the audit trail's `rules.change` entry of it (None each where the trail has none: version
    0, or a file installed by hand)."""
    from ..governance import AuditLog

    if version:
        for e in reversed(AuditLog(workdir).entries()):
            d = e.get("details") or {}
            if e.get("action") == "rules.change" and not d.get("what") and d.get("version") == version:
                return {"installed_by": e.get("actor"), "installed_at": e.get("at")}
    return {"installed_by": None, "installed_at": None}


def save_rules(
    workdir: str | Path,
    doc: dict[str, Any],
    actor: str = "cli",
    *,
    said: list[str] | None = None,
    if_changed: bool = False,
) -> Rules:
    """Validate and install a new rules file: the version is bumped (written first in the
    file), the previous one kept under config/rules-history/, and the change audited; one
    change at a time. What it warns about (`RulesWarning`) is appended to `said` when given (a
    server's thread: no process-wide warning filters), else warned. `if_changed`: rules the
    same as those in force (the console's text saved again) install nothing and return those in
    force (their version unchanged); they made a new version each."""
    from ..governance import AuditLog

    if not isinstance(doc, dict):  # ([] would have installed an empty rule set)
        raise ShelfwiseError(
            f'the rules must be a JSON object ({{"items": [...], ...}}), not {_json_kind(doc)}'
        )
    workdir = Path(workdir)
    with config_lock(workdir, "rules"):
        current = Rules.load(workdir)
        path = workdir / RULES_FILE
        if if_changed and path.exists():
            try:
                before = json.loads(path.read_text())
            except ValueError:
                before = None
            if isinstance(before, dict):
                before.pop("version", None)
                if before == {k: v for k, v in doc.items() if k != "version"}:
                    return current
        doc = {"version": current.version + 1, **{k: v for k, v in doc.items() if k != "version"}}
        rules = Rules.from_dict(doc)
        warned: list[str] = []  # (recorded in the change's audit entry, then said)
        _check_new_rules(doc, rules, workdir, warned)
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.exists():
            hist = workdir / "config" / "rules-history"
            hist.mkdir(exist_ok=True)
            _write_atomically(hist / f"rules-v{current.version}.json", path.read_text())
        write_json_atomically(path, doc)
        AuditLog(workdir).append(
            "rules.change",
            actor=actor,
            version=rules.version,
            sha256=rules.sha256,
            previous_version=current.version,
            rules=len(rules.items),
            warnings=warned,
        )
        for w in warned:
            _say(said, w)
        return rules


log = logging.getLogger(__name__)


class RulesWarning(UserWarning):
    """A rule installed as written that probably does not do what was meant (a pin of a product
    the catalog does not hold, a pin and a hide of one product on one query)."""


def _warn_unmatched(rules: Rules, workdir: Path, said: list[str] | None) -> None:
    """Say a rule of a category or a brand that no product of the current bundle's catalog is
    in (a boost of "... > Cooking" where the catalog says "... > Cookbooks" installed without a
    word and did nothing): categories are matched from their start, case aside."""
    targeted = [(i, r) for i, r in enumerate(rules.items) if r.product_id is None and (r.category or r.brand)]
    if not targeted:
        return
    try:
        from ._bundle import _load_catalog, current_bundle

        _, categories, brands, _, _ = _load_catalog(current_bundle(workdir))
        paths = {str(c).lower() for c in getattr(categories, "values", categories)}
        names = {str(b).lower() for b in getattr(brands, "values", brands)}
    except (ShelfwiseError, OSError, KeyError, ValueError):
        return  # (no bundle yet: nothing to check against)
    for i, r in targeted:
        if r.category is not None and not any(p.startswith(r.category) for p in paths):
            near = sorted(p for p in paths if p.split(" > ")[0] == r.category.split(" > ")[0])[:3]
            _say(
                said,
                f"items[{i}]: {r.action}s category {r.category!r}, which no product of the current bundle's "
                f"catalog is in (matched from the path's start)"
                + (f"; the catalog has e.g. {near}" if near else ""),
            )
        elif r.category is None and r.brand is not None and r.brand not in names:
            _say(
                said,
                f"items[{i}]: {r.action}s brand {r.brand!r}, which no product of the current bundle's catalog has",
            )


def _check_new_rules(doc: dict[str, Any], rules: Rules, workdir: Path, said: list[str] | None) -> None:
    """What `rules set` refuses beyond a file `Rules.from_dict` can read (files installed
    before these checks still load at serve time): a rule that can never be in force (its
    start not before its end, `"surfaces": []`, a blank query); and what it warns about."""

    for i, (r, item) in enumerate(zip(doc.get("items") or [], rules.items, strict=True)):
        where = f"items[{i}]"
        if item.start is not None and item.end is not None and item.start >= item.end:
            raise ShelfwiseError(
                f"{where}: start {r.get('start')} is not before end {r.get('end')}: never in force"
            )
        if isinstance(r.get("surfaces"), list | tuple) and not r["surfaces"]:
            raise ShelfwiseError(
                f"{where}: surfaces [] names no surface; leave it out for every surface, or name them "
                f"among {SURFACES}"
            )
        if r.get("query") is not None and not str(r["query"]).strip():
            raise ShelfwiseError(f"{where}: a blank query matches no search; leave it out for every query")
    _warn_unmatched(rules, workdir, said)
    _warn_products(rules, workdir, said)
    _warn_ended(rules, said)
    _warn_same_position(rules, said)


@dataclass
class _CatalogNow:
    """What a new rule's product is checked against at install: the curated catalog now
    (`storage.CuratedProducts`: its ids, stock and what it says is not published, as serving
    reads them) over the current bundle's (each product's category and brand, and what it
    serves)."""

    curated: frozenset[str] | None  # None: no curated ids recorded (checked against the bundle)
    bundle: set[str] | None  # the bundle's listed products (None: no bundle)
    unpublished: frozenset[str]
    in_stock: dict[str, bool]
    info: dict[str, tuple[str, str]]  # product -> (category, brand), of the bundle's catalog


def _catalog_now(workdir: Path) -> _CatalogNow | None:
    from ..storage._product_ids import CuratedProducts
    from ._bundle import _load_catalog, current_bundle

    products = CuratedProducts(workdir)
    curated = products.get()
    bundle: set[str] | None = None
    stock: dict[str, bool] = {}
    info: dict[str, tuple[str, str]] = {}
    try:
        path = current_bundle(workdir)
        # the catalog's ids alone (not every user's history): one member of the archive
        with np.load(path / "interactions.npz", allow_pickle=False) as z:
            ids = [str(p) for p in z["item_ids"]]
    except (ShelfwiseError, OSError, KeyError):
        ids = None  # (no bundle yet)
    if ids is not None:
        try:
            in_stock, categories, brands, _, listed = _load_catalog(path)
            bundle = {p for n, p in enumerate(ids) if listed is None or bool(listed[n])}
            for n, p in enumerate(ids):
                stock[p] = bool(in_stock[n])
                info[p] = (str(categories[n]), str(brands[n]))  # (coded: each item's value)
        except (OSError, KeyError, ValueError, IndexError):
            bundle = set(ids)  # (a bundle without its catalog: its ids alone)
    if curated is None and bundle is None:
        return None
    stock.update(products.stock() or {})
    return _CatalogNow(curated, bundle, products.unpublished(), stock, info)


def _warn_products(rules: Rules, workdir: Path, said: list[str] | None) -> None:
    """Say a pin or a boost of a product no list will show: one the curated catalog does not
    hold (quarantined at ingest, removed by a later load: they were checked against the ids
    seen in events, and passed), one it says is not published, one out of stock (while the
    out-of-stock filter is on), one the current bundle does not hold yet; and a pin of a product
    another rule of the set hides, by its id, its category or its brand."""
    named = [(i, r) for i, r in enumerate(rules.items) if r.action in ("pin", "boost") and r.product_id]
    if not named:
        return
    now = _catalog_now(workdir)
    for i, r in named:
        pid = str(r.product_id)
        verb = f"{r.action}s"
        if now is not None:
            if now.curated is not None and pid not in now.curated:
                _say(
                    said,
                    f"items[{i}]: {verb} {pid}, which the curated catalog does not hold (quarantined at "
                    "ingest, removed by a catalog load, or never delivered): it is on no list",
                )
            elif pid in now.unpublished:
                _say(
                    said,
                    f"items[{i}]: {verb} {pid}, which the catalog says is not published (a draft, private "
                    "or archived product): it is on no list",
                )
            elif now.bundle is not None and pid not in now.bundle:
                _say(
                    said,
                    f"items[{i}]: {verb} {pid}, which the current bundle's catalog does not hold (new in the "
                    "catalog, or not published, when it was trained): it is on no list until a training "
                    "serves it",
                )
            elif rules.filter_out_of_stock and now.in_stock.get(pid) is False:
                _say(
                    said,
                    f"items[{i}]: {verb} {pid}, which is out of stock: it is on no list while it is "
                    "(filter_out_of_stock)",
                )
        if r.action != "pin":
            continue
        category, brand = now.info.get(pid, ("", "")) if now is not None else ("", "")
        for j, other in enumerate(rules.items):
            overlapping = (
                other.action == "hide"
                and other.targets(pid, category, brand)
                and other.query in (None, r.query)
                and set(other.surfaces) & set(r.surfaces)
            )
            if not overlapping:
                continue
            by = (
                ""
                if other.product_id is not None
                else f" by its category {category!r}"
                if other.category is not None
                else f" by its brand {brand!r}"
            )
            _say(
                said,
                f"items[{i}] pins {pid} and items[{j}] hides it{by}"
                f"{' on ' + repr(r.query) if r.query else ''}: the hide wins",
            )


def _warn_ended(rules: Rules, said: list[str] | None) -> None:
    """Say a rule whose dates ended already: never in force again (a start not before its end
    is refused; an end in the past was installed without a word)."""
    now = datetime.now(UTC)
    for i, r in enumerate(rules.items):
        if r.end is not None and r.end <= now:
            _say(said, f"items[{i}]: its end {r.end.isoformat()} has passed: the rule is never in force")


def _warn_same_position(rules: Rules, said: list[str] | None) -> None:
    """Say pins that claim one position of one list (the same query, a surface in common): the
    last of them in the file takes it, the others follow it, last first (`Rules.apply`)."""
    now = datetime.now(UTC)
    # (a pin whose window ended is never in force: said on its own; a pin for every query
    # (`query` None) meets one for a query on that query's list)
    pins = [
        (i, r)
        for i, r in enumerate(rules.items)
        if r.action == "pin" and not (r.end is not None and r.end <= now)
    ]
    done: set[int] = set()
    for n, (i, r) in enumerate(pins):
        if i in done:
            continue
        same = [(i, r)] + [
            (j, o)
            for j, o in pins[n + 1 :]
            if o.position == r.position
            and (o.query is None or r.query is None or o.query == r.query)
            and set(o.surfaces) & set(r.surfaces)
            and _windows_meet(o, r)
        ]
        if len(same) < 2:
            continue
        done.update(j for j, _ in same)
        last_j, last = same[-1]
        if len({o.query for _, o in same}) > 1:  # a pin for every query among pins for one query
            which = ", ".join(
                f"items[{j}] ({o.product_id}, {'on ' + repr(o.query) if o.query else 'every query'})"
                for j, o in same
            )
            _say(
                said,
                f"{which} pin position {r.position}: on a query they share, the last of them in the file "
                "takes it, and the others follow it, the later first",
            )
            continue
        which = ", ".join(f"items[{j}] ({o.product_id})" for j, o in same)
        _say(
            said,
            f"{which} all pin position {r.position}{' on ' + repr(r.query) if r.query else ''}: the last, "
            f"items[{last_j}] ({last.product_id}), takes it, and the others follow it, the later first",
        )


def _windows_meet(a: ItemRule, b: ItemRule) -> bool:
    """Whether two rules' date windows share a moment (no start: since ever; no end: for ever):
    back-to-back campaign pins at one position never compete."""
    lo = max((x for x in (a.start, b.start) if x is not None), default=None)
    hi = min((x for x in (a.end, b.end) if x is not None), default=None)
    return lo is None or hi is None or lo < hi


def _say(said: list[str] | None, message: str) -> None:
    """A `RulesWarning` warned (`rules set`, the Python API), or kept in `said` (the console)."""
    if said is not None:
        said.append(message)
        return
    import warnings

    warnings.warn(RulesWarning(message), stacklevel=3)


def _json_kind(doc: Any) -> str:
    """What a parsed JSON document is, in words (for an error)."""
    if doc is None:
        return "null"
    if isinstance(doc, bool):
        return "a boolean"
    if isinstance(doc, int | float):
        return "a number"
    if isinstance(doc, str):
        return "a string"
    if isinstance(doc, list):
        return "a list"
    return type(doc).__name__
