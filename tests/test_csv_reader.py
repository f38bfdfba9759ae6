import csv
import gzip
import json
from pathlib import Path

import pytest

from firs.catalog.amazon import MAX_LINE_CHARS
from firs.catalog.csv_reader import parse_column_map, read_csv
from firs.catalog.fields import parse_price, price_currency, product_url
from firs.catalog.problems import ProblemLog
from firs.errors import CatalogError


def _read(path: Path, columns=None, strict=False, image_roots=()):
    problems = ProblemLog(strict)
    return list(read_csv(path, problems, columns, image_roots)), problems


def test_columns_metadata_and_relative_paths(tmp_path: Path) -> None:
    path = tmp_path / "cat.csv"
    path.write_text(
        "id,image,title,brand,category,gender,color,price\n"
        "p1,img/a.jpg,Red dress,Acme,Dresses,women,red,$19.99\n"
        'p2,https://example.test/b.jpg,"Shirt, blue",Acme,Shirts,men,blue,\n'
        f"p3,{tmp_path}/c.png,Skirt,,Skirts,,,5\n"
    )
    products, problems = _read(path)
    assert not problems.problems
    p1, p2, p3 = products
    assert p1.image == str(tmp_path / "img" / "a.jpg")
    assert p1.price == 19.99 and p1.brand == "Acme" and p1.category == "Dresses"
    assert p1.metadata == {"category": "Dresses", "gender": "women", "color": "red", "currency": "USD"}  # from "$"
    assert p2.image == "https://example.test/b.jpg" and p2.title == "Shirt, blue" and p2.price is None
    assert p3.image == str(tmp_path / "c.png") and p3.price == 5.0
    assert p1.origin == f"{path}:2"


def test_column_mapping(tmp_path: Path) -> None:
    path = tmp_path / "cat.csv"
    path.write_text("id,filename,name\nq1,x.jpg,Blue jeans\n")
    (product,), _ = _read(path, parse_column_map("image=filename,title=name"))
    assert product.image == str(tmp_path / "x.jpg")
    assert product.title == "Blue jeans"
    assert "filename" not in product.metadata


def test_image_path_from_a_template(tmp_path: Path) -> None:
    path = tmp_path / "styles.csv"
    path.write_text("id,articleType,baseColour,productDisplayName\n27152,Shirts,Blue,Mark Taylor Men Blue Shirt\n")
    (product,), _ = _read(path, parse_column_map("image=images/{id}.jpg,title=productDisplayName"))
    assert product.image == str(tmp_path / "images" / "27152.jpg")
    assert product.title == "Mark Taylor Men Blue Shirt" and product.categories == ["Shirts"]
    with pytest.raises(CatalogError, match="no column sku"):
        _read(path, parse_column_map("image=images/{sku}.jpg"))


def test_missing_required_column_is_fatal(tmp_path: Path) -> None:
    path = tmp_path / "cat.csv"
    path.write_text("id,picture\np1,a.jpg\n")
    with pytest.raises(CatalogError, match=r"cat.csv:1: header lacks required column\(s\) image"):
        _read(path)
    with pytest.raises(CatalogError, match="column 'photo'"):
        _read(path, {"image": "photo"})


def test_malformed_rows_skipped_with_line_numbers(tmp_path: Path) -> None:
    path = tmp_path / "cat.csv"
    path.write_text(
        "id,image,price\n"
        "ok1,a.jpg,1\n"
        ",b.jpg,2\n"
        "noimg,,3\n"
        "badprice,c.jpg,cheap\n"
        "toomany,d.jpg,4,extra\n"
        "short\n"
        "ok2,e.jpg,5\n"
    )
    products, problems = _read(path)
    assert [p.id for p in products] == ["ok1", "ok2"]
    assert [p.line for p in problems.problems] == [3, 4, 5, 6, 7]
    assert "'id'" in problems.problems[0].reason
    assert "'image'" in problems.problems[1].reason
    assert "'price'" in problems.problems[2].reason
    with pytest.raises(CatalogError, match=r"cat.csv:3"):
        _read(path, strict=True)


