"""`firs demo`: its drawn street photo is found first in the mode it prints (the web page's default)."""

from __future__ import annotations

from pathlib import Path

import pytest

from firs.demo.run import MODE, QUERY_PRODUCT, run_demo
from firs.search.engine import Query, SearchEngine
from firs.vision.embedder import Embedder

from .helpers import catalog_ids, transformed_copy


def test_demo_finds_its_query_first_in_mode_fine(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, embedder: Embedder, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)  # the default workdir, demo/, as `make demo` makes it
    run_demo(Path("demo"), embedder=embedder)
    out = capsys.readouterr().out
    assert MODE == "fine"
    assert "no person found: searched the most salient object" in out  # the dress, cut out of the photo
    assert f"{QUERY_PRODUCT.product_id}, came #1 (mode fine:" in out
    assert "\n  make serve   # the web page" in out  # `make serve` serves demo/index
    # the whole photo finds it too: the garment is no needle in a haystack
    answer = SearchEngine(Path("demo/index"), embedder).search(Query(image=Path("demo/query.jpg"), k=2))
    assert answer.results[0]["id"] == QUERY_PRODUCT.product_id


def test_demo_on_a_users_catalogue_and_photo(
    garment_catalog: Path, embedder: Embedder, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    product_id = catalog_ids(garment_catalog)[2]
    photo = transformed_copy(garment_catalog.parent / "img" / f"{product_id}.png", tmp_path / "mine.jpg")
    run_demo(tmp_path / "work", catalog=[garment_catalog], query=photo, embedder=embedder)
    out = capsys.readouterr().out
    assert f"query: {photo}\n" in out and "(mode fine: the garment located in the photo" in out
    assert "came #" not in out  # no place for a product the demo did not draw
    assert f"firs serve --index {tmp_path / 'work' / 'index'}   # the web page" in out
    assert "read 24  indexed 24" in out
