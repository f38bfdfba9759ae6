"""Changing a built index in place: `firs add` and `firs remove`, seen by an open engine."""

from __future__ import annotations

import csv
import fcntl
import json
import os
import random
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from firs.cli import main
from firs.errors import IndexFormatError, QueryError
from firs.index import directory as layout
from firs.index.writer_lock import IndexBusy, lock_path, writer_lock
from firs.pipeline.compact import compact
from firs.pipeline.live_update import AddOptions, AddReport, add_products, remove_products
from firs.pipeline.reindex import ReindexOptions, reindex
from firs.search.engine import Query, SearchEngine
from firs.vision.embedder import Embedder


@pytest.fixture()
def index(garment_index: Path, tmp_path: Path) -> Path:
    """A private copy of the shared garment index (these tests change it)."""
    copy = tmp_path / "index"
    shutil.copytree(garment_index.resolve(), copy)
    return copy


def _catalogue(rows: list[dict[str, str]], folder: Path) -> Path:
    path = folder / f"new-{len(list(folder.glob('new-*.csv')))}.csv"
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, ["id", "image", "title", "brand", "category", "color", "price"])
        writer.writeheader()
        writer.writerows(rows)
    return path


def _row(garment_catalog: Path, source_id: str, new_id: str, **fields: str) -> dict[str, str]:
    with garment_catalog.open() as handle:
        row = next(r for r in csv.DictReader(handle) if r["id"] == source_id)
    row["image"] = str((garment_catalog.parent / row["image"]).resolve())
    return {**row, "id": new_id, **fields}


def _add(index: Path, source: Path, roots: list[Path]) -> AddReport:
    return add_products(index, [source], AddOptions(image_roots=roots, progress=False, cache_dir=source.parent / "c"))


def _scored(engine: SearchEngine, photo: Path) -> list[tuple[float, frozenset[str]]]:
    """An answer as groups of products of equal score, best first (the last group left out: the
    cut at k may fall inside it)."""
    results = engine.search(Query(image=photo, k=8)).results
    scores = sorted({round(r["score"], 3) for r in results}, reverse=True)[:-1]
    return [(s, frozenset(r["id"] for r in results if round(r["score"], 3) == s)) for s in scores]


def _ids(engine: SearchEngine, **query: object) -> list[str]:
    return [r["id"] for r in engine.search(Query(**query)).results]  # type: ignore[arg-type]


def test_added_products_are_found_by_an_open_engine(
    index: Path, garment_catalog: Path, embedder: Embedder, tmp_path: Path
) -> None:
    engine = SearchEngine(index, embedder=embedder)
    built = len(engine)
    first = engine.store.ids_by_label()[0]
    photo = garment_catalog.parent / "img" / f"{first}.png"
    source = _catalogue([_row(garment_catalog, first, "twin-of-first", title="Twin of the first")], tmp_path)

    report = _add(index, source, [garment_catalog.parent])
    assert report.added == ["twin-of-first"] and not report.updated and not report.failures
    assert "live" in layout.read_manifest(index)
    assert engine.refresh() and not engine.refresh()
    assert len(engine) == built + 1
    # The same picture embedded by the add and by the build: the same vector, so equal scores.
    results = engine.search(Query(image=photo, k=3)).results
    assert {r["id"] for r in results[:2]} == {first, "twin-of-first"}
    assert abs(results[0]["score"] - results[1]["score"]) < 1e-3
    assert "twin-of-first" in _ids(engine, image=photo, mode="fine", k=3)
    assert "twin-of-first" in _ids(engine, text="twin", k=5)
    assert "twin-of-first" in _ids(engine, like=first, k=3)
    assert first in _ids(engine, like="twin-of-first", k=3)
    tagged = engine.search(Query(image=photo, mode="tag", k=3))
    assert "twin-of-first" in [r["id"] for r in tagged.results]
    # A fresh engine (another process, a restart) sees the same.
    assert "twin-of-first" in _ids(SearchEngine(index, embedder=embedder), image=photo, k=2)


