"""The cold-start list is diverse by category (round-robin over the categories, in the order of
their best product by popularity or judged gain), deterministic, and the signal's order where
there is one category."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from shelfwise.features import load_interactions
from shelfwise.governance import Ingestor
from shelfwise.lifecycle._cold_start import diverse_cold_start

CATS = ["Tools > Drills"] * 3 + ["Garden > Hoses"] * 2 + ["Kitchen"] * 2


def test_round_robin_over_categories_by_popularity():
    pop = np.array([10, 9, 8, 5, 1, 0, 0], float)
    # each round one product of each category, Tools (the top product's) first; no-signal Kitchen last
    assert diverse_cold_start(pop, np.zeros(7), CATS).tolist() == [0, 3, 1, 4, 2, 5, 6]


def test_categories_follow_their_best_product():
    pop = np.array([10, 0.5, 0.5, 6, 6, 0, 0], float)  # Garden sells more in all, Tools the top product
    assert diverse_cold_start(pop, np.zeros(7), CATS).tolist() == [0, 3, 1, 4, 2, 5, 6]
    pop = np.array([5, 1, 1, 6, 6, 0, 0], float)
    assert diverse_cold_start(pop, np.zeros(7), CATS).tolist() == [3, 0, 4, 1, 2, 5, 6]


def test_products_out_of_stock_come_last():
    pop = np.array([10, 9, 8, 5, 1, 0, 0], float)
    stock = np.array([False, True, True, True, True, True, False])
    # the served list after the default stock rule still takes the categories in turn
    assert diverse_cold_start(pop, np.zeros(7), CATS, stock).tolist() == [1, 3, 2, 4, 5, 0, 6]
    # a one-category shop too: what `--no-rules` serves must not lead with an unavailable product
    assert diverse_cold_start(pop, np.zeros(7), ["A"] * 7, stock).tolist() == [1, 2, 3, 4, 5, 0, 6]


def test_products_without_a_category_are_no_category_taking_turns():
    """A catalog without categories but one product's: "no category" and "Tools" took turns, so
    that product (popularity 2, where 5 products had more) came second for every new visitor
    (a new shop's walk). One known category is none to diversify over: the signal's order; with
    two, the known ones take turns and a product without one comes where its popularity puts it
    against the product due next (each taking a turn of its own put them all in the first round,
    the review's)."""
    pop = np.array([5, 4, 4, 3, 3, 2], float)
    cats = ["", "", "", "", "", "Tools > Power Tools"]
    assert diverse_cold_start(pop, np.zeros(6), cats).tolist() == [0, 1, 2, 3, 4, 5]
    cats = ["", "Garden", "", "", "", "Tools"]
    assert diverse_cold_start(pop, np.zeros(6), cats).tolist() == [0, 1, 2, 3, 4, 5]
    cats = ["Garden", "Garden", "", "", "", "Tools"]  # Garden's second waits its round
    assert diverse_cold_start(pop, np.zeros(6), cats).tolist() == [0, 2, 3, 4, 5, 1]
    # Books and Music take turns; the unknown products (popularity 5 down to 0.5) do not jump
    # ahead of products that sell far more
    pop = np.array([100, 90, 80, 95, 85, 75, 5, 4, 3], float)
    cats = ["Books"] * 3 + ["Music"] * 3 + [""] * 3
    assert diverse_cold_start(pop, np.zeros(9), cats).tolist() == [0, 3, 1, 4, 2, 5, 6, 7, 8]


def test_catalog_only_shop_uses_the_judged_gain():
    gain = np.array([0, 3, 0, 0, 0, 4, 2], float)  # judged: a drill, and two kitchen products
    # Kitchen (the best judged) then Tools; then the unjudged products round-robin in catalog order
    assert diverse_cold_start(np.zeros(7), gain, CATS).tolist() == [5, 1, 6, 0, 3, 2, 4]


def test_a_shared_root_is_skipped_and_one_category_keeps_the_signal_order():
    pop = np.array([5, 4, 3, 2], float)
    shared = ["All > A > x", "All > A > y", "All > B", "All > B"]
    assert diverse_cold_start(pop, np.zeros(4), shared).tolist() == [0, 2, 1, 3]
    # one category (or none): popularity, ties by the judged gain, then catalog order
    assert diverse_cold_start(np.array([1, 2, 2, 0.0]), np.array([0, 1, 5, 0.0]), ["A"] * 4).tolist() == [
        2,
        1,
        0,
        3,
    ]
    assert diverse_cold_start(np.zeros(3), np.zeros(3), ["", "", ""]).tolist() == [0, 1, 2]


def test_training_writes_the_diverse_order(tmp_path: Path):
    """`train`'s serving arrays on a catalog-only shop: the judged products first, one per
    category, instead of the most judged category's products one after the other."""
    from shelfwise.lifecycle import TrainSettings
    from shelfwise.lifecycle._train import _serving_arrays

    data = tmp_path / "data"
    data.mkdir()
    (data / "products.csv").write_text(
        "product_id,title,category\n"
        + "".join(f"D{i},drill {i},Tools > Drills\n" for i in range(4))
        + "".join(f"H{i},hose {i},Garden > Hoses\n" for i in range(3))
    )
    (data / "queries.csv").write_text("query_id,query\nq1,drill\nq2,hose\n")
    (data / "judgments.csv").write_text(
        "query_id,product_id,relevance\n"
        + "".join(f"q1,D{i},{3 - i}\n" for i in range(3))  # the drills: 3, 2, 1
        + "q2,H2,1\nq2,H0,0\n"
    )
    Ingestor(tmp_path / "w").run(data)
    inter, catalog = load_interactions(tmp_path / "w")
    arrays = _serving_arrays(tmp_path / "w", None, inter, TrainSettings(), None, catalog)  # type: ignore[arg-type]
    order = [str(inter.item_ids[i]) for i in arrays["cold_start"]]
    # the relevance scale starts at 0: a gain is relevance - min(relevance)
    assert order == ["D0", "H2", "D1", "D2", "D3", "H0", "H1"]


def test_training_a_shop_with_no_product_and_no_event_is_a_clear_error(tmp_path: Path):
    """An events file with a header alone and no products file: `train` says there is nothing to
    train on (it was a numpy traceback from the popularity model)."""
    import pytest

    from shelfwise.errors import ShelfwiseError
    from shelfwise.lifecycle import TrainSettings, train

    d = tmp_path / "d"
    d.mkdir()
    (d / "events.csv").write_text("user_id,product_id,event_type,timestamp\n")
    Ingestor(tmp_path / "w").run(d)
    with pytest.raises(ShelfwiseError, match="nothing to train on"):
        train(tmp_path / "w", settings=TrainSettings(models=("popularity",)), log=lambda *_: None)


def test_nothing_to_train_on_says_where_the_rows_went(tmp_path: Path):
    """Every product quarantined (ESCI's ids without a title): "nothing to train on" said only
    that the warehouse had no product, not that they are all in the quarantine, and why."""
    import pytest

    from shelfwise.errors import ShelfwiseError
    from shelfwise.lifecycle import TrainSettings, train

    d = tmp_path / "d"
    d.mkdir()
    (d / "products.csv").write_text("product_id,title\nB01,\nB02,\n")
    Ingestor(tmp_path / "w").run(d)
    with pytest.raises(ShelfwiseError, match=r"2 products rows missing_required.*quarantine list"):
        train(tmp_path / "w", settings=TrainSettings(models=("popularity",)), log=lambda *_: None)
