"""Answering recommendation requests from a bundle, in the shop's own ids.

User ids arrive raw and are pseudonymized with the workdir's key (the bundle only knows
pseudonyms); product ids go out as the shop's own. A user the bundle has never seen gets the
cold-start list (popularity; for a shop with no events yet, the items its search judgments
found relevant, then catalog order), never an error.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..features import Interactions
from ..governance import Pseudonymizer
from ._bundle import Bundle


class Recommendations:
    def __init__(self, bundle: Bundle, pseudonymize: Pseudonymizer):
        self.bundle = bundle
        self.pseudonymize = pseudonymize
        self._user_index = {u: i for i, u in enumerate(bundle.interactions.user_ids)}
        self._item_index = {p: i for i, p in enumerate(bundle.interactions.item_ids)}
        pop = bundle.models.get("popularity")
        counts = bundle.interactions.item_counts().astype(np.float64)
        self._cold_scores = pop.score(np.array([0]))[0] if pop is not None else counts  # type: ignore[union-attr]
        self._cold_order = np.argsort(-np.asarray(self._cold_scores), kind="stable")
        if "cold_start" in bundle.arrays:  # the order training chose (ties broken for a new shop)
            self._cold_order = bundle.arrays["cold_start"]

    def model_name(self, model: str | None) -> str:
        name = model or self.bundle.manifest["default_model"]
        if name not in self.bundle.models:
            raise KeyError(
                f"model {name!r} is not in bundle {self.bundle.version} ({sorted(self.bundle.models)})"
            )
        return name

    def knows_context(self, context: str) -> bool:
        """Whether some category path of the bundle starts with `context` (as `cold_start` reads
        it): an unknown one steers nothing, the cold-start list is the shop-wide one."""
        pre = context.strip().lower()
        return any(v.lower().startswith(pre) for v in self.bundle.categories.values)

    def cold_start(self, k: int, context: str | None = None, exclude: set[int] | None = None) -> list[int]:
        """Popular items; with a `context` (a category path prefix such as "Home > Kitchen"),
        popular within that category first, then the overall list."""
        exclude = exclude or set()
        out: list[int] = []
        if context:
            pre = context.strip().lower()
            cats = self.bundle.categories  # coded paths (`_bundle`): each distinct path tested once
            hit = np.array([j for j, v in enumerate(cats.values) if v.lower().startswith(pre)], np.int32)
            order = self._cold_order[np.isin(np.asarray(cats.codes)[self._cold_order], hit)]
            out = [int(i) for i in order[: k + len(exclude)] if int(i) not in exclude][:k]
        taken = set(out) | exclude
        out += [int(i) for i in self._cold_order[: k + len(taken)] if int(i) not in taken][: k - len(out)]
        return out

    def for_users(
        self,
        raw_user_ids: list[str],
        k: int = 10,
        model: str | None = None,
        explain: bool = False,
        context: str | None = None,
    ) -> list[dict[str, Any]]:
        name = self.model_name(model)
        rec = self.bundle.models[name]
        item_ids = self.bundle.interactions.item_ids
        idx = [self._user_index.get(self.pseudonymize(str(u))) for u in raw_user_ids]
        known = [i for i in idx if i is not None]
        out_known: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        if known:
            r = rec.recommend(np.array(known), k, exclude_seen=True)
            for row, u in enumerate(known):
                out_known[u] = (r.ids[row], r.scores[row])
        answers = []
        for raw, maybe_u in zip(raw_user_ids, idx, strict=True):
            if maybe_u is None:
                top = self.cold_start(k, context)
                answers.append(
                    {"user_id": raw, "items": [str(item_ids[i]) for i in top], "source": "cold_start"}
                )
                continue
            u = maybe_u
            ids, _ = out_known[u]
            ids = ids[ids >= 0]
            if len(ids) < k:  # a model with few candidates: fill from the cold-start list
                seen = set(self.bundle.interactions.sequence(u).tolist()) | set(ids.tolist())
                fill = [i for i in self._cold_order[: k + len(seen)] if i not in seen][: k - len(ids)]
                ids = np.concatenate([ids, np.array(fill, dtype=ids.dtype)])
            ans: dict[str, Any] = {"user_id": raw, "items": [str(item_ids[i]) for i in ids], "source": name}
            if explain:
                ans["because"] = self.explain(u, int(ids[0]), name) if len(ids) else []
            answers.append(ans)
        return answers

    def explain(self, user: int, item: int, model: str | None = None) -> list[str]:
        """The user's recent items that most raise `item`'s score under the transitions or
        item-neighbour model (the most readable reason): `model`'s own when it is one of them,
        else the first that finds any (transitions asked alone said nothing for most long
        sessions whose items item-kNN links); none when the bundle has neither (the user's latest
        items, given as "because" of any item, explained nothing)."""
        inter = self.bundle.interactions
        single = Interactions.of_one_user(inter.sequence(user), inter.item_ids)
        order: tuple[str, ...] = ("transitions", "itemknn")
        if model in order:
            order = (model, *(n for n in order if n != model))
        for name in order:
            m = self.bundle.models.get(name)
            found = m.explain(0, item, history=single) if m is not None else []
            if found:
                return [str(inter.item_ids[c["item"]]) for c in found]
        return []
