"""Per-shop text analysis: the catalog's language (detected or set) picks the stemmer; German and
French text is accent-folded, its stopwords left out of the keyword index and queries, and German
compounds indexed with their parts. English analysis is as it always was."""

from __future__ import annotations

import numpy as np
import pytest

from shelfwise.search import SearchCatalog, SearchEngine, analyze
from shelfwise.search._analyze import ENGLISH, Analyzer, detect_language, fold, language_name
from shelfwise.search._retrievers import LexicalRetriever

GERMAN = [
    ("Adidas Damenlaufschuhe schwarz", "Schuhe > Laufschuhe", "Leichte Schuhe für den Asphalt und die Bahn"),
    ("Asics Herrenlaufschuhe blau", "Schuhe > Laufschuhe", "Gedämpfte Schuhe für lange Läufe"),
    ("Nike Laufschuh rot", "Schuhe > Laufschuhe", "Ein Schuh mit viel Grip"),
    ("Salomon Wanderschuhe grün", "Schuhe > Wanderschuhe", "Robuste Schuhe für die Berge"),
    ("Deuter Wanderrucksack 30 L", "Zubehör > Rucksäcke", "Ein Rucksack mit Regenhülle und Hüftgurt"),
    ("Deuter Laufrucksack", "Zubehör > Rucksäcke", "Leicht und mit Trinkblase"),
    ("Puma Wandersocken", "Bekleidung > Socken", "Socken aus Merinowolle"),
    ("Puma Laufsocken Damen", "Bekleidung > Socken", "Dünne Socken für den Sommer"),
    ("Jute Sack natur", "Zubehör > Taschen", "Ein Sack aus Jute"),
    ("Regenjacke Damen", "Bekleidung > Jacken", "Wasserdicht und atmungsaktiv"),
    ("Trainingsjacke Herren", "Bekleidung > Jacken", "Eine Jacke für das Training"),
    ("Grüner Tee", "Lebensmittel > Tee", "Loser Tee aus Japan"),
]
FRENCH = [
    ("Chaussettes de randonnée", "Vêtements > Chaussettes", "Des chaussettes en laine pour la montagne"),
    ("Chaussettes de course femme", "Vêtements > Chaussettes", "Légères et respirantes"),
    ("Sac à dos de randonnée 30 L", "Accessoires > Sacs à dos", "Un sac avec une housse de pluie"),
    ("Veste de pluie femme", "Vêtements > Vestes", "Imperméable et légère"),
    ("Veste d'hiver homme", "Vêtements > Vestes", "Chaude pour les jours de neige"),
    ("Gourde de sport", "Accessoires > Gourdes", "Une gourde en acier pour le sport"),
    ("Montre GPS de sport", "Électronique > Montres", "La montre des coureurs"),
    ("Tapis de yoga antidérapant", "Fitness > Tapis", "Un tapis pour le yoga et la gym"),
]


def catalog(rows: list[tuple[str, str, str]]) -> SearchCatalog:
    return SearchCatalog(
        [f"p{i}" for i in range(len(rows))],
        [r[0] for r in rows],
        category=[r[1] for r in rows],
        description=[r[2] for r in rows],
    )


def texts(rows: list[tuple[str, str, str]]) -> list[str]:
    return [t for r in rows for t in r]


def titles_found(engine: SearchEngine, query: str) -> set[str]:
    rows = engine.lexical_.search_terms(engine._query(query).terms, 100).ids[0]
    return {engine.catalog.title[int(i)] for i in rows if i >= 0}


# -- the analyzer ----------------------------------------------------------------------------
def test_language_detected_from_the_catalogs_text():
    assert detect_language(texts(GERMAN))[0] == "german"
    assert detect_language(texts(FRENCH))[0] == "french"
    english = ["Red running shoes for men", "A mug for the office and the kitchen", "Lamp with a shade"]
    assert detect_language(english)[0] == "english"
    assert detect_language(["Laufschuh", "Rucksack"])[0] == "english"  # no function words: English
    assert "function words" in detect_language(texts(FRENCH))[1]
    # titles only, as a shop's feed often is: "30 L" is no French "l'", and "de" (French, Spanish,
    # Dutch alike) weighs less than "pour" or "für", each one language's
    de_titles = ["Wanderrucksack 30 L", "Laufschuh", "Fitnessuhr für Kinder", "Regenjacke Damen"] * 5
    assert detect_language(de_titles)[0] == "german"
    fr_titles = ["Sac à dos de randonnée 30 L", "Montre fitness pour enfants", "Veste de pluie"] * 5
    assert detect_language(fr_titles)[0] == "french"


