"""Sizes written alike meet (`_units`), and the ranker's measure columns, with known answers."""

from __future__ import annotations

import numpy as np
import pytest

from shelfwise.search import FEATURES, SearchCatalog, SearchEngine
from shelfwise.search._units import measures

COL = {n: j for j, n in enumerate(FEATURES)}


def test_fractions_units_and_dimensions_are_normalised():
    half = measures("1/2 in. x 10 ft. PVC pipe")
    assert half.numbers == {"0.5", "10"} and half.pairs == {("0.5", "in"), ("10", "ft")}
    assert measures("0.5 inch pvc").pairs == {("0.5", "in")}
    assert measures('1-1/2" drain').numbers == {"1.5"}  # a mixed number, not 1 and 0.5
    assert measures("1 1/2 in drain").pairs == {("1.5", "in")}
    assert measures('36" vanity').pairs == {("36", "in")}
    assert measures("5 gallons").pairs == measures("5 gal. bucket").pairs == {("5", "gal")}
    assert measures("2x4x8 lumber").numbers == {"2", "4", "8"}
    # a unit word counts as one only after a number; words are stemmed as the analyzer stems
    assert "ft" in measures("6 feet ladder").words and "ft" not in measures("feet warmer").words
    assert "x" not in half.words and "pipe" in half.words
    assert measures("").words == frozenset()


def test_engine_fills_the_measure_columns(tmp_path):
    ids = ["half", "one-half", "other"]
    titles = ["0.5 inch PVC pipe 10 ft", "1-1/2 in. PVC pipe", "Garden hose 50 ft"]
    eng = SearchEngine(tmp_path / "s", candidates=3).build(SearchCatalog(ids, titles))
    cands, x = eng._features(eng._query("1/2 in. pvc pipe"), None)
    row = {eng.catalog.product_ids[int(d)]: x[j] for j, d in enumerate(cands)}
    assert row["half"][COL["number_units"]] == pytest.approx(1.0)
    assert row["one-half"][COL["number_units"]] == pytest.approx(0.0)
    assert row["half"][COL["numbers_normalised"]] == pytest.approx(1.0)
    assert row["half"][COL["measure_coverage"]] == pytest.approx(1.0)
    assert row["half"][COL["measure_coverage"]] > row["one-half"][COL["measure_coverage"]]
    # a query without a number: the number columns say so (-1), not "none matched"
    _, x = eng._features(eng._query("pvc pipe"), None)
    assert (x[:, COL["numbers_normalised"]] == -1).all() and (x[:, COL["number_units"]] == -1).all()


def _measure_match(query, titles: list[str]):
    from shelfwise.search._compact import Strings
    from shelfwise.search._units import MeasureRows, encode_measures

    rows = MeasureRows(Strings.of(encode_measures(measures(t)) for t in titles))
    return rows.match(np.arange(len(titles)), query)


def test_measure_match_shares_with_known_answers():
    titles = ["PVC Pipe 1/2 in. x 10 ft.", "Garden Hose 50 ft", ""]
    got = _measure_match(measures('10 ft 0.5" pipe'), titles)
    # query: words {10, ft, 0.5, pipe} (a quote mark pairs its number, it is no word), numbers
    # {10, 0.5}, pairs {(10, ft), (0.5, in)}
    assert got[0].tolist() == [1.0, 1.0, 1.0]
    assert got[1].tolist() == [pytest.approx(1 / 4), 0.0, 0.0]
    assert got[2].tolist() == [0.0, 0.0, 0.0]
    assert _measure_match(measures("garden hose"), titles)[:, 1:].tolist() == [[-1.0, -1.0]] * 3
    assert _measure_match(measures("hose"), []).shape == (0, 3)


def test_measures_survive_the_compact_table_encoding():
    from shelfwise.search._compact import Strings
    from shelfwise.search._units import MeasureRows, encode_measures

    titles = ["1-1/2 in. PVC pipe 10 ft.", '36" vanity | top', "", "2 x 4 x 8 ft. stud 12345678901", "a:b c"]
    rows = MeasureRows(Strings.of(encode_measures(measures(t)) for t in titles))
    assert [rows[i] for i in range(len(titles))] == [measures(t) for t in titles]


def test_long_and_model_numbers_are_kept_whole_and_never_crash():
    # 7+ digit model numbers stay apart (6 significant digits made 1234567 and 1234571 one number)
    assert measures("hd 1234567 drill").numbers != measures("hd 1234571 drill").numbers
    assert measures("007 drill").numbers == measures("7 drill").numbers == {"7"}
    assert measures("2.50 gal").pairs == measures("2.5 gallon").pairs == {("2.5", "gal")}
    # a query of digits over a slash: no float overflow, no fraction made of it
    assert "3" in measures("1" + "0" * 400 + "/3 in pipe").numbers
