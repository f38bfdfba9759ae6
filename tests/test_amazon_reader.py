import gzip
import json
from pathlib import Path

import pytest

from firs.catalog.amazon import MAX_LINE_CHARS, read_amazon
from firs.catalog.paths import MAX_PICTURES
from firs.catalog.problems import ProblemLog
from firs.errors import CatalogError

LINE_2014 = (
    "{'asin': '0000031852', 'title': \"Girls' Ballet Tutu &amp; Bow\", 'price': 3.17, "
    "'imUrl': 'http://ecx.images-amazon.com/images/I/51fAmVkTbyL._SY300_.jpg', "
    "'related': {'also_bought': ['B00JHONN1S', 'B002BZX8Z6']}, "
    "'salesRank': {'Toys & Games': 211836}, 'brand': 'Coxlists', "
    "'categories': [['Clothing, Shoes & Jewelry', 'Girls', 'Clothing'], ['Sports & Outdoors']]}"
)
RECORD_2018 = {
    "asin": "B00005MDZ8",
    "title": "Men's Oxford Shirt",
    "brand": "Acme",
    "price": "$12.99",
    "category": ["Clothing, Shoes &amp; Jewelry", "Men", "Shirts"],
    "imageURL": ["https://images.example/small.jpg"],
    "imageURLHighRes": ["https://images.example/large.jpg"],
    "description": ["Cotton.", "Slim fit."],
    "feature": ["Button-down"],
    "main_cat": "Fashion",
    "rank": "1,234 in Clothing",
    "also_buy": ["B0001"],
}


def _read(path: Path, strict: bool = False, image_roots=()):
    problems = ProblemLog(strict)
    return list(read_amazon(path, problems, image_roots)), problems


def test_2014_dict_literal_line(tmp_path: Path) -> None:
    path = tmp_path / "meta.json"
    path.write_text(LINE_2014 + "\n")
    (product,), problems = _read(path)
    assert product.id == "0000031852"
    assert product.title == "Girls' Ballet Tutu & Bow"
    assert product.price == 3.17
    assert product.image.endswith("51fAmVkTbyL._SY300_.jpg")
    assert product.categories == ["Clothing, Shoes & Jewelry", "Girls", "Clothing", "Sports & Outdoors"]
    assert product.brand == "Coxlists"
    assert product.origin == f"{path}:1"
    assert not problems.problems


def test_2018_json_line_gz(tmp_path: Path) -> None:
    ranged = {**RECORD_2018, "asin": "B2", "price": "$10.99 - $15.99", "imageURLHighRes": []}
    empty = {**RECORD_2018, "asin": "B3", "price": ""}
    path = tmp_path / "meta.json.gz"
    with gzip.open(path, "wt") as handle:
        for record in (RECORD_2018, ranged, empty):
            handle.write(json.dumps(record) + "\n")
    products, problems = _read(path)
    assert [p.id for p in products] == ["B00005MDZ8", "B2", "B3"]
    first = products[0]
    assert first.price == 12.99
    assert first.image == "https://images.example/large.jpg"
    assert first.categories[0] == "Clothing, Shoes & Jewelry"
    assert first.metadata["description"] == "Cotton. Slim fit."
    assert first.metadata["main_cat"] == "Fashion"
    assert products[1].price == 10.99 and products[1].image == "https://images.example/small.jpg"
    assert products[2].price is None
    assert first.metadata["url"] == "https://www.amazon.com/dp/B00005MDZ8"  # the product's page
    assert first.metadata["currency"] == "USD" and "currency" not in products[2].metadata
    assert not problems.problems


