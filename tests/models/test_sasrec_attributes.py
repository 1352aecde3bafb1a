"""SASRec with item attributes (brand, category levels): the matrix they are read from, a new
product placed after the products that share its attributes, the export scoring as the network,
and a seed giving the same model on two threads."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from shelfwise.features import Interactions
from shelfwise.models import SASRec
from shelfwise.models._sasrec import attribute_matrix
from tests.models.planted_data import assert_new_products_follow_their_theme, two_themes


def test_attribute_matrix_keeps_shared_values_weighted_by_the_row_count():
    m = attribute_matrix([["brand:a", "cat:x"], ["brand:a", "cat:y"], ["cat:x", "brand:b"], []])
    assert m.shape == (4, 2)  # brand:a and cat:x are shared; cat:y and brand:b belong to one item
    dense = m.toarray()
    assert dense[0].tolist() == pytest.approx([2**-0.5, 2**-0.5])  # (columns sorted: brand:a, cat:x)
    assert dense[1].tolist() == [1.0, 0.0] and dense[2].tolist() == [0.0, 1.0]
    assert dense[3].tolist() == [0.0, 0.0]
    assert attribute_matrix([["brand:a"], ["brand:b"], []]) is None  # nothing shared: no attributes


def _two_brands() -> tuple[Interactions, list[list[str]], list[str]]:
    """Half the users buy only brand A's products, half only brand B's; two new products (no
    interaction at all), one of each brand."""
    ids = [f"i{j}" for j in range(10)]
    brand = ["a"] * 4 + ["b"] * 4 + ["a", "b"]  # i8: new, brand A; i9: new, brand B
    return two_themes(ids), [[f"brand:{b}"] for b in brand], ids


def test_a_new_product_comes_after_what_shares_its_brand():
    inter, values, ids = _two_brands()
    model = SASRec(
        epochs=40, dim=32, heads=1, layers=1, max_len=8, batch_size=32, dropout=0.1, item_attributes=True
    )
    model.fit(inter, item_attributes=attribute_matrix(values))
    assert_new_products_follow_their_theme(model, inter, ids)  # i8 / i9: the first / second theme's


def test_the_export_scores_as_the_network_and_attributes_are_required():
    inter, values, _ = _two_brands()
    attrs = attribute_matrix(values)
    kw = dict(epochs=3, dim=16, heads=1, layers=1, max_len=8, batch_size=32, item_attributes=True)
    with pytest.raises(ValueError, match="item_attributes="):
        SASRec(**kw).fit(inter)
    exported = SASRec(**kw, serving="onnx").fit(inter, item_attributes=attrs)
    net = SASRec(**kw, serving="torch").fit(inter, item_attributes=attrs)
    seqs = [inter.sequence(u) for u in range(20)]
    np.testing.assert_allclose(exported.onnx_.score(seqs), net._torch_score(seqs), rtol=1e-4, atol=1e-4)


@pytest.fixture
def two_threads():
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(before)


def test_a_seed_gives_the_same_model_with_attributes(two_threads):
    from tests.models.planted_data import planted_cycles

    inter = planted_cycles(n_users=1500, n_items=2000, length=20)
    values = [[f"brand:{j % 37}", f"category:{j % 11}"] for j in range(inter.n_items)]
    attrs = attribute_matrix(values)

    def fit() -> tuple[list[float], list[np.ndarray]]:
        model = SASRec(
            epochs=2, dim=32, heads=2, layers=1, max_len=12, batch_size=128, dropout=0.2,
            negatives=512, full_softmax_items=100, item_attributes=True, serving="torch",
        )  # fmt: skip
        model.fit(inter, item_attributes=attrs)
        return [h["loss"] for h in model.history_], [
            p.detach().numpy().copy() for p in model.net_.parameters()
        ]

    (loss_a, params_a), (loss_b, params_b) = fit(), fit()
    assert loss_a == loss_b
    assert all(np.array_equal(a, b) for a, b in zip(params_a, params_b, strict=True))


def test_train_reads_brand_category_levels_and_attribute_values_from_the_catalog():
    from shelfwise.features._build import Catalog
    from shelfwise.lifecycle._train import _attribute_values, _item_attributes

    assert _attribute_values('{"Color": "Red", "sizes": ["S", "M"], "dims": {"w": 1}, "x": ""}') == [
        "attribute:color=red",
        "attribute:sizes=s",
        "attribute:sizes=m",
    ]
    assert (
        _attribute_values("") == [] and _attribute_values("not json") == [] and _attribute_values("[1]") == []
    )
    catalog = Catalog(
        item_ids=np.array(["a", "b", "c"]),
        titles=["", "", ""],
        categories=["Tools > Drills", "Tools > Saws", ""],
        category_codes=np.array([0, 1, -1]),
        prices=np.full(3, np.nan),
        in_stock=np.ones(3, bool),
        brands=["Acme", "", "acme "],
        attributes=['{"color": "red"}', '{"color": "red"}', ""],
    )
    m = _item_attributes(catalog)
    # shared: category:tools (a, b), brand:acme (a, c), attribute:color=red (a, b); the leaf
    # categories belong to one item each
    assert m.shape == (3, 3)
    assert (m.toarray() > 0).sum(axis=1).tolist() == [3, 2, 1]
    assert _item_attributes(catalog) is m  # computed once per catalog (SASRec and the fusion read it)
    no_shared = Catalog(
        np.array(["a", "b"]), ["", ""], ["X", "Y"], np.array([0, 1]), np.full(2, np.nan), np.ones(2, bool)
    )
    assert _item_attributes(no_shared) is None


def test_a_new_product_without_attributes_keeps_its_id_vector():
    inter, values, ids = _two_brands()
    values[ids.index("i9")] = []  # a new product with no attribute: not a zero vector (score 0 for all)
    model = SASRec(epochs=2, dim=16, heads=1, layers=1, max_len=8, item_attributes=True, serving="torch")
    model.fit(inter, item_attributes=attribute_matrix(values))
    vectors = model.net_.item_vectors().detach().numpy()[1:]
    assert np.abs(vectors[ids.index("i9")]).sum() > 0
    assert np.array_equal(
        vectors[ids.index("i9")], model.net_.item_emb.weight.detach().numpy()[1 + ids.index("i9")]
    )
    assert model.net_.seen[1 + ids.index("i8"), 0] == 0  # (a new product with attributes: those alone)


def test_train_leaves_out_noisy_keys_and_catalogs_that_share_too_little():
    from shelfwise.features._build import Catalog
    from shelfwise.lifecycle._train import _item_attributes

    n = 40

    def catalog(attributes: list[str], brands: list[str] | None = None) -> Catalog:
        return Catalog(
            np.array([f"p{i}" for i in range(n)]), [""] * n, [""] * n, np.full(n, -1), np.full(n, np.nan),
            np.ones(n, bool), brands or [""] * n, attributes,
        )  # fmt: skip

    # a date nearly every product has its own of (the last two share one) says nothing: left out
    dated = catalog(
        [f'{{"date": "2020-{min(i, 38):03d}", "color": "{"red" if i % 2 else "blue"}"}}' for i in range(n)]
    )
    m = _item_attributes(dated)
    assert m is not None and m.shape == (n, 2)  # color=blue, color=red; no date
    # one brand shared by 2 of 40 products (5% is the floor): read; by none: no attributes
    assert _item_attributes(catalog([""] * n, ["acme", "acme"] + [""] * (n - 2))) is not None
    assert _item_attributes(catalog([""] * n, ["acme"] + [""] * (n - 1))) is None


def test_the_sparse_product_sums_the_bags_as_embedding_bag_does_and_is_not_saved():
    """The attribute vectors come from one sparse product (`_SparseRows`), not the EmbeddingBag
    that holds their weights: the same vectors and the same weight gradient, and the sparse
    cache travels in no pickle."""
    import pickle

    from shelfwise.models._sasrec_net import SASRecNet

    values = [[f"brand:{j % 7}", f"category:{j % 3}", f"size:{j % 5}"] for j in range(60)]
    attrs = attribute_matrix(values)
    net = SASRec(dim=16, heads=1, layers=1, max_len=8, item_attributes=True).cfg
    model = SASRecNet(60, net, None, attrs)
    vectors, reference, gradient, expected = _sparse_and_bag(model)
    np.testing.assert_allclose(vectors, reference, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(gradient, expected, rtol=1e-5, atol=1e-6)  # (summed in another order)
    assert "_attr_rows" in vars(model)
    assert "_attr_rows" not in vars(pickle.loads(pickle.dumps(model)))


def test_the_sparse_cache_follows_buffers_loaded_in_place():
    """`load_state_dict` writes the attribute buffers in place: the next product (forward and
    backward) reads the new weights, not the cached ones."""
    from shelfwise.models._sasrec_net import SASRecNet

    cfg = SASRec(dim=8, heads=1, layers=1, max_len=4, item_attributes=True).cfg
    values = [[f"brand:{j % 3}", f"size:{j % 4}"] for j in range(24)]
    net = SASRecNet(24, cfg, None, attribute_matrix(values))
    net.item_vectors()  # the cache is built
    other = SASRecNet(24, cfg, None, attribute_matrix(values))
    state = other.state_dict()
    state["attr_weight"] = state["attr_weight"] * 3.0
    net.load_state_dict(state)
    vectors, reference, gradient, expected = _sparse_and_bag(net)
    np.testing.assert_allclose(vectors, reference, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(gradient, expected, rtol=1e-5, atol=1e-6)


def _sparse_and_bag(net) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The attribute part of `net.item_vectors()` (the sparse product) and the EmbeddingBag's
    sums of the same buffers, and the bag weights' gradient through each, for one random
    upstream gradient: (vectors, reference, gradient, expected gradient)."""
    bag = net.attr_emb
    grad = torch.randn(net.attr_offsets.shape[0] - 1, bag.weight.shape[1])  # (items + 1, dim)
    reference = bag(net.attr_index, net.attr_offsets, per_sample_weights=net.attr_weight)
    (reference * grad).sum().backward()
    expected = bag.weight.grad.clone()
    bag.weight.grad = None
    vectors = net.item_vectors() - net.item_emb.weight * net.seen
    (vectors * grad).sum().backward()
    return (
        vectors.detach().numpy(),
        reference.detach().numpy(),
        bag.weight.grad.numpy(),
        expected.numpy(),
    )
