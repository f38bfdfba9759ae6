"""Hundreds of malformed images through the API and the CLI in fine mode: every one gets an
answer or a clear 4xx / one-line error; never a 500, never a traceback. The counts by
outcome go to test-artifacts/malformed-corpus.json."""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from firs.cli import main
from firs.search.engine import SearchEngine
from firs.service.app import create_app
from firs.vision.embedder import Embedder

from .malformed_images import corpus

ARTIFACTS = Path(os.environ.get("FIRS_TEST_ARTIFACTS", Path(__file__).resolve().parents[1] / "test-artifacts"))
CORPUS = corpus()


@pytest.fixture(scope="module")
def client(garment_index: Path, embedder: Embedder) -> Iterator[TestClient]:
    with TestClient(create_app(SearchEngine(garment_index, embedder))) as test_client:
        yield test_client


def test_the_corpus_is_large_and_varied() -> None:
    kinds = Counter(kind for kind, _, _ in CORPUS)
    assert len(CORPUS) >= 200 and len(kinds) >= 9


def test_every_malformed_image_gets_an_answer_or_a_clear_4xx(client: TestClient) -> None:
    outcomes: Counter[str] = Counter()
    by_kind: dict[str, Counter[str]] = {}
    for kind, name, data in CORPUS:
        response = client.post("/api/search?mode=fine&top_k=3", files={"image": (f"{name}.bin", data)})
        body = response.json()
        assert response.status_code in (200, 413, 415, 422), (name, response.status_code, body)
        if response.status_code == 200:
            assert body["results"] and body["image_size"][0] > 0, name
            for region in body["regions"]:
                x0, y0, x1, y1 = region["box"]
                assert 0 <= x0 <= x1 <= body["image_size"][0] and 0 <= y0 <= y1 <= body["image_size"][1], name
        else:
            assert set(body) == {"error", "detail"} and body["error"], name
            assert "Traceback" not in json.dumps(body), name
        outcomes[str(response.status_code)] += 1
        by_kind.setdefault(kind, Counter())[str(response.status_code)] += 1
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    report = {"images": len(CORPUS), "api_fine": dict(outcomes), "by_kind": {k: dict(v) for k, v in by_kind.items()}}
    (ARTIFACTS / "malformed-corpus.json").write_text(json.dumps(report, indent=2) + "\n")
    assert outcomes["200"] and outcomes["415"] and outcomes["422"]


def test_the_cli_prints_one_line_and_exits_non_zero(
    garment_index: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    outcomes: Counter[int] = Counter()
    for kind, name, data in CORPUS:  # each call opens the index and loads the models anew, as a user's does
        path = tmp_path / f"{name}.img"
        path.write_bytes(data)
        code = main(["search", str(path), "--index", str(garment_index), "--mode", "fine", "--json", "--top-k", "2"])
        out, err = capsys.readouterr()
        assert code in (0, 2), (name, code, err)
        if code == 0:
            assert json.loads(out)["results"], name
        else:
            lines = err.strip().splitlines()
            assert len(lines) == 1 and lines[0].startswith("firs search: error: "), (kind, name, err)
        outcomes[code] += 1
    assert outcomes[0] and outcomes[2]
    report = (
        json.loads((ARTIFACTS / "malformed-corpus.json").read_text())
        if (ARTIFACTS / "malformed-corpus.json").exists()
        else {}
    )
    report["cli_fine"] = {"exit 0": outcomes[0], "exit 2": outcomes[2]}
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / "malformed-corpus.json").write_text(json.dumps(report, indent=2) + "\n")
