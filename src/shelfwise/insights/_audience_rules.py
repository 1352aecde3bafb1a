"""The rule language of marketing audiences: a boolean expression over the customer profile.

    churn_risk > 0.6 and segment == 'loyal'
    segment in ['at_risk', 'cant_lose'] and expected_value >= 100
    'Home > Kitchen' in top_categories and not price_level == 'budget'
    'Bikes' in viewed_categories and 'Bikes' not in bought_categories
    0.2 < churn_risk <= 0.8

It is parsed with Python's own parser (`ast`, mode "eval") and evaluated by walking the tree
over the profile table, so only the forms below exist: there is no `eval`, no attribute, call
or arithmetic. A comparison puts a profile field on one side and a literal on the other (chains
such as `0.2 < churn_risk <= 0.8` too); `and`, `or`, `not` and parentheses combine them. A
missing value (no orders yet: no price level) matches no comparison. A mistake names the rule,
the column where it is and what is allowed.
"""

from __future__ import annotations

import ast
from typing import Any

import numpy as np
import pandas as pd

from ..errors import ShelfwiseError

NUMERIC = ("recency_days", "frequency", "monetary", "expected_purchases", "churn_risk", "expected_value")
TEXT = ("segment", "price_level")
# (viewed_categories and bought_categories: a user's browsing of the last RETARGET_DAYS days and
# every category bought, each with its ancestors; read by audience rules, not in the profile file)
LISTS = ("top_categories", "top_brands", "viewed_categories", "bought_categories")
FIELDS = (*NUMERIC, *TEXT, *LISTS)
PRICE_LEVELS = ("budget", "mid", "premium")

_OPS: dict[type, str] = {
    ast.Gt: ">", ast.GtE: ">=", ast.Lt: "<", ast.LtE: "<=", ast.Eq: "==", ast.NotEq: "!=",
    ast.In: "in", ast.NotIn: "not in",
}  # fmt: skip
_FLIP = {">": "<", ">=": "<=", "<": ">", "<=": ">=", "==": "==", "!=": "!="}


class RuleError(ShelfwiseError):
    """A rule that does not parse or does not fit the profile's fields."""


