from pathlib import Path

import pytest

from firs.catalog.csv_reader import parse_column_map, read_csv
from firs.catalog.problems import ProblemLog
from firs.errors import CatalogError


def _read(path: Path, columns=None, strict=False):
    problems = ProblemLog(strict)
    return list(read_csv(path, problems, columns)), problems


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
    assert p1.metadata == {"category": "Dresses", "gender": "women", "color": "red"}
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
