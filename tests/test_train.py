"""`firs train` on a generated paired set: drawn garments as the catalogue, the same garments
drawn differently in cluttered scenes as the query photos."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from firs.build.pipeline import BuildOptions, build_index
from firs.catalog.problems import ProblemLog
from firs.cli import main
from firs.demo.garments import catalogue_specs, cluttered_scene, draw_garment
from firs.errors import CatalogError, FirsError, IndexFormatError
from firs.search.engine import Query, SearchEngine
from firs.train.model_dir import HEAD, TrainedModel
from firs.train.pairs import read_pairs
from firs.train.run import TrainSetup, train_model
from firs.train.trainer import TrainOptions
from firs.vision.embedder import Embedder

OPTIONS = dict(epochs=12, dim=32, val_fraction=0.25, patience=12, seed=3, learning_rate=3e-3)


@pytest.fixture(scope="module")
def paired(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """catalog.csv (64 drawn products) and pairs.tsv (two scene photos each) in one folder."""
    folder = tmp_path_factory.mktemp("paired")
    (folder / "img").mkdir()
    (folder / "photos").mkdir()
    with (folder / "catalog.csv").open("w", newline="") as handle, (folder / "pairs.tsv").open("w") as pairs:
        writer = csv.writer(handle)
        writer.writerow(["id", "image", "category"])
        pairs.write("query\tproduct_id\n")
        for number, spec in enumerate(catalogue_specs()):
            draw_garment(spec, size=128).save(folder / "img" / f"{spec.product_id}.png")
            writer.writerow([spec.product_id, f"img/{spec.product_id}.png", spec.kind])
            for style in (1, 2):
                name = f"photos/{spec.product_id}-{style}.jpg"
                cluttered_scene(draw_garment(spec, size=128, style=style), seed=number * 7 + style).save(folder / name)
                pairs.write(f"{name}\t{spec.product_id}\n")
    return folder


@pytest.fixture(scope="module")
def features(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One feature cache for every training run here: pose and backbone run once."""
    return tmp_path_factory.mktemp("features")


@pytest.fixture(scope="module")
def trained(paired: Path, features: Path, tmp_path_factory: pytest.TempPathFactory, embedder: Embedder) -> Path:
    out = tmp_path_factory.mktemp("model") / "model"
    setup = TrainSetup(
        catalog=[paired / "catalog.csv"],
        out=out,
        pairs=paired / "pairs.tsv",
        options=TrainOptions(**OPTIONS),
        views=2,
        progress=False,
        feature_cache=features,
    )
    train_model(setup, embedder)
    return out


def test_training_beats_the_untrained_model_on_held_out_products(trained: Path) -> None:
    info = json.loads((trained / "model.json").read_text())
    history = info["history"]
    untrained, best = history[0], history[info["best_epoch"]]
    assert info["best_epoch"] > 0 and info["dim"] == 32
    assert best["val_R@1"] + best["val_R@20"] > untrained["val_R@1"] + untrained["val_R@20"], history
    assert info["backbone"]["model"] == "efficientnet-lite0" and info["trained_on"]["val_products"] == 16
    assert all(len(entry) >= 5 for entry in history)  # loss and the four recalls per epoch


def test_an_index_built_with_the_model_searches_with_it(
    trained: Path, paired: Path, embedder: Embedder, tmp_path: Path
) -> None:
    options = BuildOptions(progress=False, cache_dir=tmp_path / "cache", model=trained)
    build_index([paired / "catalog.csv"], tmp_path / "index", options, embedder)
    manifest = json.loads((tmp_path / "index" / "manifest.json").read_text())
    assert manifest["model"]["sha256"] == TrainedModel.digest(trained) and manifest["views"]["fine"]["dim"] == 32
    engine = SearchEngine(tmp_path / "index", embedder)
    assert engine.views["fine"].query is not None and engine.views["simple"].query is None
    photo = next((paired / "photos").iterdir())
    answer = engine.search(Query(image=photo, mode="fine", k=5)).as_dict()
    assert len(answer["results"]) == 5
    # The index keeps its own copy of the model: a changed head is refused on open.
    head = tmp_path / "index" / "model" / HEAD
    head.write_bytes(head.read_bytes()[:-8] + b"\0" * 8)
    with pytest.raises(IndexFormatError, match="checksum"):
        SearchEngine(tmp_path / "index", embedder)


def test_interrupted_training_resumes_where_it_stopped(
    paired: Path, features: Path, embedder: Embedder, tmp_path: Path
) -> None:
    def run(out: Path, epochs: int, resume: bool) -> list[dict[str, float]]:
        options = TrainOptions(**{**OPTIONS, "epochs": epochs})
        setup = TrainSetup(
            catalog=[paired / "catalog.csv"],
            out=out,
            pairs=paired / "pairs.tsv",
            options=options,
            views=2,
            resume=resume,
            progress=False,
            feature_cache=features,
        )
        return train_model(setup, embedder).outcome.history

    whole = run(tmp_path / "whole", 6, resume=False)
    run(tmp_path / "cut", 3, resume=False)  # as if stopped after epoch 3
    resumed = run(tmp_path / "cut", 6, resume=True)
    assert [e["epoch"] for e in resumed] == list(range(7))
    for a, b in zip(whole, resumed, strict=True):
        assert np.allclose([a["loss"], a["val_R@20"]], [b["loss"], b["val_R@20"]], equal_nan=True, atol=1e-4), (a, b)


def test_bad_pairs_lines_are_reported_with_file_and_line(paired: Path, tmp_path: Path) -> None:
    pairs = tmp_path / "pairs.tsv"
    photo = next((paired / "photos").iterdir())
    pairs.write_text(f"query\tproduct_id\n{photo}\tnot-a-product\njust one field\n{photo}\tdress-black-solid\n")
    problems = ProblemLog()
    found = read_pairs(pairs, {"dress-black-solid"}, problems)
    assert len(found) == 1 and [p.line for p in problems.problems] == [2, 3]
    assert "not in the catalogue" in problems.problems[0].reason
    with pytest.raises(FirsError, match=r"bad.tsv:1: header"):
        (tmp_path / "bad.tsv").write_text("photo,product\n")
        read_pairs(tmp_path / "bad.tsv", set(), ProblemLog())


def test_a_model_of_another_backbone_is_refused(
    trained: Path, paired: Path, embedder: Embedder, tmp_path: Path
) -> None:
    other = tmp_path / "other"
    model = TrainedModel.load(trained)
    model.info["backbone"] = {**model.info["backbone"], "weights_sha256": "0" * 64}
    model.save(other)
    options = BuildOptions(progress=False, cache_dir=tmp_path / "cache", model=other)
    with pytest.raises(CatalogError, match="another backbone"):
        build_index([paired / "catalog.csv"], tmp_path / "index", options, embedder)
    assert not (tmp_path / "index").exists()


def test_the_cli_trains_and_reports(paired: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(
        [
            "train",
            "--queries",
            str(paired / "pairs.tsv"),
            "--catalog",
            str(paired / "catalog.csv"),
            "--out",
            str(tmp_path / "m"),
            "--epochs",
            "2",
            "--dim",
            "16",
            "--views",
            "1",
            "--quiet",
        ]
    )
    out = capsys.readouterr().out
    assert code == 0 and "untrained: held-out R@1" in out and (tmp_path / "m" / HEAD).is_file()