class Rule:
    """A parsed rule: `Rule(text).mask(profiles)` is the boolean Series of the users it selects."""

    def __init__(self, text: str):
        self.text = text.strip()
        if not self.text:
            raise RuleError("--rule: an empty rule (e.g. \"churn_risk > 0.6 and segment == 'loyal'\")")
        try:
            self._tree = ast.parse(self.text, mode="eval").body
        except SyntaxError as exc:
            raise RuleError(
                f"rule {self.text!r}: not an expression (column {exc.offset}: {exc.msg})"
            ) from None
        self._check(self._tree)

    @property
    def fields(self) -> set[str]:
        """The profile fields the rule reads."""
        return {n.id for n in ast.walk(self._tree) if isinstance(n, ast.Name)}

    # -- validation (before any data is read: a typo fails at once) ---------------------------
    def _fail(self, node: ast.AST, why: str) -> RuleError:
        col = getattr(node, "col_offset", None)
        where = f" (column {col + 1})" if col is not None else ""
        return RuleError(f"rule {self.text!r}{where}: {why}")

    def _check(self, node: ast.AST) -> None:
        if isinstance(node, ast.BoolOp):
            for v in node.values:
                self._check(v)
        elif isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
            self._check(node.operand)
        elif isinstance(node, ast.Compare):
            left = node.left
            for op, right in zip(node.ops, node.comparators, strict=True):
                self._comparison(left, op, right)
                left = right
        else:
            raise self._fail(
                node,
                "only comparisons of a profile field with a value, joined by and / or / not "
                f"(fields: {', '.join(FIELDS)})",
            )

    def _field(self, node: ast.AST) -> str | None:
        if isinstance(node, ast.Name):
            if node.id not in FIELDS:
                raise self._fail(node, f"unknown field {node.id!r}; fields: {', '.join(FIELDS)}")
            return node.id
        return None

    def _literal(self, node: ast.AST) -> Any:
        try:
            value = ast.literal_eval(node)
        except ValueError:
            raise self._fail(node, "compare a field with a number, a 'text' or a list of them") from None
        if isinstance(value, tuple | list | set):
            value = list(value)
            if not all(isinstance(v, str | int | float) and not isinstance(v, bool) for v in value):
                raise self._fail(node, "a list may hold numbers and 'texts' only")
        elif not isinstance(value, str | int | float) or isinstance(value, bool):
            raise self._fail(node, "compare a field with a number, a 'text' or a list of them")
        return value

    def _comparison(self, left: ast.AST, op: ast.cmpop, right: ast.AST) -> tuple[str, str, Any]:
        sym = _OPS.get(type(op))
        if sym is None:
            raise self._fail(left, f"unsupported comparison {type(op).__name__}")
        lf, rf = self._field(left), self._field(right)
        if (lf is None) == (rf is None):
            raise self._fail(left, "a comparison needs one profile field and one value")
        if lf is not None:
            field, value = lf, self._literal(right)
        else:
            assert rf is not None
            if sym in ("in", "not in"):  # 'Books' in top_categories
                field, value = rf, self._literal(left)
                if field not in LISTS:
                    raise self._fail(left, f"'x in FIELD' needs a list field ({', '.join(LISTS)})")
                if not isinstance(value, str):
                    raise self._fail(left, f"'x in {field}': x must be a 'text'")
                return field, sym, value
            field, value, sym = rf, self._literal(left), _FLIP[sym]
        if field in LISTS:
            raise self._fail(left, f"{field} is a list: ask \"'NAME' in {field}\"")
        if sym in ("in", "not in"):
            if not isinstance(value, list):
                raise self._fail(right, f"'{field} {sym} ...' needs a list, e.g. ['a', 'b']")
            values = value
        else:
            values = [value]
        if field in NUMERIC:
            if sym not in ("in", "not in") and not all(isinstance(v, int | float) for v in values):
                raise self._fail(right, f"{field} is a number; compare it with a number")
        else:
            if not all(isinstance(v, str) for v in values):
                raise self._fail(right, f"{field} is a text; compare it with a 'text'")
            if sym in (">", ">=", "<", "<="):
                raise self._fail(right, f"{field} is a text: use ==, !=, in or not in")
            from ._customers import SEGMENTS

            known = SEGMENTS if field == "segment" else PRICE_LEVELS
            bad = [v for v in values if v not in known]
            if bad:
                raise self._fail(right, f"{bad[0]!r} is not a {field} (one of {', '.join(known)})")
        return field, sym, value

    # -- evaluation ---------------------------------------------------------------------------
    def mask(self, profiles: pd.DataFrame) -> pd.Series:
        """Which rows of `profiles` (PROFILE_COLUMNS) the rule selects."""
        return self._eval(self._tree, profiles).fillna(False).astype(bool)

    def _eval(self, node: ast.AST, p: pd.DataFrame) -> pd.Series:
        if isinstance(node, ast.BoolOp):
            parts = [self._eval(v, p) for v in node.values]
            out = parts[0]
            for x in parts[1:]:
                out = (out & x) if isinstance(node.op, ast.And) else (out | x)
            return out
        if isinstance(node, ast.UnaryOp):
            return ~self._eval(node.operand, p)
        assert isinstance(node, ast.Compare)
        out = pd.Series(True, index=p.index)
        left = node.left
        for op, right in zip(node.ops, node.comparators, strict=True):
            out &= self._compare(p, *self._comparison(left, op, right))
            left = right
        return out

    @staticmethod
    def _compare(p: pd.DataFrame, field: str, sym: str, value: Any) -> pd.Series:
        col = p[field]
        if field in LISTS:
            hit = col.map(lambda v: isinstance(v, list) and value in v).astype(bool)
            return hit if sym == "in" else ~hit
        present = col.notna()
        if field in NUMERIC:
            col = pd.to_numeric(col, errors="coerce")
        if sym in ("in", "not in"):
            hit = col.isin(value)
            return (hit if sym == "in" else ~hit) & present
        ops = {
            ">": np.greater, ">=": np.greater_equal, "<": np.less, "<=": np.less_equal,
            "==": np.equal, "!=": np.not_equal,
        }  # fmt: skip
        return (
            pd.Series(
                ops[sym](col.where(present, other=np.nan if field in NUMERIC else ""), value), index=p.index
            )
            & present
        )


__all__ = ["FIELDS", "LISTS", "NUMERIC", "TEXT", "Rule", "RuleError"]