def test_an_update_replaces_the_product_and_a_remove_hides_it(
    index: Path, garment_catalog: Path, embedder: Embedder, tmp_path: Path
) -> None:
    engine = SearchEngine(index, embedder=embedder)
    ids = engine.store.ids_by_label()
    kept, changed, other_picture = ids[1], ids[2], ids[5]
    photo = garment_catalog.parent / "img" / f"{other_picture}.png"
    update = _row(garment_catalog, other_picture, changed, title="Renamed and repictured", price="99.00")
    report = _add(index, _catalogue([update], tmp_path), [garment_catalog.parent])
    assert report.updated == [changed] and not report.added
    engine.refresh()
    assert len(engine) == len(ids)  # an update adds nothing
    answer = _ids(engine, image=photo, k=len(ids))
    assert answer.count(changed) == 1 and answer.index(changed) <= 1  # found by its new picture, once
    assert engine.store.get(changed)["title"] == "Renamed and repictured"
    assert _ids(engine, text="repictured", k=5) == [changed]

    removed = remove_products(index, [changed, "no-such-product"])
    assert removed.removed == [changed] and removed.unknown == ["no-such-product"]
    engine.refresh()
    assert len(engine) == len(ids) - 1
    for query in (
        {"image": photo, "k": len(ids)},
        {"image": photo, "mode": "fine", "k": len(ids)},
        {"image": photo, "mode": "tag", "k": len(ids)},
        {"text": "repictured dress shirt", "k": len(ids)},
        {"like": kept, "k": len(ids)},
    ):
        assert changed not in _ids(engine, **query), query
    with pytest.raises(QueryError, match="not in this index"):
        engine.search(Query(like=changed))
    assert engine.store.get(changed) is None and engine.pictures.get(changed) is None
    assert not any(changed in engine.store.by_labels([int(x)]) for x in engine.postings.union(engine.postings.labels()))