def test_malformed_lines_reported_with_line_numbers(tmp_path: Path) -> None:
    path = tmp_path / "meta.json"
    lines = [
        LINE_2014,
        "{'asin': 'X1', 'title': 'no closing brace'",
        "__import__('os').system('echo pwned')",
        json.dumps({"title": "no asin", "imUrl": "http://x/y.jpg"}),
        json.dumps({"asin": "X2", "title": "no image"}),
        json.dumps({"asin": "X3", "imUrl": "http://x/y.jpg", "price": "call us"}),
        "[1, 2, 3]",
        json.dumps(RECORD_2018),
    ]
    path.write_text("\n".join(lines) + "\n")
    products, problems = _read(path)
    assert [p.id for p in products] == ["0000031852", "B00005MDZ8"]
    assert [p.line for p in problems.problems] == [2, 3, 4, 5, 6, 7]
    reasons = [p.reason for p in problems.problems]
    assert "asin" in reasons[2]
    assert "no image" in reasons[3]
    assert "price" in reasons[4]
    assert all(p.path == str(path) for p in problems.problems)


def test_strict_makes_a_bad_line_fatal(tmp_path: Path) -> None:
    path = tmp_path / "meta.json"
    path.write_text(LINE_2014 + "\n{broken\n")
    with pytest.raises(CatalogError, match=r"meta.json:2"):
        _read(path, strict=True)


def _record(asin: str, **fields: object) -> str:
    return json.dumps({"asin": asin, "imUrl": "http://x/y.jpg", **fields})


def test_bad_prices_reported_at_their_lines(tmp_path: Path) -> None:
    path = tmp_path / "meta.json"
    lines = [
        _record("N1", price=-5),
        '{"asin": "N2", "imUrl": "http://x/y.jpg", "price": 1e999}',
        _record("OK", price="$3"),
        _record("N3", price="inf"),
        '{"asin": "N4", "imUrl": "http://x/y.jpg", "price": NaN}',
        _record("N5", price="-$5"),
        "{'asin': 'N6', 'imUrl': 'http://x/y.jpg', 'price': 1e999}",
    ]
    path.write_text("\n".join(lines) + "\n")
    products, problems = _read(path)
    assert [p.id for p in products] == ["OK"]
    assert [p.line for p in problems.problems] == [1, 2, 4, 5, 6, 7]
    reasons = [p.reason for p in problems.problems]
    assert all("field 'price'" in reason for reason in reasons)
    assert "negative" in reasons[0] and "not a finite number" in reasons[1] and "not a finite number" in reasons[3]


@pytest.mark.parametrize(
    "hostile",
    ["[" * 5000 + "]" * 5000, '{"a":' * 5000 + "1" + "}" * 5000, "{'a':" * 5000 + "1" + "}" * 5000],
)
def test_deeply_nested_line_is_reported_and_the_next_read(tmp_path: Path, hostile: str) -> None:
    path = tmp_path / "meta.json"
    path.write_text(f"{hostile}\n{_record('B1')}\n")
    products, problems = _read(path)
    assert [p.id for p in products] == ["B1"]
    (problem,) = problems.problems
    assert problem.line == 1


def test_hostile_field_types_are_reported_per_line(tmp_path: Path) -> None:
    path = tmp_path / "meta.json"
    lines = [
        _record("T1", categories=5),
        _record("T2", price={"amount": "cheap"}),
        _record("T3", imUrl=7),
        _record("T4"),
    ]
    path.write_text("\n".join(lines) + "\n")
    products, problems = _read(path)
    assert [p.id for p in products] == ["T4"]
    assert [p.line for p in problems.problems] == [1, 2, 3]


def test_over_long_line_reported_and_skipped(tmp_path: Path) -> None:
    path = tmp_path / "meta.json"
    path.write_text(_record("L1", title="t" * (MAX_LINE_CHARS + 10)) + "\n" + _record("L2") + "\n")
    products, problems = _read(path)
    assert [p.id for p in products] == ["L2"] and products[0].origin == f"{path}:2"
    (problem,) = problems.problems
    assert problem.line == 1 and "longer than" in problem.reason


