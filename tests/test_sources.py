from pathlib import Path

import pytest
from PIL import Image

from firs.catalog.sources import detect_format, read_catalog
from firs.errors import CatalogError


def test_folder_reader_ids_and_categories(tmp_path: Path) -> None:
    (tmp_path / "shoes").mkdir()
    Image.new("RGB", (20, 20), "red").save(tmp_path / "red-top.jpg")
    Image.new("RGB", (20, 20), "blue").save(tmp_path / "shoes" / "blue_sneaker.png")
    (tmp_path / "notes.txt").write_text("not an image")
    products, problems = read_catalog([tmp_path])
    assert sorted(p.id for p in products) == ["blue_sneaker", "red-top"]
    sneaker = next(p for p in products if p.id == "blue_sneaker")
    assert sneaker.categories == ["shoes"] and sneaker.title == "blue sneaker"
    assert len(problems.problems) == 1 and "notes.txt" in problems.problems[0].path


def test_duplicate_id_across_sources_names_both(tmp_path: Path) -> None:
    a, b = tmp_path / "a.csv", tmp_path / "b.csv"
    a.write_text("id,image\nx1,1.jpg\nx2,2.jpg\n")
    b.write_text("id,image\nx3,3.jpg\nx2,4.jpg\n")
    with pytest.raises(CatalogError) as error:
        read_catalog([a, b])
    assert f"{a}:3" in str(error.value) and f"{b}:3" in str(error.value)


def test_sources_merge_and_formats(tmp_path: Path) -> None:
    a = tmp_path / "a.csv"
    a.write_text("id,image\nx1,1.jpg\n")
    b = tmp_path / "meta.json"
    b.write_text('{"asin": "B1", "imageURL": ["http://h/i.jpg"]}\n')
    products, _ = read_catalog([a, b])
    assert [p.id for p in products] == ["x1", "B1"]
    assert detect_format(a) == "csv" and detect_format(b) == "amazon"
    assert detect_format(tmp_path) == "folder"


def test_missing_source_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(CatalogError, match="does not exist"):
        read_catalog([tmp_path / "nope.csv"])


def test_corrupt_gzip_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "meta.json.gz"
    path.write_bytes(b"\x1f\x8b\x08\x00garbage")
    with pytest.raises(CatalogError, match="cannot read"):
        read_catalog([path])


def test_image_roots_reach_every_reader(tmp_path: Path) -> None:
    folder, shared = tmp_path / "cat", tmp_path / "shared"
    folder.mkdir()
    shared.mkdir()
    a = folder / "a.csv"
    a.write_text(f"id,image\nx1,{shared}/1.jpg\n")
    b = folder / "meta.json"
    b.write_text(f'{{"asin": "B1", "imUrl": "{shared}/2.jpg"}}\n')
    products, problems = read_catalog([a, b])
    assert not products and [(p.path, p.line) for p in problems.problems] == [(str(a), 2), (str(b), 1)]
    products, problems = read_catalog([a, b], image_roots=[shared])
    assert [p.id for p in products] == ["x1", "B1"] and not problems.problems


def test_folder_symlink_leading_outside_is_refused(tmp_path: Path) -> None:
    root, outside = tmp_path / "photos", tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    Image.new("RGB", (8, 8), "red").save(root / "inside.jpg")
    Image.new("RGB", (8, 8), "blue").save(outside / "secret.jpg")
    (root / "sneaky.jpg").symlink_to(outside / "secret.jpg")
    (root / "alias.jpg").symlink_to(root / "inside.jpg")
    products, problems = read_catalog([root])
    assert sorted(p.id for p in products) == ["alias", "inside"]
    (problem,) = problems.problems
    assert problem.path == str(root / "sneaky.jpg") and "outside the catalogue's folder" in problem.reason
    products, problems = read_catalog([root], image_roots=[outside])
    assert sorted(p.id for p in products) == ["alias", "inside", "sneaky"] and not problems.problems


def test_every_reader_gives_the_pictures(tmp_path: Path) -> None:
    Image.new("RGB", (8, 8), "red").save(tmp_path / "one.jpg")
    (folder_product,), _ = read_catalog([tmp_path])
    assert folder_product.images == [folder_product.image] == [str(tmp_path / "one.jpg")]
    a = tmp_path / "a.csv"
    a.write_text("id,images\nx1,1.jpg|2.jpg\n")
    b = tmp_path / "meta.json"
    b.write_text('{"asin": "B1", "imUrl": "1.jpg", "imageURL": ["http://h/i.jpg", "../out.jpg"]}\n')
    (x1, b1), problems = read_catalog([a, b])
    assert x1.images == [str(tmp_path / "1.jpg"), str(tmp_path / "2.jpg")]
    assert b1.images == [str(tmp_path / "1.jpg"), "http://h/i.jpg"]
    assert not problems.problems and [(n.path, n.line) for n in problems.notes] == [(str(b), 1)]