def test_language_setting_overrides_and_is_checked():
    assert Analyzer.for_catalog(texts(GERMAN), "fr").language == "french"
    assert "configuration" in Analyzer.for_catalog(texts(GERMAN), "fr").why
    assert language_name("auto") is None and language_name("DE") == "german"
    with pytest.raises(ValueError, match="search language"):
        language_name("klingon")


def test_english_analysis_unchanged():
    text = "The Men's 12in stainless-steel running shoes, for cafés and of the walk"
    assert ENGLISH.analyze(text) == analyze(text)
    assert Analyzer.for_catalog([text, "Red running shoes for men"]).analyze(text) == analyze(text)
    # stopwords still indexed, accents still kept, as before
    assert "the" in analyze(text) and any("é" in t for t in analyze(text))


def test_french_accents_folded_and_stopwords_left_out():
    fr = Analyzer("french")
    assert fold("randonnée") == "randonnee" and fold("Größe") == "Grosse"
    assert fr.analyze("randonnee") == fr.analyze("randonnée") == fr.analyze("RANDONNÉE")
    assert fr.analyze("chaussettes de randonnée") == fr.analyze("chaussettes randonnee")
    assert "de" not in fr.analyze("chaussettes de randonnée")
    assert fr.analyze("de la") == ["de", "la"]  # a query of stopwords only keeps them


def test_german_compounds_indexed_with_their_parts():
    de = Analyzer.for_catalog(texts(GERMAN))
    assert de.language == "german"
    rucksack = de.analyze("Rucksack")[0]
    assert rucksack in de.analyze("Wanderrucksack") and rucksack in de.analyze("Laufrucksack")
    damen, laufschuh = de.analyze("damen")[0], de.analyze("laufschuhe")[0]
    assert {damen, laufschuh} <= set(de.analyze("Damenlaufschuhe"))
    jacke = de.analyze("Jacke")[0]
    assert jacke in de.analyze("Trainingsjacke")  # (Fugen-s: trainings|jacke)
    # precision: "sack" is a word, but "ruck" is none: Rucksack is not a sack
    assert de.analyze("sack")[0] not in de.analyze("Wanderrucksack")
    # a part shorter than MIN_PART is never split off: "tee" and "kanne" are both catalog words,
    # yet "tee" does not match inside other words ("Steelbox", "Teekanne")
    de = Analyzer.for_catalog([*texts(GERMAN), "Kanne aus Glas", "Steelbox", "Teekanne"])
    assert de._known("kanne") and "tee" in {de.analyze("Tee")[0]}
    assert de.analyze("Teekanne") == [de.analyze("Teekanne")[0]]
    assert "tee" not in de.analyze("Teekanne") + de.analyze("Steelbox")


def test_analyzer_saved_with_the_keyword_index(tmp_path):
    de = Analyzer.for_catalog(texts(GERMAN))
    LexicalRetriever(tmp_path / "lex", analyzer=de).index(catalog(GERMAN))
    loaded = LexicalRetriever.load(tmp_path / "lex")
    assert loaded.analyzer.language == "german" and loaded.analyzer.vocabulary == de.vocabulary
    assert loaded.analyzer.analyze("Wanderrucksack") == de.analyze("Wanderrucksack")
    # an English index (or one saved before analyzers were) loads English
    LexicalRetriever(tmp_path / "en").index(SearchCatalog(["a"], ["Red shoes"]))
    assert LexicalRetriever.load(tmp_path / "en").analyzer is ENGLISH


# -- through the search engine ---------------------------------------------------------------
@pytest.fixture(scope="module")
def german(tmp_path_factory) -> SearchEngine:
    cat = catalog(GERMAN)
    path = tmp_path_factory.mktemp("de") / "search"
    eng = SearchEngine(path, candidates=len(cat)).build(cat, popularity=np.zeros(len(cat)))
    eng.save()
    return SearchEngine.load(path)  # as served: the analyzer read back with the index


@pytest.fixture(scope="module")
def french(tmp_path_factory) -> SearchEngine:
    cat = catalog(FRENCH)
    path = tmp_path_factory.mktemp("fr") / "search"
    return SearchEngine(path, candidates=len(cat)).build(cat, popularity=np.zeros(len(cat)))


