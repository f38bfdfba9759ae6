"""Build -> search round trips on generated catalogues, atomic rebuilds, index checks."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from PIL import Image

from firs.cli import main
from firs.errors import CatalogError, IndexFormatError
from firs.index import directory as layout
from firs.index.shards import read_column
from firs.pipeline.build import BuildOptions, build_index
from firs.search.engine import Query, SearchEngine
from firs.vision.embedder import Embedder

from .helpers import catalog_ids, transformed_copy


def test_index_directory_contents(garment_index: Path, garment_catalog: Path) -> None:
    manifest = json.loads((garment_index / layout.MANIFEST).read_text())
    assert manifest["counts"] == {"read": 24, "indexed": 24, "skipped": 0, "failed": 0}
    assert manifest["embedder"]["model"] == "efficientnet-lite0"
    assert manifest["metric"] == "cosine"
    assert set(manifest["views"]) == {"simple", "fine"}
    assert manifest["catalog_images"] == {"product shot": 24}
    for view, info in manifest["views"].items():  # efSearch tuned per view, and searched with
        assert info["search"]["recall@10"] >= 0.97
        engine = SearchEngine(garment_index)
        assert engine.views[view].ann.base.params.ef_search == info["search"]["ef_search"]
    assert f"{layout.SHARDS}/part-00000.parquet" in manifest["files"]
    for view in ("simple", "fine"):
        folder = layout.view_dir(view)
        for name in (layout.ANN, layout.WHITENING):
            assert f"{folder}/{name}" in manifest["files"]
        ids, features = read_column(garment_index / layout.SHARDS, view)
        assert sorted(ids) == sorted(catalog_ids(garment_catalog)) and features.shape == (24, 1280)
    assert layout.STORE in manifest["files"]


def test_transformed_copy_comes_first(
    garment_index: Path, garment_catalog: Path, embedder: Embedder, tmp_path: Path
) -> None:
    engine = SearchEngine(garment_index, embedder)
    for product_id in catalog_ids(garment_catalog)[::5]:
        query = transformed_copy(garment_catalog.parent / "img" / f"{product_id}.png", tmp_path / f"{product_id}.jpg")
        answer = engine.search(Query(image=query, k=5))
        assert answer.results[0]["id"] == product_id
        assert set(answer.timings_ms) == {"decode", "embed", "search", "total"}


def test_cli_search_json(
    garment_index: Path, garment_catalog: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    product_id = catalog_ids(garment_catalog)[3]
    query = transformed_copy(garment_catalog.parent / "img" / f"{product_id}.png", tmp_path / "q.jpg")
    assert main(["search", str(query), "--index", str(garment_index), "--top-k", "3", "--json"]) == 0
    answer = json.loads(capsys.readouterr().out)
    assert len(answer["results"]) == 3
    top = answer["results"][0]
    assert top["id"] == product_id
    for key in ("score", "title", "brand", "category", "price", "image", "color"):
        assert key in top
    assert top["brand"] == "Acme" and isinstance(top["price"], float)
    assert set(answer["timings_ms"]) >= {"decode", "embed", "search", "total"}
    assert main(["search", str(query), "--index", str(garment_index)]) == 0
    table = capsys.readouterr().out
    assert product_id in table and "timings (ms)" in table


def test_failed_build_leaves_old_index_intact(
    garment_index: Path, garment_catalog: Path, embedder: Embedder, tmp_path: Path
) -> None:
    target = tmp_path / "index"
    shutil.copytree(garment_index, target)
    before = (target / layout.MANIFEST).read_text()
    broken = tmp_path / "broken.csv"
    broken.write_text("id,image\nz1,missing1.jpg\nz2,missing2.jpg\n")
    with pytest.raises(CatalogError, match=r"none of the 2 products"):
        build_index([broken], target, BuildOptions(progress=False), embedder)
    assert (target / layout.MANIFEST).read_text() == before
    assert SearchEngine(target, embedder).store.count() == 24
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".index.")]


def test_partial_failures_are_reported_not_fatal(garment_catalog: Path, embedder: Embedder, tmp_path: Path) -> None:
    catalog = tmp_path / "mixed.csv"
    folder = garment_catalog.parent
    rows = garment_catalog.read_text().splitlines()
    (tmp_path / "fake.jpg").write_text("not really a jpeg")
    extra = ["bad1,missing.jpg,x,y,z,w,1", f"bad2,{tmp_path / 'fake.jpg'},x,y,z,w,1", "bad3,,x,y,z,w,1"]
    catalog.write_text("\n".join(rows[:6] + extra) + "\n")
    catalog_rows = [line.replace("img/", f"{folder}/img/") for line in catalog.read_text().splitlines()]
    catalog.write_text("\n".join(catalog_rows) + "\n")
    options = BuildOptions(progress=False, image_roots=[folder])  # the images lie beside another catalogue
    report = build_index([catalog], tmp_path / "idx", options, embedder)
    assert (report.read, report.indexed, report.skipped, report.failed) == (7, 5, 1, 2)
    assert "no such file" in report.failures["bad1"] and "not an image" in report.failures["bad2"]
    store = SearchEngine(tmp_path / "idx", embedder).store
    assert store.get("bad1")["status"] == "failed" and store.count("indexed") == 5


def test_embedder_mismatch_is_a_clear_error(garment_index: Path, embedder: Embedder, tmp_path: Path) -> None:
    target = tmp_path / "index"
    shutil.copytree(garment_index, target)
    manifest = json.loads((target / layout.MANIFEST).read_text())
    manifest["embedder"]["weights_sha256"] = "0" * 64
    (target / layout.MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(IndexFormatError, match=r"different embedder.*weights_sha256"):
        SearchEngine(target, embedder)


def test_an_index_from_before_resampling_was_recorded_keeps_pillows(
    garment_index: Path, garment_catalog: Path, embedder: Embedder, tmp_path: Path
) -> None:
    target = tmp_path / "index"
    shutil.copytree(garment_index, target)
    manifest = json.loads((target / layout.MANIFEST).read_text())
    assert manifest["embedder"]["resample"] == "area-linear"  # what a build records now
    del manifest["embedder"]["resample"]
    (target / layout.MANIFEST).write_text(json.dumps(manifest))
    older = SearchEngine(target)  # its queries are prepared as its catalogue was
    assert older.embedder.spec.resample == older.localiser.resample == "pil-bilinear"
    photo = sorted((garment_catalog.parent / "img").glob("*.png"))[2]
    assert older.search(Query(image=photo, k=3)).results
    with pytest.raises(IndexFormatError, match=r"resample: index 'pil-bilinear', running 'area-linear'"):
        SearchEngine(target, embedder)
    manifest["embedder"]["resample"] = "lanczos"
    (target / layout.MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(IndexFormatError, match="unknown resampling 'lanczos'"):
        SearchEngine(target)


def test_corrupt_or_missing_index_is_a_clear_error(garment_index: Path, embedder: Embedder, tmp_path: Path) -> None:
    target = tmp_path / "index"
    shutil.copytree(garment_index, target)
    ann = target / layout.view_dir("simple") / layout.ANN
    with ann.open("r+b") as handle:
        handle.seek(100)
        handle.write(b"\xff" * 16)
    with pytest.raises(IndexFormatError, match="checksum"):
        SearchEngine(target, embedder)
    ann.write_bytes(b"short")
    with pytest.raises(IndexFormatError, match="corrupt"):
        SearchEngine(target, embedder)
    with pytest.raises(IndexFormatError, match="no such index directory"):
        SearchEngine(tmp_path / "nowhere", embedder)
    (target / layout.MANIFEST).write_text("{not json")
    with pytest.raises(IndexFormatError, match="corrupt manifest"):
        SearchEngine(target, embedder)


def test_build_refuses_to_replace_a_non_index_folder(garment_catalog: Path, embedder: Embedder, tmp_path: Path) -> None:
    precious = tmp_path / "photos"
    precious.mkdir()
    (precious / "holiday.jpg").write_bytes(b"x")
    with pytest.raises(IndexFormatError, match="not a FIRS index"):
        build_index([garment_catalog], precious, BuildOptions(progress=False), embedder)
    assert (precious / "holiday.jpg").exists()


def test_fine_search_finds_the_item_small_and_off_centre(
    garment_index: Path, garment_catalog: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    product_id = catalog_ids(garment_catalog)[7]
    item = Image.open(garment_catalog.parent / "img" / f"{product_id}.png").convert("RGB").resize((110, 110))
    scene = Image.new("RGB", (480, 360), (236, 238, 240))
    scene.paste(item, (330, 40))
    query = tmp_path / "small.jpg"
    scene.save(query, quality=90)
    assert main(["search", str(query), "--index", str(garment_index), "--mode", "fine", "--json"]) == 0
    answer = json.loads(capsys.readouterr().out)
    assert answer["results"][0]["id"] == product_id
    assert set(answer["timings_ms"]) == {"decode", "detect", "segment", "embed", "search", "total"}
    (region,) = answer["regions"]
    assert region["label"] == "object" and "no person" in answer["fallback"]
    x0, y0, x1, y1 = region["box"]
    assert x0 >= 320 and x1 <= 445 and y0 >= 30 and y1 <= 155
    assert main(["search", str(query), "--index", str(garment_index), "--mode", "fine", "--all-items", "--json"]) == 0
    answer = json.loads(capsys.readouterr().out)
    assert [entry["results"][0]["id"] for entry in answer["items"]] == [product_id]