def test_local_images_resolved_from_the_file_folder_and_confined(tmp_path: Path) -> None:
    folder, elsewhere = tmp_path / "cat", tmp_path / "elsewhere"
    folder.mkdir()
    elsewhere.mkdir()
    path = folder / "meta.json"
    lines = [
        json.dumps({"asin": "A1", "imUrl": "img/a.jpg"}),
        json.dumps({"asin": "A2", "imUrl": "/etc/passwd"}),
        json.dumps({"asin": "A3", "imUrl": "../../secret.jpg"}),
        json.dumps({"asin": "A4", "imageURL": ["../elsewhere/d.jpg"]}),
        json.dumps({"asin": "A5", "imUrl": "file:///etc/passwd"}),
        json.dumps({"asin": "A6", "imUrl": "ftp://host/x.jpg"}),
    ]
    path.write_text("\n".join(lines) + "\n")
    products, problems = _read(path)
    assert [p.id for p in products] == ["A1"]
    assert products[0].image == str((folder / "img" / "a.jpg").resolve())
    assert [p.line for p in problems.problems] == [2, 3, 4, 5, 6]
    reasons = [p.reason for p in problems.problems]
    assert reasons[0].startswith("product A2: image path /etc/passwd is outside the catalogue's folder")
    assert "--image-root" in reasons[1] and "unsupported URL scheme 'ftp'" in reasons[4]
    products, problems = _read(path, image_roots=[elsewhere])
    assert [p.id for p in products] == ["A1", "A4"] and [p.line for p in problems.problems] == [2, 3, 5, 6]
    assert products[1].image == str((elsewhere / "d.jpg").resolve())


def test_bom_is_accepted(tmp_path: Path) -> None:
    path = tmp_path / "meta.json"
    path.write_text("\ufeff" + _record("B1") + "\n", encoding="utf-8")
    (product,), problems = _read(path)
    assert product.id == "B1" and not problems.problems


def test_all_pictures_in_catalogue_order(tmp_path: Path) -> None:
    record = {
        **RECORD_2018,
        "imUrl": "https://images.example/front.jpg",
        "imageURLHighRes": [
            "https://images.example/side.jpg",
            "https://images.example/front.jpg",
            "",
            7,
            "https://images.example/back.jpg",
        ],
    }
    path = tmp_path / "meta.json"
    path.write_text(json.dumps(record) + "\n" + LINE_2014 + "\n" + json.dumps({**RECORD_2018, "asin": "B2"}) + "\n")
    (product, old, thumbs), problems = _read(path)
    assert product.images == [
        "https://images.example/front.jpg",
        "https://images.example/side.jpg",
        "https://images.example/back.jpg",
    ]
    assert product.image == product.images[0]
    assert old.images == [old.image]
    assert thumbs.images == ["https://images.example/large.jpg"]  # imageURL only when imageURLHighRes is empty
    assert not problems.problems and not problems.notes


def test_refused_extra_picture_is_dropped_and_noted_not_skipped(tmp_path: Path) -> None:
    folder = tmp_path / "cat"
    folder.mkdir()
    path = folder / "meta.json"
    record = {"asin": "E1", "imageURLHighRes": ["img/a.jpg", "../outside.jpg", "ftp://h/x.jpg", "./img/a.jpg", "b.jpg"]}
    path.write_text(json.dumps(record) + "\n")
    (product,), problems = _read(path, strict=True)
    assert product.images == [str((folder / "img" / "a.jpg").resolve()), str((folder / "b.jpg").resolve())]
    assert not problems.problems
    assert [(n.path, n.line) for n in problems.notes] == [(str(path), 1), (str(path), 1)]
    assert problems.notes[0].reason.startswith("product E1: extra image dropped (image path ../outside.jpg")
    assert "unsupported URL scheme 'ftp'" in problems.notes[1].reason
    bad_first = {"asin": "E2", "imageURLHighRes": ["../outside.jpg", "img/a.jpg"]}
    path.write_text(json.dumps(bad_first) + "\n")
    products, problems = _read(path)
    assert not products and len(problems.problems) == 1 and not problems.notes  # the first picture is the image


def test_pictures_per_product_are_capped(tmp_path: Path) -> None:
    path = tmp_path / "meta.json"
    many = [f"https://images.example/{n}.jpg" for n in range(MAX_PICTURES + 10)]
    path.write_text(json.dumps({"asin": "M1", "imageURLHighRes": many}) + "\n")
    (product,), problems = _read(path)
    assert product.images == many[:MAX_PICTURES]
    (note,) = problems.notes
    assert "10 pictures after the first 64 ignored" in note.reason and not problems.problems