def test_german_shop_search(german):
    assert german.analyzer_.language == "german"
    found = titles_found(german, "rucksack")
    assert {"Deuter Wanderrucksack 30 L", "Deuter Laufrucksack"} <= found
    assert "Jute Sack natur" not in found
    page = german.query("laufschuhe damen", k=3, level="lexical")
    first = german.catalog.title[german._index[page["items"][0]["product_id"]]]
    assert first == "Adidas Damenlaufschuhe schwarz"
    assert "Adidas Damenlaufschuhe schwarz" in titles_found(german, "laufschuhe")
    sack = titles_found(german, "sack")
    assert "Jute Sack natur" in sack and "Deuter Wanderrucksack 30 L" not in sack
    # "für" (in most descriptions) is no keyword: only the jacket named for training holds "training"
    assert titles_found(german, "jacke für training") >= {"Trainingsjacke Herren"}
    assert "Adidas Damenlaufschuhe schwarz" not in titles_found(german, "jacke für training")


def test_french_shop_search(french):
    assert french.analyzer_.language == "french"
    both = {"Chaussettes de randonnée", "Sac à dos de randonnée 30 L"}
    assert titles_found(french, "randonnee") == both
    # "de" is in every title but says nothing: only the socks and the hiking products match
    found = titles_found(french, "chaussettes de randonnée")
    assert found == both | {"Chaussettes de course femme"}
    # the keyword index alone (no speller) folds the query's accents
    hits = french.lexical_.search("RANDONNEE", 10).ids[0]
    assert {french.catalog.title[int(i)] for i in hits} == both
    # a query of stopwords only is no keyword match, not every product
    assert french.query("de la", k=5)["match"] != "keyword"


# -- the train setting -----------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize(
    ("setting", "language", "why"), [(None, "english", "English"), ("de", "german", "configuration")]
)
def test_train_records_the_language_and_why(tmp_path, setting, language, why):
    import shutil
    from types import SimpleNamespace

    from shelfwise.demo import generate_demo
    from shelfwise.lifecycle import TrainSettings
    from shelfwise.lifecycle._train import _build_search
    from tests.cli.test_cli import sw

    demo = tmp_path / "demo"
    generate_demo(demo, products=40, users=10, events=100, seed=3, defects=False)
    data = tmp_path / "data"
    data.mkdir()
    shutil.copy(demo / "products.csv", data / "products.csv")
    work = tmp_path / "w"
    sw("ingest", "--data", str(data), "--workdir", str(work))
    no_events = SimpleNamespace(item_ids=np.array([], object), item_counts=lambda: np.zeros(0))
    settings = TrainSettings(search_language=setting, search_finetune_steps=0, search_cross_steps=0)
    lines: list[str] = []
    path, info = _build_search(work, no_events, lines.append, [], settings)  # type: ignore[arg-type]
    assert info is not None and path is not None
    assert info["language"]["language"] == language and why in info["language"]["why"]
    assert any(f"analyzed as {language.capitalize()}" in line for line in lines)
    assert SearchEngine.load(path).analyzer_.language == language


def test_train_takes_the_language_as_a_flag():
    from tests.cli.test_cli import sw

    assert "--search-language" in sw("train", "--help").stdout
    bad = sw("train", "--search-language", "klingon", "--workdir", "/nonexistent", check=False)
    assert bad.returncode != 0 and "search language" in (bad.stdout + bad.stderr)


def test_shop_train_refuses_an_unknown_language():
    from shelfwise._shop import _in_range
    from shelfwise.errors import ShelfwiseError
    from shelfwise.lifecycle import TrainSettings

    _in_range(TrainSettings(search_language="fr"))
    with pytest.raises(ShelfwiseError, match="search_language='klingon'"):
        _in_range(TrainSettings(search_language="klingon"))


# -- decompounding's work is bounded ---------------------------------------------------------
def counting(analyzer: Analyzer) -> list[int]:
    """Count the analyzer's vocabulary look-ups (its `_known` calls): the work of a split."""
    calls = [0]
    known = analyzer._known

    def counted(part: str) -> bool:
        calls[0] += 1
        return known(part)

    analyzer._known = counted  # type: ignore[method-assign]
    return calls