def test_one_writer_at_a_time_and_a_live_index_is_compacted_before_reindex(
    index: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with writer_lock(index, "firs compact (a test)"):
        with pytest.raises(IndexBusy, match=r"another writer .*pid \d+: firs compact \(a test\)"):
            remove_products(index, ["anything"])
        assert main(["remove", "anything", "--index", str(index)]) == 2
        assert "another writer" in capsys.readouterr().err
    first = SearchEngine(index, verify=False).store.ids_by_label()[0]
    assert main(["remove", first, "--index", str(index)]) == 0
    with pytest.raises(IndexFormatError, match="firs compact"):
        reindex(index, ReindexOptions())


def test_a_lock_whose_holder_died_is_waited_for_and_a_living_holder_refused_at_once(tmp_path: Path) -> None:
    """kill -9 of a writer: its process is reaped a moment before the kernel drops its flock."""
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    target = tmp_path / "index"
    held = os.open(lock_path(target), os.O_RDWR | os.O_CREAT, 0o644)
    fcntl.flock(held, fcntl.LOCK_EX)
    os.pwrite(held, f"pid {os.getpid()}: firs build (alive)\n".encode(), 0)
    with pytest.raises(IndexBusy, match="firs build \\(alive\\)"), writer_lock(target, "second"):
        pass
    os.pwrite(held, f"pid {dead.pid}: firs build (killed)\n".encode(), 0)
    threading.Timer(0.3, os.close, [held]).start()  # the kernel letting go of the dead holder's lock
    with writer_lock(target, "second"):
        assert lock_path(target).read_text().startswith(f"pid {os.getpid()}: second")


def test_the_cli_adds_and_removes(
    index: Path, garment_catalog: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = [_row(garment_catalog, SearchEngine(index, verify=False).store.ids_by_label()[3], "cli-added")]
    rows.append({**rows[0], "id": "cli-broken", "image": str(tmp_path / "missing.jpg")})
    source = _catalogue(rows, tmp_path)
    roots = ["--image-root", str(tmp_path), "--image-root", str(garment_catalog.parent)]
    assert main(["add", str(source), "--index", str(index), *roots, "--quiet", "--cache-dir", str(tmp_path / "c")]) == 0
    out = capsys.readouterr().out
    assert "added 1, updated 0, not added 1 of 2 read" in out
    assert "cli-broken" in out
    assert main(["remove", "cli-added", "typo-id", "--index", str(index)]) == 1
    captured = capsys.readouterr()
    assert "removed 1" in captured.out and "not in the index: typo-id" in captured.err
    manifest = json.loads((index / layout.MANIFEST).read_text())
    assert layout.STORE not in manifest["files"] and manifest["live"]["files"] == list(layout.LIVE_FILES)
    SearchEngine(index)  # the manifest still vouches for every other file


def test_an_add_of_only_unusable_images_changes_nothing(index: Path, tmp_path: Path) -> None:
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not a picture")
    source = _catalogue([{"id": "bad", "image": str(broken), "title": "bad"}], tmp_path)
    before = (index / layout.MANIFEST).read_text()
    with pytest.raises(Exception, match="nothing was added"):
        _add(index, source, [tmp_path])
    assert (index / layout.MANIFEST).read_text() == before
    assert not list(index.glob(".adding-*"))


def test_vectors_of_added_products_follow_the_index_space(
    index: Path, garment_catalog: Path, embedder: Embedder, tmp_path: Path
) -> None:
    """A fine view with the colour signature fused: added vectors are fused the same way."""
    out = index
    engine = SearchEngine(out, embedder=embedder)
    assert engine.views["fine"].colour_weight > 0
    first = engine.store.ids_by_label()[0]
    _add(out, _catalogue([_row(garment_catalog, first, "fused-twin")], tmp_path), [garment_catalog.parent])
    engine.refresh()
    label = engine.store.label_of("fused-twin")
    original = engine.views["fine"].ann.vector(engine.store.label_of(first))
    assert np.abs(engine.views["fine"].ann.vector(label) - original).max() < 1e-3


def assert_consistent(index: Path) -> SearchEngine:
    """Store, graphs, added vectors, tag index and shards agree; each product wholly in or out."""
    engine = SearchEngine(index)
    store = engine.store
    labelled = dict(store.db.execute("SELECT idx, id FROM products WHERE idx IS NOT NULL").fetchall())
    ann = engine.views["simple"].ann
    visible = (set(range(len(ann.base))) - set(ann.hidden.tolist())) | set(ann.labels.tolist())
    assert set(labelled) == visible
    assert len(engine) == len(labelled)
    for view in engine.views.values():
        assert len(view.ann) == len(labelled) and set(view.ann.labels.tolist()) == set(ann.labels.tolist())
    base_ids = shards_ids(index)
    for label, product_id in labelled.items():
        if label < len(ann.base):
            assert base_ids[label] == product_id
    live = {label: pid for label, pid, _, _ in store.live_rows()}
    assert all(labelled[label] == pid for label, pid in live.items())
    for label in engine.postings.labels():
        assert set(engine.postings[label].tolist()) <= visible
    return engine


def shards_ids(index: Path) -> list[str]:
    from firs.index import shards

    return shards.read_ids(index / layout.SHARDS)


def test_compact_folds_the_changes_in(index: Path, garment_catalog: Path, embedder: Embedder, tmp_path: Path) -> None:
    engine = SearchEngine(index, embedder=embedder)
    ids = engine.store.ids_by_label()
    rows = [_row(garment_catalog, ids[0], "added-a"), _row(garment_catalog, ids[4], ids[1], title="Updated one")]
    _add(index, _catalogue(rows, tmp_path), [garment_catalog.parent])
    remove_products(index, [ids[2]])
    photo = garment_catalog.parent / "img" / f"{ids[4]}.png"
    engine.refresh()
    before = _scored(engine, photo)
    assert_consistent(index)

    report = compact(index)
    assert report is not None and (report.products, report.folded, report.dropped) == (len(ids), 2, 2)
    after = assert_consistent(index)
    manifest = layout.read_manifest(index)
    assert "live" not in manifest and manifest["compacted"]["folded"] == 2
    assert layout.STORE in manifest["files"]  # the manifest vouches for the stores again
    assert not len(after.views["fine"].ann.hidden) and not len(after.views["fine"].ann.labels)
    assert _scored(after, photo) == before  # the same answer (products of equal score in any order)
    assert after.store.get("added-a") is not None and after.store.get(ids[2]) is None
    assert after.store.get(ids[1])["title"] == "Updated one"
    assert compact(index) is None  # nothing left to fold
    reindex(index, ReindexOptions())  # a compacted index is a built index again


def _run_killed(command: list[str], delay: float) -> int | None:
    """Run a `firs` command, SIGKILL it after `delay` seconds; its exit status if it ended first."""
    process = subprocess.Popen(
        [sys.executable, "-m", "firs.cli", *command], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        return process.wait(timeout=delay)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        return None


def test_kill_9_at_random_moments_leaves_a_consistent_index(index: Path, garment_catalog: Path, tmp_path: Path) -> None:
    """add, remove and compact, each killed at random instants over its whole run: after every
    kill the index opens and agrees with itself; running the command again finishes the work."""
    ids = SearchEngine(index, verify=False).store.ids_by_label()
    rows = [_row(garment_catalog, ids[n % len(ids)], f"crash-{n}") for n in range(10)]
    rows += [_row(garment_catalog, ids[n + 10], ids[n], title=f"Updated {n}") for n in range(3)]
    source = _catalogue(rows, tmp_path)
    roots = ["--image-root", str(garment_catalog.parent), "--cache-dir", str(tmp_path / "c"), "--quiet"]
    commands = {
        "add": ["add", str(source), "--index", str(index), *roots],
        "remove": ["remove", *[f"crash-{n}" for n in range(0, 10, 2)], ids[5], "--index", str(index)],
        "compact": ["compact", "--index", str(index)],
    }
    rng = random.Random(0)
    kills = 0
    for name, command in commands.items():
        start = time.perf_counter()
        assert _run_killed(command, 120) in (0, 1), name  # once whole: how long it takes
        took = time.perf_counter() - start
        if name == "remove":  # put the removed products back, so that the kills have work to cut short
            _run_killed(commands["add"], 120)
        for _ in range(4):
            status = _run_killed(command, rng.uniform(0.3, took))
            kills += status is None
            assert_consistent(index)
        assert _run_killed(command, 120) in (0, 1), name  # again, to the end
        engine = assert_consistent(index)
        present = {f"crash-{n}" for n in range(10)} if name == "add" else set()
        if name == "remove":
            present = {f"crash-{n}" for n in range(1, 10, 2)}
            assert engine.store.get(ids[5]) is None
        for product_id in present:
            assert engine.store.get(product_id) is not None, product_id
        for n in range(3):
            assert engine.store.get(ids[n])["title"] == f"Updated {n}"
    assert kills >= 6  # most of the twelve runs were cut short, not finished before the kill
    assert "live" not in layout.read_manifest(index)
    assert list(layout.versions_dir(index).iterdir()) == [index.resolve()]  # killed compacts' folders gone
    assert not list(index.resolve().glob(".adding-*"))


def test_a_remove_of_unknown_ids_leaves_a_built_index_as_built(index: Path) -> None:
    """Found by hand: opening the store for writing changed its bytes (WAL mode, new tables) before
    any product was removed, so the manifest's checksum no longer matched and the index was refused."""
    before = {name: (index / name).read_bytes() for name in (layout.MANIFEST, layout.STORE, layout.IMAGES)}
    report = remove_products(index, ["no-such-product"])
    assert report.unknown == ["no-such-product"] and not report.removed
    assert {name: (index / name).read_bytes() for name in before} == before
    SearchEngine(index)  # full checksums
