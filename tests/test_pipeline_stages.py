"""The offline pipeline's two stages: embed (partitions -> shards, local or Spark) and index (shards -> index)."""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from firs.catalog.fetch import FetchPolicy
from firs.cli import main
from firs.index import directory as layout
from firs.index.ann import EXACT_CATALOGUE, LARGE_CATALOGUE
from firs.index.shards import columns, read_column, shard_paths
from firs.pipeline.build import BuildOptions, build_index
from firs.pipeline.engines import local_slots
from firs.pipeline.partition import EmbedJob, PartitionTask, embed_partition, models_for, partition
from firs.search.engine import Query, SearchEngine
from firs.vision.colour_signature import DEFAULT_KIND
from firs.vision.colour_signature import size as size_of
from firs.vision.embedder import Embedder, EmbedderSpec


@pytest.fixture(scope="module")
def catalogue_with_a_bad_image(garment_catalog: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The 24 garments plus one product whose image file is not an image."""
    folder = tmp_path_factory.mktemp("bad")
    shutil.copytree(garment_catalog.parent / "img", folder / "img")
    (folder / "img" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    rows = list(csv.reader(garment_catalog.open()))
    rows.append(["broken", "img/broken.png", "Broken", "Acme", "t-shirt", "red", "9.99"])
    path = folder / "catalog.csv"
    with path.open("w", newline="") as handle:
        csv.writer(handle).writerows(rows)
    return path


def _build(catalogue: Path, out: Path, embedder: Embedder | None, **options: object) -> None:
    build_index(
        [catalogue],
        out,
        BuildOptions(progress=False, cache_dir=out.parent / "cache", **options),
        embedder,  # type: ignore[arg-type]
    )


def test_partitions_are_consecutive_and_cover_every_product() -> None:
    products = [(f"p{i}", f"/x/{i}.jpg", ("dress",)) for i in range(7)]
    tasks = partition(products, 3)
    assert [t.number for t in tasks] == [0, 1, 2] and [len(t.products) for t in tasks] == [3, 3, 1]
    assert [p for t in tasks for p in t.products] == products
    assert local_slots("local[2]") == 2 and local_slots("local") == 1 and local_slots("spark://h:7077") is None


def test_a_partition_with_a_bad_image_writes_the_others_and_reports_it(
    catalogue_with_a_bad_image: Path, embedder: Embedder, tmp_path: Path
) -> None:
    folder = catalogue_with_a_bad_image.parent / "img"
    task = PartitionTask(
        4, (("a", str(folder / "broken.png"), ()), ("b", str(folder / "dress-black-solid.png"), ("t-shirt",)))
    )
    job = EmbedJob(EmbedderSpec(), str(tmp_path / "cache"), FetchPolicy())
    report = embed_partition(job, task, str(tmp_path / "shards"), str(tmp_path / "pictures"), models_for(job, embedder))
    assert report.number == 4 and report.embedded == 1 and set(report.failures) == {"a"}
    assert "broken.png" in report.failures["a"] and report.notes == {"product shot": 1}
    assert [p.name for p in shard_paths(tmp_path / "shards")] == ["part-00004.parquet"]
    assert {"id", "note", "labels", "simple", "fine", "fine_colour"} <= set(columns(tmp_path / "shards"))
    assert read_column(tmp_path / "shards", "fine")[0] == ["b"]


def test_the_index_is_made_from_the_shards_in_partition_order(
    catalogue_with_a_bad_image: Path, embedder: Embedder, tmp_path: Path
) -> None:
    _build(catalogue_with_a_bad_image, tmp_path / "index", embedder, partitions=4)
    index = tmp_path / "index"
    manifest = json.loads((index / layout.MANIFEST).read_text())
    assert manifest["shards"]["partitions"] == 4 and manifest["shards"]["engine"] == "local"
    assert manifest["counts"] == {"read": 25, "indexed": 24, "skipped": 0, "failed": 1}
    ids = read_column(index / layout.SHARDS, "fine")[0]
    engine = SearchEngine(index, embedder)
    assert [engine.store.label_of(i) for i in ids] == list(range(24))  # ANN label = shard row order
    assert engine.store.get("broken")["status"] == "failed"  # type: ignore[index]
    assert not (index / ".pictures").exists() and len(list((index / layout.SHARDS).iterdir())) == 4
    photo = catalogue_with_a_bad_image.parent / "img" / f"{ids[5]}.png"
    assert engine.search(Query(image=photo, k=1)).results[0]["id"] == ids[5]


def test_spark_gives_the_same_index_as_the_local_engine(
    catalogue_with_a_bad_image: Path, embedder: Embedder, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    _build(catalogue_with_a_bad_image, tmp_path / "local", embedder, partitions=3)
    _build(catalogue_with_a_bad_image, tmp_path / "spark", None, partitions=3, engine="spark", master="local[2]")
    assert " WARN " not in capfd.readouterr().err  # the JVM's start-up chatter stays out of the build's output
    spark_manifest = json.loads((tmp_path / "spark" / layout.MANIFEST).read_text())
    assert spark_manifest["shards"]["engine"] == "spark" and spark_manifest["counts"]["failed"] == 1
    for column in ("simple", "fine", "fine_colour"):
        local_ids, local = read_column(tmp_path / "local" / layout.SHARDS, column)
        spark_ids, spark = read_column(tmp_path / "spark" / layout.SHARDS, column)
        assert local_ids == spark_ids and np.allclose(local, spark, atol=1e-4), column
    engines = [SearchEngine(tmp_path / name, embedder) for name in ("local", "spark")]
    for photo in sorted((catalogue_with_a_bad_image.parent / "img").glob("[a-z]*-*.png"))[:4]:
        for mode in ("simple", "fine"):
            answers = [[r["id"] for r in e.search(Query(image=photo, mode=mode, k=5)).results] for e in engines]
            assert answers[0] == answers[1], (photo.name, mode)


def test_reindex_remakes_the_views_from_the_shards_alone(
    garment_catalog: Path, embedder: Embedder, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    index = tmp_path / "index"
    catalogue = Path(shutil.copytree(garment_catalog.parent, tmp_path / "catalogue")) / garment_catalog.name
    _build(catalogue, index, embedder)
    before = json.loads((index / layout.MANIFEST).read_text())
    shutil.rmtree(catalogue.parent / "img")  # the images are gone: reindex must not need them
    assert main(["reindex", str(index), "--whitening-dim", "16", "--colour-weight", "0"]) == 0
    assert "24 products" in capsys.readouterr().out
    after = json.loads((index / layout.MANIFEST).read_text())
    assert after["views"]["simple"]["dim"] == 16 and after["views"]["fine"]["dim"] == 16
    assert "colour" not in after["views"]["fine"] and after["reindexed"]["from"] == before["created"]
    for name in (layout.STORE, layout.IMAGES, layout.POSTINGS, f"{layout.SHARDS}/part-00000.parquet"):
        assert after["files"][name] == before["files"][name]
    engine = SearchEngine(index, embedder)
    photo = garment_catalog.parent / "img" / f"{read_column(index / layout.SHARDS, 'fine')[0][3]}.png"
    assert engine.search(Query(image=photo, mode="fine", k=1)).results[0]["id"] == photo.stem
    # the settings a plain reindex keeps are the index's own
    assert main(["reindex", str(index)]) == 0
    assert json.loads((index / layout.MANIFEST).read_text())["views"]["fine"]["dim"] == 16
    # the default walks the graph on 8-bit vectors and scores with float32: float32's answers, scores and all
    assert json.loads((index / layout.MANIFEST).read_text())["ann"]["storage"] == "sq8-exact"
    exact = SearchEngine(index, embedder).search(Query(image=photo, mode="fine", k=5)).results
    assert main(["reindex", str(index), "--compress", "none"]) == 0
    assert json.loads((index / layout.MANIFEST).read_text())["ann"]["storage"] == "flat"
    float32 = SearchEngine(index, embedder).search(Query(image=photo, mode="fine", k=5)).results
    assert [(r["id"], r["score"]) for r in exact] == [(r["id"], r["score"]) for r in float32]
    # 8-bit vectors only: a quarter of the bytes, the same answers here
    flat = [r["id"] for r in float32]
    size = (index / "views" / "fine" / layout.ANN).stat().st_size
    assert main(["reindex", str(index), "--compress", "sq8"]) == 0
    assert json.loads((index / layout.MANIFEST).read_text())["ann"]["storage"] == "sq8"
    assert (index / "views" / "fine" / layout.ANN).stat().st_size < size
    compressed = SearchEngine(index, embedder)
    assert [r["id"] for r in compressed.search(Query(image=photo, mode="fine", k=5)).results][:3] == flat[:3]
    # the colour turned back on: the shards name their signature's kind, though the view had none
    assert main(["reindex", str(index), "--colour-weight", "0.6"]) == 0
    fine = json.loads((index / layout.MANIFEST).read_text())["views"]["fine"]
    assert fine["colour"]["kind"] == DEFAULT_KIND and fine["dim"] == 16 + size_of(DEFAULT_KIND)
    coloured = SearchEngine(index, embedder)
    assert coloured.search(Query(image=photo, mode="fine", k=1)).results[0]["id"] == photo.stem


def test_reindex_refuses_what_it_cannot_do(garment_catalog: Path, embedder: Embedder, tmp_path: Path) -> None:
    index = tmp_path / "index"
    _build(garment_catalog, index, embedder)
    with pytest.raises(SystemExit):
        main(["reindex", str(index), "--compress", "pq"])
    assert main(["reindex", str(index), "--model", str(tmp_path), "--no-model"]) == 2
    assert main(["reindex", str(tmp_path / "nothing")]) == 2
    shard = next((index / layout.SHARDS).iterdir())
    shard.write_bytes(shard.read_bytes()[:-4] + b"\0\0\0\0")
    assert main(["reindex", str(index)]) == 2  # a damaged shard is named, the index left as it was
    assert SearchEngine(index, embedder).store.count("indexed") == 24


def test_the_cli_builds_compressed_in_partitions(
    garment_catalog: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "index"
    args = ["build", str(garment_catalog), "--out", str(out), "--quiet", "--cache-dir", str(tmp_path)]
    assert main([*args, "--partitions", "5", "--compress", "sq8"]) == 0
    manifest = json.loads((out / layout.MANIFEST).read_text())
    total = sum(entry["bytes"] for entry in manifest["files"].values())
    assert f"on disk {total / 1e6:.1f} MB, {total / 24 / 1e3:.1f} kB a product" in capsys.readouterr().out
    assert manifest["ann"]["storage"] == "sq8" and manifest["shards"]["partitions"] == 5
    assert main([*args, "--partitions", "0"]) == 2
    assert main([*args, "--master", "local[2]"]) == 2  # a master without the Spark engine is a mistake


def test_spark_without_java_is_a_clear_error(garment_catalog: Path, tmp_path: Path) -> None:
    firs = Path(sys.executable).parent / "firs"
    out = tmp_path / "index"
    command = [str(firs), "build", str(garment_catalog), "--out", str(out), "--quiet", "--engine", "spark"]
    env = {**os.environ, "JAVA_HOME": str(tmp_path / "no-java")}  # Spark runs $JAVA_HOME/bin/java
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 2 and "cannot start Spark" in done.stderr and "Java 17" in done.stderr
    assert not out.exists()


def test_a_large_catalogue_is_compressed_by_default() -> None:
    small, large = BuildOptions().view_settings(1000), BuildOptions().view_settings(LARGE_CATALOGUE)
    assert (small.whitening_dim, small.hnsw.storage) == (1024, "sq8-exact")
    middle = BuildOptions().view_settings(EXACT_CATALOGUE)  # float32 beside 8 bits would pass ~2 GB
    assert (middle.whitening_dim, middle.hnsw.storage) == (1024, "flat")
    assert (large.whitening_dim, large.hnsw.storage) == (256, "sq8")
    chosen = BuildOptions(compress="none", whitening_dim=512).view_settings(LARGE_CATALOGUE)
    assert (chosen.whitening_dim, chosen.hnsw.storage) == (512, "flat")  # what the user asks for wins