def test_a_long_unspaced_word_is_no_exponential_split():
    import threading

    shop = ["Wanderschuhe für Damen mit Gummisohle", "Gummi Sohle Sohlen", "Schuhe und Socken"] * 3
    de = Analyzer.for_catalog(shop, "de")
    calls = counting(de)
    # 500 letters (a query's limit is 512): once minutes of splitting, now no split at all
    done: list[list[str]] = []
    worker = threading.Thread(target=lambda: done.append(de.analyze("gummisohle" * 50)), daemon=True)
    worker.start()
    worker.join(timeout=30)
    assert done and done[0] == [de._stem("gummisohle" * 50)] and calls[0] == 0
    # up to MAX_COMPOUND letters a word is split as before, each substring looked up at most once
    calls[0] = 0
    assert de._stem("gummi") in de.analyze("gummisohle" * 4) and de._stem("sohle") in de.analyze(
        "gummisohle" * 4
    )
    assert calls[0] <= 41 * 40 // 2
    # the worst case: every substring a word of the catalog (every split point a candidate)
    a = Analyzer("german", {"a" * n for n in range(4, 13)})
    calls = counting(a)
    assert a.split("a" * 40) and len(a.split("a" * 40)) < 40
    assert calls[0] <= 41 * 40  # (the word's substrings, then its parts' own: the search before
    # tried every split below every other, ~10**9 look-ups here)


def test_the_split_cache_is_bounded():
    de = Analyzer.for_catalog(texts(GERMAN))
    de.parts_cached = 50
    words_ = [f"wander{x}rucksack" for x in ("", "s", "lauf", "damen")] + [
        f"zzzz{i:04d}socken" for i in range(200)
    ]
    got = [de.analyze(w) for w in words_]
    assert len(de._parts) <= 50
    fresh = Analyzer.for_catalog(texts(GERMAN))
    assert got == [fresh.analyze(w) for w in words_]  # (a word dropped is split again alike)
    assert de.analyze("Wanderrucksack") == fresh.analyze("Wanderrucksack")


def test_negations_are_kept_as_terms():
    de, fr = Analyzer.for_catalog(texts(GERMAN)), Analyzer("french")
    # "ohne Zucker" is sugar-free: not a search for sugar
    assert de.analyze("ohne Zucker") != de.analyze("Zucker") and de._stem("ohne") in de.analyze("ohne Zucker")
    assert de._stem("nicht") in de.analyze("nicht wasserdicht") and de._stem("kein") in de.analyze(
        "kein Zucker"
    )
    assert fr._stem("sans") in fr.analyze("sans gluten") and "pas" in fr.analyze("pas cher")
    assert "sin" in Analyzer("spanish").analyze("sin azúcar")
    it = Analyzer("italian")
    assert {it._stem("senza"), "non"} <= set(it.analyze("senza glutine, non fritto"))
    assert "zonder" in Analyzer("dutch").analyze("zonder suiker")
    # the other function words are still left out
    assert "fur" not in de.analyze("für Damen") and "de" not in fr.analyze("sac de sport")
    assert "ohne" not in de.vocabulary  # (no compound part)


def test_foreign_names_in_an_english_catalog_leave_it_english():
    # titles only: a foreign name's function word, however often, is one or two different words
    wine = [f"Chateau {n} {y} Cotes du Rhone Red Wine" for n in "ABCDEFGH" for y in (2018, 2019)]
    wine += ["Le Petit Cheval Bordeaux", "Vin de France Rose"]
    assert detect_language(wine)[0] == "english" and "foreign names" in detect_language(wine)[1]
    deli = [
        f"{x} di {y} 500g"
        for x in ["Pasta", "Aceto Balsamico", "Olio", "Farina"]
        for y in ["Modena", "Semola", "Grano Duro", "Oliva"]
    ]
    deli += ["Gift box for the chef"] * 2
    assert detect_language(deli)[0] == "english"
    shop = Analyzer.for_catalog(deli)
    assert shop.language == "english" and shop.analyze("gift for the chef") == analyze("gift for the chef")
    # "non" is no Italian ("Non-slip yoga mat" made a UK shop Italian)
    assert (
        detect_language([f"{b} Non-slip yoga mat {c}" for b in "ABCDEF" for c in ("red", "blue")])[0]
        == "english"
    )
    # while a shop in the language uses several ("da", "per", "con") even without accents
    italian = ["Scarpe da corsa per donna", "Zaino con tasca per la pioggia", "Calze da trekking"] * 3
    assert detect_language(italian)[0] == "italian"