def test_bad_column_spec() -> None:
    with pytest.raises(CatalogError, match="FIELD=COLUMN"):
        parse_column_map("image")


@pytest.mark.parametrize(
    ("value", "expected"),
    [(3.17, 3.17), ("$12.99", 12.99), ("$10.99 - $15.99", 10.99), ("1,299.00", 1299.0), ("", None), ("Sale - $5", 5.0)],
)
def test_parse_price_accepts_ordinary_prices(value: object, expected: float | None) -> None:
    assert parse_price(value) == expected


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("-5", "is negative"),
        ("-$5", "is negative"),
        ("$-5", "is negative"),
        (-5, "is negative"),
        ("1e999", "is not a finite number"),
        ("inf", "is not a finite number"),
        ("nan", "is not a finite number"),
        (json.loads("1e999"), "is not a finite number"),
        (float("nan"), "is not a finite number"),
        ("2e9", "is too large"),
        (10**400, "is too large"),
        ("call us", "holds no number"),
    ],
)
def test_parse_price_refuses_absurd_prices(value: object, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        parse_price(value)


def test_bom_is_accepted_plain_and_gzipped(tmp_path: Path) -> None:
    text = "\ufeffid,image\nx1,a.jpg\n"
    plain, packed = tmp_path / "bom.csv", tmp_path / "bom.csv.gz"
    plain.write_text(text, encoding="utf-8")
    with gzip.open(packed, "wt", encoding="utf-8") as handle:
        handle.write(text)
    for path in (plain, packed):
        (product,), problems = _read(path)
        assert product.id == "x1" and not problems.problems


def test_bad_prices_reported_at_their_lines(tmp_path: Path) -> None:
    path = tmp_path / "cat.csv"
    path.write_text(
        "id,image,price\nn1,a.jpg,-5\nn2,a.jpg,1e999\nok,a.jpg,$3\nn3,a.jpg,inf\nn4,a.jpg,nan\nn5,a.jpg,$-5\n"
    )
    products, problems = _read(path)
    assert [p.id for p in products] == ["ok"]
    assert [p.line for p in problems.problems] == [2, 3, 5, 6, 7]
    assert all("field 'price'" in p.reason for p in problems.problems)
    assert "negative" in problems.problems[0].reason and "not a finite number" in problems.problems[1].reason


def test_multi_line_description_is_read_with_its_start_line(tmp_path: Path) -> None:
    path = tmp_path / "cat.csv"
    path.write_text('id,image,description\nm1,a.jpg,"line one\nline two, with a comma\nsaid ""hi"""\nm2,b.jpg,plain\n')
    products, problems = _read(path)
    assert not problems.problems
    assert products[0].metadata["description"] == 'line one line two, with a comma said "hi"'
    assert [p.origin for p in products] == [f"{path}:2", f"{path}:5"]


def test_unterminated_quote_in_a_key_field_is_reported_and_later_rows_read(tmp_path: Path) -> None:
    path = tmp_path / "cat.csv"
    path.write_text('id,image,price\nx0,a.jpg,1\nx1,"b.jpg,1\nx2,c.jpg",2\nx3,d.jpg,3\n')
    products, problems = _read(path)
    (problem,) = problems.problems
    assert problem.line == 3 and "fields spanning lines 3–4: unterminated quote?" in problem.reason
    assert "image" in problem.reason
    assert [p.id for p in products] == ["x0", "x2", "x3"]  # x2's line is read again on its own
    assert products[-1].origin == f"{path}:5"


def test_unterminated_quote_in_free_text_is_reported_not_merged(tmp_path: Path) -> None:
    path = tmp_path / "cat.csv"
    path.write_text('id,image,description\na1,a.jpg,"broken\na2,b.jpg,fine\na3,c.jpg,"quoted"\na4,d.jpg,fine\n')
    products, problems = _read(path)
    (problem,) = problems.problems
    assert problem.line == 2 and "lines 2–4" in problem.reason and "unterminated quote" in problem.reason
    assert [p.id for p in products] == ["a2", "a3", "a4"]
    assert "broken" not in str([p.metadata for p in products])


def test_quote_open_until_end_of_file_is_reported_at_its_start(tmp_path: Path) -> None:
    path = tmp_path / "cat.csv"
    path.write_text('id,image,description\nz1,a.jpg,ok\nz2,b.jpg,"never closed\nz3,c.jpg,ok\nz4,d.jpg,ok\n')
    products, problems = _read(path)
    (problem,) = problems.problems
    assert problem.line == 3 and "unterminated quote" in problem.reason and "end of the file" in problem.reason
    assert [p.id for p in products] == ["z1", "z3", "z4"]
    with pytest.raises(CatalogError, match=r"cat.csv:3: unterminated quote"):
        _read(path, strict=True)


def test_oversized_field_reported_at_its_start_line(tmp_path: Path) -> None:
    chunk = "y" * (csv.field_size_limit() // 2)
    path = tmp_path / "cat.csv"
    path.write_text(f'id,image,description\nok1,a.jpg,x\nbig,b.jpg,"{chunk}\n{chunk}\n{chunk}"\nok2,c.jpg,x\n')
    products, problems = _read(path)
    assert problems.problems[0].line == 3 and "field larger than field limit" in problems.problems[0].reason
    assert all(p.line in (3, 4, 5) for p in problems.problems)
    assert [p.id for p in products] == ["ok1", "ok2"] and products[1].origin == f"{path}:6"


def test_over_long_line_reported_and_skipped(tmp_path: Path) -> None:
    path = tmp_path / "cat.csv"
    path.write_text(f"id,image,title\nok1,a.jpg,x\nlong,b.jpg,{'t' * (MAX_LINE_CHARS + 10)}\nok2,c.jpg,x\n")
    products, problems = _read(path)
    (problem,) = problems.problems
    assert problem.line == 3 and "longer than" in problem.reason
    assert [p.id for p in products] == ["ok1", "ok2"]


def test_image_paths_outside_the_folder_are_refused(tmp_path: Path) -> None:
    folder, elsewhere = tmp_path / "cat", tmp_path / "elsewhere"
    folder.mkdir()
    elsewhere.mkdir()
    path = folder / "cat.csv"
    path.write_text(
        "id,image\n"
        "x1,/etc/passwd\n"
        f"x2,../elsewhere/b.jpg\n"
        f"x3,{elsewhere}/c.jpg\n"
        "x4,file:///etc/passwd\n"
        "x5,img/ok.jpg\n"
        "x6,img/../../cat/also-ok.jpg\n"
    )
    products, problems = _read(path)
    assert [p.id for p in products] == ["x5", "x6"]
    assert [p.line for p in problems.problems] == [2, 3, 4, 5]
    first = problems.problems[0].reason
    assert first == (
        f"product x1: image path /etc/passwd is outside the catalogue's folder {folder.resolve()} "
        "(allow other folders with --image-root DIR)"
    )
    assert "../elsewhere/b.jpg" in problems.problems[1].reason
    assert "unsupported URL scheme 'file'" in problems.problems[3].reason
    allowed, problems = _read(path, image_roots=[elsewhere])
    assert [p.id for p in allowed] == ["x2", "x3", "x5", "x6"]
    assert allowed[0].image == str((elsewhere / "b.jpg").resolve())


def test_symlinked_image_leading_outside_is_refused(tmp_path: Path) -> None:
    folder, secret = tmp_path / "cat", tmp_path / "secret.jpg"
    folder.mkdir()
    secret.write_bytes(b"x")
    (folder / "link.jpg").symlink_to(secret)
    path = folder / "cat.csv"
    path.write_text("id,image\nx1,link.jpg\n")
    products, problems = _read(path)
    assert not products and "outside the catalogue's folder" in problems.problems[0].reason


def test_images_column_holds_all_pictures(tmp_path: Path) -> None:
    path = tmp_path / "cat.csv"
    path.write_text("id,images,title\np1,a.jpg|b.jpg,Dress\np2, https://x.test/c.jpg | |a.jpg ,Top\np3,,Empty\n")
    products, problems = _read(path)
    p1, p2 = products
    assert p1.image == str(tmp_path / "a.jpg") and p1.images == [str(tmp_path / "a.jpg"), str(tmp_path / "b.jpg")]
    assert p2.images == ["https://x.test/c.jpg", str(tmp_path / "a.jpg")] and "images" not in p2.metadata
    (problem,) = problems.problems
    assert problem.line == 4 and "empty fields 'image' and 'images'" in problem.reason


def test_image_and_images_columns_together(tmp_path: Path) -> None:
    path = tmp_path / "cat.csv"
    path.write_text("id,image,pics\np1,a.jpg,b.jpg|a.jpg|c.jpg\np2,d.jpg,\np3,,e.jpg|f.jpg\n")
    p1, p2, p3 = _read(path, {"images": "pics"})[0]
    assert p1.images == [str(tmp_path / name) for name in ("a.jpg", "b.jpg", "c.jpg")]
    assert p2.images == [p2.image] == [str(tmp_path / "d.jpg")]
    assert p3.image == str(tmp_path / "e.jpg") and p3.images == [p3.image, str(tmp_path / "f.jpg")]
    assert "pics" not in p1.metadata
    (without,) = _read(path)[0][:1]
    assert without.images == [without.image] and without.metadata["pics"] == "b.jpg|a.jpg|c.jpg"


def test_images_with_an_image_template(tmp_path: Path) -> None:
    path = tmp_path / "styles.csv"
    path.write_text("id,images\n27152,extra/1.jpg|images/27152.jpg\n")
    (product,), _ = _read(path, parse_column_map("image=images/{id}.jpg"))
    assert product.images == [str(tmp_path / "images" / "27152.jpg"), str(tmp_path / "extra" / "1.jpg")]


def test_extra_picture_outside_the_folder_is_dropped_and_noted(tmp_path: Path) -> None:
    folder = tmp_path / "cat"
    folder.mkdir()
    path = folder / "cat.csv"
    path.write_text("id,image,images\nx1,a.jpg,../secret.jpg|/etc/passwd|b.jpg\nx2,c.jpg,\n")
    products, problems = _read(path, strict=True)
    assert [p.id for p in products] == ["x1", "x2"] and not problems.problems
    assert products[0].images == [str(folder / "a.jpg"), str(folder / "b.jpg")]
    assert [(n.line, n.reason.split(" (")[0]) for n in problems.notes] == [
        (2, "product x1: extra image dropped"),
        (2, "product x1: extra image dropped"),
    ]
    assert "../secret.jpg" in problems.notes[0].reason and "/etc/passwd" in problems.notes[1].reason


def test_images_column_with_a_line_break_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "cat.csv"
    path.write_text('id,image,images\nx1,a.jpg,"b.jpg|\nc.jpg"\nx2,d.jpg,\n')
    products, problems = _read(path)
    assert [p.id for p in products] == ["x2"] and "'images' holds a line break" in problems.problems[0].reason


def test_product_page_and_currency(tmp_path: Path) -> None:
    """A shop's own page and currency reach the answers; a link that is not http(s) never does."""
    path = tmp_path / "cat.csv"
    path.write_text(
        "id,image,price,url,currency\n"
        "p1,https://x.test/1.jpg,12.50,https://shop.test/p1,EUR\n"
        "p2,https://x.test/2.jpg,£8,javascript:alert(1),\n"
        "p3,https://x.test/3.jpg,8,,\n"
    )
    products, _ = _read(path)
    assert [p.metadata.get("currency") for p in products] == ["EUR", "GBP", None]
    assert product_url(products[0].metadata) == "https://shop.test/p1"
    assert product_url(products[1].metadata) == ""
    assert product_url({"link": " http://shop.test/x "}) == "http://shop.test/x"


@pytest.mark.parametrize(
    ("text", "code"), [("$5", "USD"), ("US$ 5", "USD"), ("5 EUR", "EUR"), ("€5", "EUR"), ("¥500", "JPY"), ("5", None)]
)
def test_price_currency(text: str, code: str | None) -> None:
    assert price_currency(text) == code
