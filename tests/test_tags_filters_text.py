"""Labels, the inverted tag index, tag mode, filters, text search and more-like-this."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import skimage.data
from PIL import Image

from firs.cli import main
from firs.errors import QueryError
from firs.index import directory as layout
from firs.index.ann import AnnIndex
from firs.index.postings import Postings
from firs.search.engine import Query, SearchEngine
from firs.search.filters import parse_where
from firs.search.tag_policy import tag_candidates
from firs.tagging.tagger import Tag, classifier_tags, colour_tags, metadata_tags
from firs.tagging.vocabulary import labels_in_text
from firs.vision.decode import decode_photo
from firs.vision.embedder import Embedder
from firs.vision.localiser import WORK_SIDE

from .helpers import catalog_ids, transformed_copy


@pytest.fixture(scope="module")
def engine(garment_index: Path, embedder: Embedder) -> SearchEngine:
    return SearchEngine(garment_index, embedder)


def _kind_labels(engine: SearchEngine, kind: str) -> set[int]:
    rows = engine.store.db.execute("SELECT idx FROM products WHERE json_extract(metadata, '$.category') = ?", (kind,))
    return {row[0] for row in rows}


def test_vocabulary_reads_words() -> None:
    assert labels_in_text("Navy striped long-sleeve shirt") == ["colour:blue", "type:shirt"]
    assert labels_in_text("red floral summer dress") == ["colour:red", "type:dress"]
    assert labels_in_text("Running shoe, off white") == ["type:sneakers", "colour:white"]
    tags = metadata_tags("Yellow checked skirt", ["Clothing", "Skirts"], {"color": "yellow"})
    assert {t.label for t in tags} == {"type:skirt", "colour:yellow", "region:lower"}
    assert all(t.source == "metadata" for t in tags)


def test_classifier_and_colour_tags() -> None:
    probabilities = np.zeros(1000, np.float32)
    probabilities[610], probabilities[841], probabilities[474], probabilities[1] = 0.5, 0.2, 0.01, 0.29
    assert [(t.label, round(t.confidence, 2)) for t in classifier_tags(probabilities)] == [
        ("type:t-shirt", 0.5),
        ("type:sweater", 0.2),
    ]
    red_on_white = Image.new("RGB", (100, 100), (255, 255, 255))
    red_on_white.paste((200, 30, 40), (30, 30, 70, 70))
    tags = colour_tags(red_on_white)
    assert tags[0].label == "colour:red" and tags[0].confidence > 0.9


def test_postings_built_and_persisted(garment_index: Path, engine: SearchEngine) -> None:
    manifest = json.loads((garment_index / layout.MANIFEST).read_text())
    assert layout.POSTINGS in manifest["files"]
    postings = Postings.load(garment_index / layout.POSTINGS)
    for kind, label in (("dress", "type:dress"), ("skirt", "type:skirt"), ("trousers", "type:trousers")):
        assert set(postings[label].tolist()) == _kind_labels(engine, kind)
    # Every product has a colour; red products are tagged from their metadata.
    red = engine.store.db.execute("SELECT idx FROM products WHERE json_extract(metadata, '$.color') = 'red'")
    assert {r[0] for r in red} <= set(postings["colour:red"].tolist())
    # The store keeps each label's source and confidence, in step with the postings.
    rows = engine.store.db.execute("SELECT label, count(*) FROM tags GROUP BY label").fetchall()
    assert {label: n for label, n in rows} == postings.counts()


def test_tag_policy_top_two_then_region_then_all() -> None:
    postings = Postings.build(
        [("type:t-shirt", i) for i in range(0, 5)]
        + [("type:shirt", i) for i in range(5, 8)]
        + [("region:upper", i) for i in range(0, 12)]
        + [("type:skirt", i) for i in range(12, 20)]
    )
    tags = [Tag("type:t-shirt", "classifier", 0.6), Tag("type:shirt", "classifier", 0.2), Tag("region:upper", "r", 1)]
    chosen, rule = tag_candidates(postings, tags, 5, None)
    assert rule == "type:t-shirt or type:shirt" and chosen.tolist() == list(range(8))
    chosen, rule = tag_candidates(postings, tags, 10, None)
    assert rule == "region:upper" and chosen.tolist() == list(range(12))
    chosen, rule = tag_candidates(postings, tags, 13, None)
    assert chosen is None and rule.startswith("all products")
    allowed = np.array([1, 3, 6, 7, 9, 15])
    chosen, _ = tag_candidates(postings, tags, 2, allowed)
    assert chosen.tolist() == [1, 3, 6, 7]


def test_tag_mode_restricts_candidates(engine: SearchEngine, tmp_path: Path) -> None:
    photo = tmp_path / "astronaut.jpg"
    Image.fromarray(skimage.data.astronaut()).save(photo, quality=90)
    answer = engine.search(Query(image=photo, mode="tag", k=2)).as_dict()
    assert {"labels", "candidates", "candidate_rule", "regions"} <= set(answer)
    assert {"decode", "detect", "segment", "embed", "tag", "search", "total"} <= set(answer["timings_ms"])
    assert "region:upper" in [t["label"] for t in answer["labels"]]
    rule = answer["candidate_rule"]
    assert not rule.startswith("all products"), answer["labels"]
    named = rule.split(" or ")
    allowed = set(engine.postings.union(named).tolist())
    assert answer["candidates"] == len(allowed) < len(engine)
    assert len(answer["results"]) == 2
    for result in answer["results"]:
        assert set(result["labels"]) & set(named), (result["id"], result["labels"], named)


def test_filters_never_violate_and_still_fill_k(engine: SearchEngine, garment_catalog: Path, tmp_path: Path) -> None:
    photo = transformed_copy(
        garment_catalog.parent / "img" / f"{catalog_ids(garment_catalog)[0]}.png", tmp_path / "q.jpg"
    )
    cases = {
        ("category=skirt",): lambda r: r["category"] == "skirt",
        ("price<=15",): lambda r: r["price"] <= 15,
        ("price>=20", "price<=25"): lambda r: 20 <= r["price"] <= 25,
        ("colour=navy",): lambda r: "colour:blue" in r["labels"],
        ("brand=acme", "color!=red"): lambda r: r["color"] != "red",
    }
    for conditions, holds in cases.items():
        where = [parse_where(c) for c in conditions]
        allowed = engine.store.where(where)
        for mode in ("simple", "fine"):
            k = min(5, len(allowed))
            results = engine.search(Query(image=photo, mode=mode, k=5, where=where)).results
            assert len(results) == k, (conditions, mode)
            assert all(holds(r) for r in results), (conditions, mode, [r["id"] for r in results])


def test_filtered_graph_search_returns_k_allowed() -> None:
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(4000, 32)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    index = AnnIndex.build(vectors)
    query = vectors[7] + 0.1 * rng.normal(size=32).astype(np.float32)
    for allowed in (np.arange(0, 4000, 2), np.arange(0, 4000, 97), np.array([5, 9])):
        labels, scores = index.query(query, 10, allowed)
        assert len(labels[0]) == min(10, len(allowed))
        assert set(labels[0].tolist()) <= set(allowed.tolist())
        exact = allowed[np.argsort(-(vectors[allowed] @ query))[: len(labels[0])]]
        assert len(set(exact.tolist()) & set(labels[0].tolist())) >= 0.9 * len(exact)
        assert np.all(np.diff(scores[0]) <= 1e-6)


def test_bad_filters_are_named() -> None:
    for text, words in (("price<=cheap", "needs a number"), ("brand>x", "only supports"), ("=x", "expected")):
        with pytest.raises(QueryError, match=words):
            parse_where(text)


@pytest.mark.parametrize(
    ("condition", "expected"),
    [
        ("category=T-Shirts", "t-shirt"),  # the catalogue says "t-shirt": case, hyphen, plural ignored
        ("category=tshirt", "t-shirt"),
        ("category=Dresses", "dress"),
        ("category=Long sleeve shirts", "long-sleeve shirt"),
        ("colour=PINK", "pink"),
        ("color=Pinks", "pink"),
        ("brand=acme", None),
    ],
)
def test_filters_match_whatever_the_spelling(engine: SearchEngine, condition: str, expected: str | None) -> None:
    labels = engine.store.where([parse_where(condition)])
    products = engine.store.by_labels(labels.tolist())
    assert products
    if expected is None:
        assert len(products) == len(engine)
    elif condition.startswith("category"):
        assert {p["category"] for p in products} == {expected}
    else:
        assert all(p["color"] == expected or expected in p["title"].lower() for p in products)


def test_facets_list_the_catalogues_values(engine: SearchEngine) -> None:
    facets = engine.store.facets()
    assert facets["fields"]["brand"] == [{"value": "Acme", "products": 24}]
    categories = {entry["value"]: entry["products"] for entry in facets["fields"]["category"]}
    assert sum(categories.values()) == 24 and "skirt" in categories
    assert facets["price"] == {"min": 10.5, "max": 33.5, "products": 24}


def test_an_empty_answer_says_which_filter_emptied_it(engine: SearchEngine) -> None:
    alone = engine.search(Query(text="dress", where=[parse_where("price<=1")])).as_dict()
    assert alone["results"] == [] and alone["filter_matches"] == [{"where": "price<=1.0", "products": 0}]
    clash = engine.search(Query(text="dress", where=[parse_where("category=skirt"), parse_where("price<=11")]))
    matches = clash.as_dict()["filter_matches"]
    assert [m["where"] for m in matches] == ["category=skirt", "price<=11.0"] and all(m["products"] for m in matches)


def test_unknown_filter_field(engine: SearchEngine) -> None:
    with pytest.raises(QueryError, match="no product has a field 'material'"):
        engine.search(Query(text="dress", where=[parse_where("material=silk")]))


def test_text_search_finds_a_title_word(engine: SearchEngine) -> None:
    answer = engine.search(Query(text="polka-dot skirt", k=3)).as_dict()
    assert answer["mode"] == "text"
    assert answer["results"][0]["id"] == "skirt-red-polka-dot"
    results = engine.search(Query(text="striped", k=20)).results
    assert results and all("striped" in r["title"].lower() for r in results)
    cheap = engine.search(Query(text="striped", k=20, where=[parse_where("price<=20")])).results
    assert cheap and all(r["price"] <= 20 for r in cheap) and len(cheap) < len(results)


def test_photo_refined_by_words(engine: SearchEngine, garment_catalog: Path, tmp_path: Path) -> None:
    photo = transformed_copy(garment_catalog.parent / "img" / "skirt-red-polka-dot.png", tmp_path / "q.jpg")
    answer = engine.search(Query(image=photo, text="in red", k=3)).as_dict()
    assert answer["results"] and all("colour:red" in r["labels"] for r in answer["results"])
    assert all(r["color"] == "red" and r["type"] for r in answer["results"])
    unmatched = engine.search(Query(image=photo, text="zebra", k=3)).as_dict()
    assert "not used" in unmatched["notice"] and len(unmatched["results"]) == 3


def test_more_like_this(engine: SearchEngine) -> None:
    product = "dress-black-solid"
    answer = engine.search(Query(like=product, k=4)).as_dict()
    ids = [r["id"] for r in answer["results"]]
    assert len(ids) == 4 and product not in ids
    label = engine.store.label_of(product)
    vector = engine.views["fine"].ann.vector(label)
    expected = [r["id"] for r in engine.neighbours(vector, 5, "fine") if r["id"] != product][:4]
    assert ids == expected
    with pytest.raises(QueryError, match="not in this index"):
        engine.search(Query(like="no-such-product"))


def test_cli_text_where_like(garment_index: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["search", "--index", str(garment_index), "--json"]
    assert main([*args, "--text", "dress", "--where", "price<=30", "--top-k", "3"]) == 0
    answer = json.loads(capsys.readouterr().out)
    assert answer["results"] and all(r["price"] <= 30 and r["category"] == "dress" for r in answer["results"])
    assert main([*args, "--like", "skirt-black-solid", "--top-k", "2"]) == 0
    assert len(json.loads(capsys.readouterr().out)["results"]) == 2
    assert main([*args, "--text", "dress", "--where", "price<=lots"]) == 2
    assert "needs a number" in capsys.readouterr().err
    assert main(["search", "--index", str(garment_index)]) == 2
    assert "nothing to search with" in capsys.readouterr().err


def test_auto_region_follows_the_catalogues_labels(engine: SearchEngine) -> None:
    def vector(product_id: str) -> list:
        return engine.nearest_labels(engine.views["fine"].ann.vector(engine.store.label_of(product_id)))

    # Near dresses (metadata type dress, worn full length): search the full-length region.
    assert engine.catalogue_region(vector("dress-black-solid"), "upper", ["upper", "full", "lower"]) == "full"
    assert engine.catalogue_region(vector("dress-black-solid"), "upper", ["upper"]) is None  # not in the photo
    assert engine.catalogue_region(vector("t-shirt-red-solid"), "upper", ["upper", "full", "lower"]) is None
    assert engine.catalogue_region(vector("trousers-black-solid"), "upper", ["upper", "lower"]) == "lower"


def test_fine_answer_is_the_graphs_answer_for_the_garment(engine: SearchEngine, tmp_path: Path) -> None:
    """The auto rule's vote and the answer share one graph search: the answer is still exactly
    the k nearest products of the garment's vector, for k under and over the voters' number."""
    photo = tmp_path / "astronaut.jpg"
    Image.fromarray(skimage.data.astronaut()).save(photo, quality=90)
    picture = decode_photo(photo.read_bytes(), "astronaut", WORK_SIDE).image  # as the engine decodes it
    garment = engine.localiser.locate(picture).items[0]
    vector, _ = engine.vector_of(garment.view, "fine", classify=False)
    for k in (3, len(engine)):
        answer = engine.search(Query(image=photo, mode="fine", k=k)).as_dict()
        assert "region_rule" not in answer  # the first garment's own search, not a second region's
        expected = engine.neighbours(vector, k, "fine")
        assert [(r["id"], r["score"]) for r in answer["results"]] == [(r["id"], r["score"]) for r in expected]


def test_the_store_reads_from_many_threads_at_once(garment_index: Path) -> None:
    """The service's workers, its follower and its event loop read the store at once: each
    thread reads through a connection of its own, and every read gets its whole answer."""
    from concurrent.futures import ThreadPoolExecutor

    from firs.catalog.store import ProductStore

    store = ProductStore.open_readonly(garment_index / layout.STORE)
    condition = [parse_where("category=T-Shirts")]
    expected = store.where(condition).tolist()

    def read(number: int) -> tuple[list[int], int, int]:
        store.forget_fields()
        store._values.clear()  # every round reads the facet values again (a scan with fold())
        return store.where(condition).tolist(), store.generation(), len(store.facets()["fields"]["category"])

    with ThreadPoolExecutor(6) as pool:
        answers = list(pool.map(read, range(300)))
    assert all(answer == (expected, 0, answers[0][2]) for answer in answers) and expected
    store.close()
