"""Cold start from text: the shipped MiniLM, offline, and a product nobody has touched yet."""

import numpy as np

from shelfwise.features import Interactions
from shelfwise.features._text_encoder import encode_texts, has_text
from shelfwise.models import Content
from tests.models.planted_data import assert_new_products_follow_their_theme, two_themes

TITLES = [
    "red running shoes for men",
    "trail running shoes waterproof",
    "dark chocolate cake mix",
    "vanilla sponge cake baking mix",
    "lightweight running sneakers",  # never interacted with: the cold product
]


def test_encoder_is_offline_and_semantic():
    emb = encode_texts(TITLES)
    assert emb.shape == (5, 384)
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, rtol=1e-5)
    assert emb[0] @ emb[1] > emb[0] @ emb[2]


def test_a_cold_product_is_recommended_from_its_text():
    inter = Interactions.from_arrays(
        ["shoe-fan", "shoe-fan", "baker", "baker"],
        ["p0", "p1", "p2", "p3"],
        [1, 2, 1, 2],
        item_ids=["p0", "p1", "p2", "p3", "p4"],
    )
    model = Content().fit(inter, item_embeddings=encode_texts(TITLES))
    u = list(inter.user_ids).index("shoe-fan")
    top = model.recommend(np.array([u]), k=1).ids[0, 0]
    assert inter.item_ids[top] == "p4"
    sim = model.similar_items(np.array([4]), k=2).ids[0]
    assert set(inter.item_ids[sim]) == {"p0", "p1"}


def test_placeholder_titles_are_not_text():
    assert not has_text([f"item {i}" for i in range(1000)])
    # a small shop: as many words as titles is language; placeholders are not, however few
    assert has_text(["Samsung Galaxy phone", "Bosch drill 18v", "Cotton t-shirt"])
    assert has_text([f"{c} {k}" for c in ("red", "blue", "black") for k in ("boots", "scarf", "hat")])
    assert not has_text([f"item {i}" for i in range(40)]) and not has_text(["item 1", "item 2"])
    assert not has_text(["Phone"]) and not has_text([])
    assert has_text(TITLES * 20 + [f"word{i}" for i in range(60)])
    # few words combined into a distinct title per product (5 styles x 12 colours: 23 words
    # for 60 products) are language; one template with a number in it is not
    styles = ["Classic Cotton Tee", "Slim Fit Tee", "V-Neck Tee", "Long Sleeve Tee", "Organic Hoodie"]
    colours = [
        "Red",
        "Blue",
        "Green",
        "Black",
        "White",
        "Grey",
        "Navy",
        "Pink",
        "Olive",
        "Sand",
        "Teal",
        "Rust",
    ]
    assert has_text([f"{s} - {c}" for s in styles for c in colours])
    assert not has_text([f"Kitchen item {i} deluxe" for i in range(40)])
    assert not has_text([f"Product {i} - Category {i % 20}" for i in range(5000)])


def test_sasrec_reads_item_text_and_places_a_new_product_after_what_it_reads_like():
    from shelfwise.models import SASRec

    run = ["running shoes light", "running shoes trail", "running socks thin", "running socks ankle"]
    bake = ["wheat flour fine", "rye flour whole", "vanilla cake mix", "lemon cake mix"]
    cold = ["wool running socks", "chocolate cake mix"]  # new products: no interaction at all
    titles = run + bake + cold
    ids = [f"i{j}" for j in range(len(titles))]
    inter = two_themes(ids)
    model = SASRec(
        epochs=40, dim=32, heads=1, layers=1, max_len=8, batch_size=32, dropout=0.1, item_text=True
    )
    model.fit(inter, item_embeddings=encode_texts(titles))
    assert_new_products_follow_their_theme(model, inter, ids)  # i8 / i9: the first / second theme's
