"""`firs train` on a generated paired set: drawn garments as the catalogue, the same garments
drawn differently in cluttered scenes as the query photos."""

from __future__ import annotations

import csv
import json
import random
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from skimage import data

from firs.catalog.problems import ProblemLog
from firs.catalog.product import Product
from firs.cli import main
from firs.demo.garments import catalogue_specs, cluttered_scene, draw_garment
from firs.errors import CatalogError, FirsError, IndexFormatError
from firs.index import colour_fusion
from firs.index.directory import read_manifest
from firs.index.model_dir import HEAD, TrainedModel
from firs.index.whitening import Whitening
from firs.pipeline.build import BuildOptions, build_index
from firs.pipeline.summary import footprint
from firs.search.engine import Query, SearchEngine
from firs.train import features as features_module
from firs.train.augment import street_scene, worn_view
from firs.train.features import query_features
from firs.train.pairs import Pair, read_pairs
from firs.train.run import PHOTO_VIEWS, SYNTHETIC_VIEWS, TrainSetup, train_model, unpaired_products
from firs.train.trainer import Outcome, TrainOptions, combine, info_nce, products_to_queries
from firs.vision.backbone_tail import EnsembleTail
from firs.vision.colour_signature import DEFAULT_KIND, size
from firs.vision.embedder import Embedder
from firs.vision.localiser import GarmentLocaliser

OPTIONS = dict(epochs=12, dim=32, val_fraction=0.25, patience=12, seed=3, learning_rate=3e-3, tune_blocks=0)


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


def _training(paired: Path, out: Path, cache: Path, resume: bool = False, **changes: object) -> TrainSetup:
    """The paired set's training with OPTIONS, `changes` on top, two views per query."""
    return TrainSetup(
        catalog=[paired / "catalog.csv"],
        out=out,
        pairs=paired / "pairs.tsv",
        options=TrainOptions(**{**OPTIONS, **changes}),  # type: ignore[arg-type]
        views=2,
        resume=resume,
        progress=False,
        feature_cache=cache,
    )


@pytest.fixture(scope="module")
def trained(paired: Path, features: Path, tmp_path_factory: pytest.TempPathFactory, embedder: Embedder) -> Path:
    out = tmp_path_factory.mktemp("model") / "model"
    train_model(_training(paired, out, features), embedder)
    return out


def test_training_beats_the_untrained_model_on_held_out_products(trained: Path) -> None:
    info = json.loads((trained / "model.json").read_text())
    history = info["history"]
    untrained, best = history[0], history[info["best_epoch"]]
    assert info["best_epoch"] > 0 and info["dim"] == 32
    assert best["val_R@1"] + best["val_R@20"] > untrained["val_R@1"] + untrained["val_R@20"], history
    assert info["backbone"]["model"] == "efficientnet-lite0" and info["trained_on"]["val_products"] == 16
    assert all(len(entry) >= 5 for entry in history)  # loss and the four recalls per epoch


def test_the_reverse_loss_does_not_count_a_product_s_other_queries_as_negatives() -> None:
    queries = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])  # the first two: photos of product 0
    products = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    positive = torch.tensor([0, 0, 1])
    assert float(products_to_queries(queries, products, positive, 0.05)) < 1e-6
    # Two products whose photos look alike: each product's query is only as likely as the other's.
    alike = products_to_queries(queries, products, torch.tensor([0, 1, 1]), 0.05)
    assert float(alike) > 0.4


def test_the_margin_asks_the_right_product_to_win_by_that_much() -> None:
    cosines, right = torch.tensor([[0.90, 0.85, 0.10]]), torch.tensor([0])
    plain = float(info_nce(cosines, right, 0.05, 0.0))
    with_margin = float(info_nce(cosines, right, 0.05, 0.1))
    # The right product ahead by 0.05 is, with a margin of 0.1, behind by 0.05.
    assert with_margin == pytest.approx(float(info_nce(torch.tensor([[0.80, 0.85, 0.10]]), right, 0.05, 0.0)))
    assert with_margin > plain + 0.9
    far_ahead = torch.tensor([[0.90, 0.20, 0.10]])
    assert float(info_nce(far_ahead, right, 0.05, 0.1)) < 1e-4


def test_an_index_built_with_the_model_searches_with_it(
    trained: Path, paired: Path, embedder: Embedder, tmp_path: Path
) -> None:
    options = BuildOptions(progress=False, cache_dir=tmp_path / "cache", model=trained)
    build_index([paired / "catalog.csv"], tmp_path / "index", options, embedder)
    manifest = json.loads((tmp_path / "index" / "manifest.json").read_text())
    fine = manifest["views"]["fine"]
    assert manifest["model"]["sha256"] == TrainedModel.digest(trained) and fine["whitening"]["dim"] == 32
    assert fine["dim"] == 32 + size(DEFAULT_KIND)  # the garment signature beside the learned embedding
    assert fine["colour"]["weight"] == colour_fusion.DEFAULT_WEIGHT  # the weight measured best with a model
    engine = SearchEngine(tmp_path / "index", embedder)
    assert engine.views["fine"].query is not None and engine.views["simple"].query is None
    photo = next((paired / "photos").iterdir())
    answer = engine.search(Query(image=photo, mode="fine", k=5)).as_dict()
    assert len(answer["results"]) == 5
    # A heads-only model needs no re-embedding: `firs reindex --model` on a plain index gives the same search.
    build_index(
        [paired / "catalog.csv"], tmp_path / "plain", BuildOptions(progress=False, cache_dir=tmp_path), embedder
    )
    # The learned 32 dimensions take less room a product than the plain index's whitening.
    plain_fine, model_fine = (footprint(read_manifest(tmp_path / name))[1]["fine"] for name in ("plain", "index"))
    assert 0 < model_fine < plain_fine
    assert main(["reindex", str(tmp_path / "plain"), "--model", str(trained)]) == 0
    reindexed = SearchEngine(tmp_path / "plain", embedder)
    assert reindexed.manifest["model"]["sha256"] == manifest["model"]["sha256"]
    again = reindexed.search(Query(image=photo, mode="fine", k=5)).as_dict()
    assert [r["id"] for r in again["results"]] == [r["id"] for r in answer["results"]]
    assert main(["reindex", str(tmp_path / "plain"), "--no-model"]) == 0
    assert SearchEngine(tmp_path / "plain", embedder).views["fine"].query is None
    # The index keeps its own copy of the model: a changed head is refused on open.
    head = tmp_path / "index" / "model" / HEAD
    head.write_bytes(head.read_bytes()[:-8] + b"\0" * 8)
    with pytest.raises(IndexFormatError, match="checksum"):
        SearchEngine(tmp_path / "index", embedder)


def test_interrupted_training_resumes_where_it_stopped(
    paired: Path, features: Path, embedder: Embedder, tmp_path: Path
) -> None:
    def run(out: Path, epochs: int, resume: bool) -> list[dict[str, float]]:
        return train_model(_training(paired, out, features, resume, epochs=epochs), embedder).outcome.history

    whole = run(tmp_path / "whole", 6, resume=False)
    run(tmp_path / "cut", 3, resume=False)  # as if stopped after epoch 3
    other = _training(paired, tmp_path / "cut", features, True, epochs=6)
    other.scenes = False  # other street versions: other data, not this checkpoint's
    with pytest.raises(FirsError, match="other data or options"):
        train_model(other, embedder)
    resumed = run(tmp_path / "cut", 6, resume=True)
    assert [e["epoch"] for e in resumed] == list(range(7))
    for a, b in zip(whole, resumed, strict=True):
        assert np.allclose([a["loss"], a["val_R@20"]], [b["loss"], b["val_R@20"]], equal_nan=True, atol=1e-4), (a, b)


def test_a_first_run_and_its_rerun_from_cached_features_train_on_the_same_numbers(
    paired: Path, embedder: Embedder, tmp_path: Path
) -> None:
    """The cache keeps features as float16; a first run must train on them as rounded too."""
    first = train_model(_training(paired, tmp_path / "first", tmp_path / "cache", epochs=2), embedder)
    cached = {path: path.stat().st_mtime_ns for path in (tmp_path / "cache").iterdir()}
    again = train_model(_training(paired, tmp_path / "again", tmp_path / "cache", epochs=2), embedder)
    assert {path: path.stat().st_mtime_ns for path in (tmp_path / "cache").iterdir()} == cached  # read, not made
    assert json.dumps(first.outcome.history) == json.dumps(again.outcome.history)


def test_a_product_given_another_body_region_has_its_features_made_again(
    paired: Path, embedder: Embedder, tmp_path: Path
) -> None:
    """The cached features are the garment cut from the region the category names: a product
    recategorised (t-shirt -> trousers) must not train on its old cut."""
    lines = (paired / "catalog.csv").read_text().splitlines()
    name, image, _ = lines[1].split(",")
    (paired / "recategorised.csv").write_text("\n".join([lines[0], f"{name},{image},trousers", *lines[2:]]) + "\n")
    cache = tmp_path / "cache"
    for catalogue in ("catalog.csv", "recategorised.csv", "catalog.csv"):
        setup = _training(paired, tmp_path / "m", cache, epochs=1)
        setup.catalog = [paired / catalogue]
        train_model(setup, embedder)
    assert len(list(cache.glob("catalogue-*.npz"))) == 2 and len(list(cache.glob("queries-*.npz"))) == 2


def test_a_training_that_stopped_early_trains_no_further_when_resumed(
    paired: Path, features: Path, embedder: Embedder, tmp_path: Path
) -> None:
    wild = {"learning_rate": 10.0, "patience": 1, "epochs": 6}  # every step makes the heads worse
    stopped = train_model(_training(paired, tmp_path / "m", features, **wild), embedder).outcome
    assert stopped.stopped_early and len(stopped.history) < 7
    head = (tmp_path / "m" / HEAD).read_bytes()
    resumed = train_model(_training(paired, tmp_path / "m", features, resume=True, **wild), embedder).outcome
    assert resumed.stopped_early and json.dumps(resumed.history) == json.dumps(stopped.history)
    assert (tmp_path / "m" / HEAD).read_bytes() == head


def test_tuning_the_last_block_trains_it_resumes_and_the_index_runs_it(
    paired: Path, features: Path, embedder: Embedder, tmp_path: Path
) -> None:
    def run(out: Path, epochs: int, resume: bool = False) -> TrainedModel:
        train_model(_training(paired, out, features, resume, epochs=epochs, tune_blocks=1, members=1), embedder)
        return TrainedModel.load(out)

    model = run(tmp_path / "model", 4)
    history = model.info["history"]
    assert model.tuned_blocks == 1 and model.info["best_epoch"] > 0
    assert history[model.info["best_epoch"]]["val_R@20"] + history[model.info["best_epoch"]]["val_R@1"] > (
        history[0]["val_R@20"] + history[0]["val_R@1"]
    )
    tail = model.backbone_tail(embedder.net)
    assert tail is not None
    # Only the last block and the head conv are in the model, and they moved.
    assert {name.split(".")[1] for name in model.tail or {}} == {"blocks", "conv_head", "bn1"}
    assert all(name.startswith(("tail.blocks.1.", "tail.conv_head.", "tail.bn1.")) for name in model.tail or {})
    original = dict(embedder.net._conv_head.named_parameters())["weight"].detach().numpy()
    assert not np.allclose(model.tail["tail.conv_head.weight"], original)  # type: ignore[index]

    run(tmp_path / "cut", 2)
    resumed = run(tmp_path / "cut", 4, resume=True).info["history"]
    assert [e["epoch"] for e in resumed] == list(range(5))
    for a, b in zip(history, resumed, strict=True):
        assert np.allclose([a["loss"], a["val_R@20"]], [b["loss"], b["val_R@20"]], equal_nan=True, atol=1e-4), (a, b)

    options = BuildOptions(progress=False, cache_dir=tmp_path / "cache", model=tmp_path / "model")
    build_index([paired / "catalog.csv"], tmp_path / "index", options, embedder)
    manifest = json.loads((tmp_path / "index" / "manifest.json").read_text())
    assert manifest["model"]["tuned_blocks"] == 1
    engine = SearchEngine(tmp_path / "index", embedder)
    assert engine.views["fine"].tail is not None and engine.views["simple"].tail is None
    photo = next((paired / "photos").iterdir())
    assert len(engine.search(Query(image=photo, mode="tag", k=5)).results) == 5
    # Its catalogue went through the tuned blocks: reindex keeps that model, and refuses to drop it.
    assert main(["reindex", str(tmp_path / "index"), "--no-model"]) == 2
    assert main(["reindex", str(tmp_path / "index"), "--whitening-dim", "8"]) == 0
    assert SearchEngine(tmp_path / "index", embedder).manifest["model"]["tuned_blocks"] == 1


def test_a_model_of_two_members_trains_them_apart_and_the_index_takes_their_features_side_by_side(
    paired: Path, features: Path, embedder: Embedder, tmp_path: Path
) -> None:
    report = train_model(_training(paired, tmp_path / "model", features, epochs=3, tune_blocks=1, members=2), embedder)
    model = TrainedModel.load(tmp_path / "model")
    assert model.members == 2 and model.dim == 32 and model.query.mean.shape == (2 * 1280,)
    assert {name.split(".")[0] for name in model.tail or {}} == {"tail", "tail1"}
    runs = model.info["member_runs"]
    assert [run["seed"] for run in runs] == [3, 4] and runs[0]["history"] != runs[1]["history"]
    assert report.validation is not None and set(report.validation) == set(runs[0]["history"][0]) - {"epoch", "loss"}
    # Each member's tail, pooled and normalised apart, side by side; each block of the heads maps its own.
    tail = model.backbone_tail(embedder.net)
    assert isinstance(tail, EnsembleTail) and len(tail.members) == 2
    pictures = np.random.default_rng(0).standard_normal((2, 3, 224, 224)).astype(np.float32)
    both = embedder.forward(pictures, tail, classify=False)[0]
    for number, member in enumerate(tail.members):
        alone = embedder.forward(pictures, member, classify=False)[0]
        assert np.allclose(both[:, number * 1280 : (number + 1) * 1280], alone, atol=1e-5)
    assert not np.allclose(model.catalogue.projection[:1280, :16], model.catalogue.projection[1280:, 16:])
    assert not model.catalogue.projection[:1280, 16:].any() and not model.catalogue.projection[1280:, :16].any()
    build_index(
        [paired / "catalog.csv"],
        tmp_path / "index",
        BuildOptions(progress=False, cache_dir=tmp_path / "cache", model=tmp_path / "model"),
    )
    engine = SearchEngine(tmp_path / "index", embedder)
    assert engine.manifest["model"]["members"] == 2 and isinstance(engine.views["fine"].tail, EnsembleTail)
    photo = next((paired / "photos").iterdir())
    assert len(engine.search(Query(image=photo, mode="fine", k=5)).results) == 5
    # Stopped before the second member's first checkpoint: --resume keeps the first, trains the second.
    (tmp_path / "model" / "checkpoint" / "member1" / "state.json").unlink()
    again = train_model(
        _training(paired, tmp_path / "model", features, True, epochs=3, tune_blocks=1, members=2), embedder
    )
    assert json.dumps(again.members[0].history) == json.dumps(report.members[0].history)
    finished = TrainedModel.load(tmp_path / "model").info["member_runs"][1]["history"]
    assert json.dumps(finished) == json.dumps(runs[1]["history"])


def test_members_share_the_dimensions_and_the_heads_take_each_members_own_block() -> None:
    options = TrainOptions(dim=256, members=3)
    assert [options.member_dim(m) for m in range(3)] == [86, 85, 85]
    assert TrainOptions(dim=256, members=3, tune_blocks=0).member_dim(0) == 256  # heads alone: one member
    rng = np.random.default_rng(0)
    members = [
        Outcome(
            Whitening(rng.standard_normal(1280).astype(np.float32), rng.standard_normal((1280, d)).astype(np.float32)),
            Whitening(rng.standard_normal(1280).astype(np.float32), rng.standard_normal((1280, d)).astype(np.float32)),
        )
        for d in (3, 2, 2)
    ]
    joined = combine(members).catalogue
    assert joined.projection.shape == (3 * 1280, 7) and joined.mean.shape == (3 * 1280,)
    for number, (column, member) in enumerate(zip((0, 3, 5), members, strict=True)):
        rows = slice(number * 1280, (number + 1) * 1280)
        block = joined.projection[rows, column : column + member.catalogue.dim]
        assert np.array_equal(block, member.catalogue.projection)
        outside = np.delete(joined.projection[rows], np.s_[column : column + member.catalogue.dim], axis=1)
        assert not outside.any()


def test_bad_pairs_lines_are_reported_with_file_and_line(paired: Path, tmp_path: Path) -> None:
    pairs = tmp_path / "pairs.tsv"
    photo = next((paired / "photos").iterdir())
    again = photo.parent / ".." / photo.parent.name / photo.name  # the same photo, written otherwise
    lines = [f"{photo}\tnot-a-product", "just one field", f"{photo}\tdress-black-solid", f"{paired}\tdress-black-solid"]
    lines.append(f"{again}\tdress-black-solid")
    pairs.write_text("query\tproduct_id\n" + "\n".join(lines) + "\n")
    problems = ProblemLog()
    found = read_pairs(pairs, {"dress-black-solid"}, problems)
    assert len(found) == 1 and [p.line for p in problems.problems] == [2, 3, 5, 6]
    assert "not in the catalogue" in problems.problems[0].reason
    assert problems.problems[2].reason.endswith("is not a file")  # a folder named as the photo
    assert "the same pair as line 4" in problems.problems[3].reason
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
    # A model.json that claims tuned blocks its weights file lacks (or the reverse) is refused.
    model = TrainedModel.load(trained)
    model.info["tuned_blocks"] = 1
    model.save(other)
    with pytest.raises(FirsError, match="disagree"):
        TrainedModel.load(other)

    # Heads of mismatched shapes, or holding NaN, are refused on loading, naming the tensor.
    model = TrainedModel.load(trained)
    narrow = Whitening(model.catalogue.mean, model.catalogue.projection[:, :8])
    TrainedModel(model.query, narrow, model.info).save(other)
    with pytest.raises(FirsError, match=r"query_projection is 1280x32, not 1280x8"):
        TrainedModel.load(other)
    poisoned = model.catalogue.projection.copy()
    poisoned[3, 5] = np.nan
    TrainedModel(model.query, Whitening(model.catalogue.mean, poisoned), model.info).save(other)
    with pytest.raises(FirsError, match="catalogue_projection holds non-finite values"):
        TrainedModel.load(other)


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
    assert "the last 2 backbone block(s) tuned" in out
    # --resume says so when there is nothing to resume (a mistyped --out would start over unseen).
    common = ["train", "--queries", str(paired / "pairs.tsv"), "--catalog", str(paired / "catalog.csv")]
    small = ["--epochs", "2", "--dim", "16", "--views", "1", "--quiet", "--resume"]
    assert main([*common, "--out", str(tmp_path / "m"), *small]) == 0
    assert "no checkpoint" not in capsys.readouterr().err
    assert main([*common, "--out", str(tmp_path / "m-typo"), *small]) == 0
    assert f"--resume: no checkpoint in {tmp_path / 'm-typo'}" in capsys.readouterr().err
    for bad in (["--tune-blocks", "3"], ["--margin", "1.5"], ["--margin", "-0.1"], ["--dim", "8", "--members", "5"]):
        assert main(["train", "--catalog", str(paired / "catalog.csv"), "--out", str(tmp_path / "x"), *bad]) == 2
    errors = capsys.readouterr().err
    assert "0 <= --margin < 1, not 1.5" in errors and "--dim (8) split into --members (5) parts" in errors


def test_training_into_a_file_or_a_folder_of_other_things_is_refused_before_any_work(
    paired: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    a_file = tmp_path / "notes.txt"
    a_file.write_text("mine")
    others = tmp_path / "holiday"
    others.mkdir()
    (others / "photo.jpg").write_bytes(b"mine too")
    args = ["train", "--queries", str(paired / "pairs.tsv"), "--catalog", str(paired / "catalog.csv")]
    for out in (a_file, others):
        assert main([*args, "--out", str(out), "--quiet"]) == 2
    assert main([*args, "--out", str(tmp_path / "m"), "--feature-cache", str(a_file), "--quiet"]) == 2
    errors = capsys.readouterr().err
    assert "notes.txt: exists and is not a folder" in errors and "holiday: a folder of other things" in errors
    assert f"--feature-cache {a_file}: exists and is not a folder" in errors
    assert a_file.read_text() == "mine" and sorted(p.name for p in others.iterdir()) == ["photo.jpg"]


def _worn(garment: Image.Image, person: Image.Image) -> Image.Image:
    """The garment pasted over the astronaut's suit: a person wearing it, as far as the localiser sees."""
    picture = person.copy()
    item = garment.resize((220, 220))
    alpha = Image.eval(item.convert("L"), lambda v: 0 if v > 245 else 255)
    picture.paste(item, (130, 292), alpha)
    return picture


def test_without_pairs_the_catalogue_s_worn_pictures_are_the_queries(
    features: Path, embedder: Embedder, tmp_path: Path
) -> None:
    person = Image.fromarray(data.astronaut())
    specs = [s for s in catalogue_specs() if s.kind in ("t-shirt", "long-sleeve shirt")][:10]
    (tmp_path / "img").mkdir()
    with (tmp_path / "catalog.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "image", "category", "images"])
        for number, spec in enumerate(specs):
            shot = f"img/{spec.product_id}.png"
            draw_garment(spec, size=128).save(tmp_path / shot)
            if number < 8:  # a model wears it in the second picture
                other = f"img/{spec.product_id}-worn.jpg"
                _worn(draw_garment(spec, size=128, style=1), person).save(tmp_path / other)
            else:  # a second flat shot: not a query
                other = f"img/{spec.product_id}-back.png"
                draw_garment(spec, size=128, style=2).save(tmp_path / other)
            writer.writerow([spec.product_id, shot, spec.kind, f"{shot}|{other}"])
    setup = TrainSetup(
        catalog=[tmp_path / "catalog.csv"],
        out=tmp_path / "model",
        options=TrainOptions(**{**OPTIONS, "epochs": 2}),
        progress=False,
        feature_cache=features,
    )
    report = train_model(setup, embedder)
    info = json.loads((tmp_path / "model" / "model.json").read_text())
    assert report.source == info["trained_on"]["pair_source"] == "worn pictures"
    assert info["views_per_query"] == PHOTO_VIEWS  # a photo's default: its cut-out and street versions
    assert info["street_versions"] == "scenes"
    assert info["trained_on"]["pairs_used"] == 8 and info["trained_on"]["pairs"] is None
    not_worn = [origin for origin, reason in report.failed.items() if "no person wears it" in reason]
    assert len(not_worn) == 2 and all(origin.endswith("picture 2") for origin in not_worn)


def test_products_no_pair_shows_train_on_made_up_pairs_and_never_validate(
    paired: Path, features: Path, embedder: Embedder, tmp_path: Path
) -> None:
    rows = (paired / "pairs.tsv").read_text().splitlines()
    kept = [r for r in rows[1:] if not r.split("\t")[1].startswith("dress")]  # the dresses have no pair now
    (tmp_path / "pairs.tsv").write_text("\n".join([rows[0], *(str(paired / r) for r in kept)]) + "\n")
    dresses = {r.split("\t")[1] for r in rows[1:]} - {r.split("\t")[1] for r in kept}
    broken = sorted(dresses)[0]  # its picture is no picture: it cannot be made up either
    (tmp_path / "broken.png").write_text("not a picture")
    lines = (paired / "catalog.csv").read_text().splitlines()
    lines = [f"{broken},{tmp_path / 'broken.png'},dress" if line.startswith(f"{broken},") else line for line in lines]
    (tmp_path / "catalog.csv").write_text("\n".join(lines).replace(",img/", f",{paired}/img/") + "\n")
    setup = _training(paired, tmp_path / "model", features, epochs=1, tune_blocks=2)  # the default: trunk maps
    setup.pairs, setup.catalog, setup.image_roots = tmp_path / "pairs.tsv", [tmp_path / "catalog.csv"], [paired]
    report = train_model(setup, embedder)
    info = json.loads((tmp_path / "model" / "model.json").read_text())
    assert report.made_up == info["trained_on"]["made_up_pairs"] == len(dresses) - 1 > 0
    assert list(report.catalogue_failed) == [broken]
    rerun = _training(paired, tmp_path / "again", features, epochs=1, tune_blocks=2)  # its features now cached
    rerun.pairs, rerun.catalog, rerun.image_roots = setup.pairs, setup.catalog, setup.image_roots
    assert list(train_model(rerun, embedder).catalogue_failed) == [broken]  # a cache keeps the failures
    assert info["trained_on"]["pairs_used"] == len(kept)
    assert report.train_pairs + report.val_pairs == len(kept)  # the made-up pairs count apart
    assert not dresses & set(info["trained_on"]["held_out_products"])  # validated on real pairs only
    setup = _training(paired, tmp_path / "alone", features, epochs=1)
    setup.pairs, setup.made_up_pairs = tmp_path / "pairs.tsv", False
    assert train_model(setup, embedder).made_up == 0


def test_made_up_pairs_are_at_most_a_seeded_draw_of_the_limit() -> None:
    products = [Product(id=f"p{n}", title="", image=f"p{n}.png") for n in range(10)]
    usable = {p.id: n for n, p in enumerate(products) if p.id != "p3"}  # p3's picture failed
    spare = unpaired_products(products, {"p0", "p1"}, usable, 4, seed=5)
    assert len(spare) == 4 and not {"p0", "p1", "p3"} & {p.id for p in spare}
    assert spare == unpaired_products(products, {"p0", "p1"}, usable, 4, seed=5)
    assert [p.id for p in unpaired_products(products, {"p0"}, usable, 99, seed=5)] == [
        f"p{n}" for n in (1, 2, 4, 5, 6, 7, 8, 9)
    ]


def test_a_catalogue_without_worn_pictures_trains_on_synthetic_street_versions(
    paired: Path, features: Path, embedder: Embedder, tmp_path: Path
) -> None:
    setup = TrainSetup(
        catalog=[paired / "catalog.csv"],
        out=tmp_path / "model",
        options=TrainOptions(**OPTIONS),
        progress=False,
        feature_cache=features,
    )
    report = train_model(setup, embedder)
    info = json.loads((tmp_path / "model" / "model.json").read_text())
    assert report.source == "synthetic" and info["trained_on"]["pairs_used"] == 64
    assert info["views_per_query"] == SYNTHETIC_VIEWS  # no clean view: made-up street versions only
    assert info["street_versions"] == "altered cut-outs"  # no person to put into a scene
    untrained, best = info["history"][0], info["history"][info["best_epoch"]]

    def recall(entry: dict[str, float]) -> float:  # both validation sets: 8 queries alone flip on one query
        return entry["val_R@1"] + entry["val_R@20"] + entry["val_street_R@1"] + entry["val_street_R@20"]

    assert info["best_epoch"] > 0 and recall(best) > recall(untrained)


def test_worn_view_bends_a_product_shot_and_keeps_its_colours() -> None:
    spec = catalogue_specs()[0]
    shot = draw_garment(spec, size=128)
    view = worn_view(shot, random.Random(1), [Image.new("RGB", (64, 64), (0, 200, 0))])
    assert view.size == shot.size and view.mode == "RGB"
    pixels = np.asarray(view).reshape(-1, 3)
    assert not np.array_equal(np.asarray(view), np.asarray(shot))
    garment = pixels[(pixels < 245).any(axis=1)]
    assert len(garment) > 0.1 * len(pixels)


def test_a_street_scene_puts_the_person_small_and_off_centre_where_it_says() -> None:
    photo = Image.new("RGB", (192, 256), (255, 255, 255))
    photo.paste((200, 0, 0), (48, 32, 144, 224))
    person = np.zeros((256, 192), np.float32)
    person[32:224, 48:144] = 1.0
    scene, (left, top, right, bottom) = street_scene(photo, person, random.Random(5), [])
    assert scene.size == (640, 480) and 0.35 * 480 - 1 <= bottom - top <= 0.7 * 480 + 1
    assert left <= 160 or left >= 320  # starts in the left quarter or the right half: off-centre
    inside = np.asarray(scene.crop((left, top, right, bottom)), dtype=int)
    centre = inside[len(inside) // 4 : 3 * len(inside) // 4, inside.shape[1] // 3 : 2 * inside.shape[1] // 3]
    assert np.abs(centre - [200, 0, 0]).max(axis=-1).mean() < 40  # the person's pixels, through blur and JPEG
    again, box = street_scene(photo, person, random.Random(5), [])
    assert box == (left, top, right, bottom) and np.array_equal(np.asarray(again), np.asarray(scene))


def test_street_scene_views_are_the_person_found_again_in_a_scene(
    embedder: Embedder, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    person = Image.fromarray(data.astronaut())
    specs = [s for s in catalogue_specs() if s.kind in ("t-shirt", "long-sleeve shirt")][:3]
    pairs = []
    for spec in specs:
        _worn(draw_garment(spec, size=128, style=1), person).save(tmp_path / f"{spec.product_id}.jpg")
        pairs.append(Pair(tmp_path / f"{spec.product_id}.jpg", spec.product_id, spec.product_id))
    categories = {spec.product_id: [spec.kind] for spec in specs}
    localiser = GarmentLocaliser()
    altered: list[Image.Image] = []  # cut-outs altered in place of a scene
    real_street_view = features_module.street_view
    monkeypatch.setattr(
        features_module, "street_view", lambda cut, *a: altered.append(cut) or real_street_view(cut, *a)
    )

    def made(scenes: bool) -> np.ndarray:
        cache = tmp_path / f"cache-{scenes}"
        return query_features(
            pairs, categories, embedder, localiser, cache, [], 2, progress=False, scenes=scenes
        ).features

    plain = made(False)
    assert len(altered) == 3
    scened = made(True)
    assert len(altered) == 3  # every scene's person was found again and cut out
    assert plain.shape == scened.shape == (3, 2, 1280)
    assert np.array_equal(plain[:, 0], scened[:, 0])  # the clean cut-out is the same either way
    assert not np.array_equal(plain[:, 1], scened[:, 1])
    # The same photos under other names: their augmentations are drawn for the names, so the cache
    # of the first names is not theirs (it used to be read back and fail on the names).
    renamed = [Pair(p.query, p.product_id, f"{p.origin} again") for p in pairs]
    again = query_features(renamed, categories, embedder, localiser, tmp_path / "cache-False", [], 2, progress=False)
    assert [p.origin for p in again.pairs] == [p.origin for p in renamed] and len(altered) == 6


def test_features_cut_out_at_another_working_size_are_made_again_not_read_from_the_cache(
    embedder: Embedder, tmp_path: Path
) -> None:
    person = Image.fromarray(data.astronaut())
    specs = [s for s in catalogue_specs() if s.kind == "t-shirt"][:2]
    pairs = []
    for spec in specs:
        _worn(draw_garment(spec, size=128, style=1), person).save(tmp_path / f"{spec.product_id}.jpg")
        pairs.append(Pair(tmp_path / f"{spec.product_id}.jpg", spec.product_id, spec.product_id))
    categories = {spec.product_id: [spec.kind] for spec in specs}
    cache, usual = tmp_path / "cache", GarmentLocaliser()
    smaller = GarmentLocaliser(estimator=usual.estimator, work_side=usual.work_side * 2 // 3)

    def made(localiser: GarmentLocaliser) -> np.ndarray:
        found = query_features(pairs, categories, embedder, localiser, cache, [], 2, progress=False, scenes=True)
        return found.features

    first = made(usual)
    assert len(list(cache.iterdir())) == 1
    # The photos and the options are the same, but the garments are cut out of other pixels.
    other = made(smaller)
    assert len(list(cache.iterdir())) == 2
    assert not np.array_equal(first[:, 1], other[:, 1])
    assert np.array_equal(made(usual), first)  # each size's cache is read back


def test_training_killed_at_a_random_moment_resumes_to_the_end(paired: Path, features: Path, tmp_path: Path) -> None:
    out, epochs = tmp_path / "model", 40  # the default model: the heads and the backbone's last two blocks
    command = [sys.executable, "-m", "firs.cli", "train", "--queries", str(paired / "pairs.tsv")]
    command += ["--catalog", str(paired / "catalog.csv"), "--out", str(out), "--epochs", str(epochs)]
    command += ["--dim", "16", "--val-fraction", "0", "--feature-cache", str(features), "--quiet"]
    command += ["--views", "2", "--seed", str(OPTIONS["seed"])]  # the features the other tests cached
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    state, deadline = out / "checkpoint" / "state.json", time.monotonic() + 300
    while not state.is_file():
        assert process.poll() is None, process.stderr.read() if process.stderr else ""
        assert time.monotonic() < deadline
        time.sleep(0.02)
    time.sleep(random.uniform(0.05, 0.5))
    process.kill()  # kill -9: no handler runs
    process.wait()
    stopped = json.loads(state.read_text())["epoch"]  # the checkpoint is whole, never torn
    assert 0 < stopped < epochs
    done = subprocess.run([*command, "--resume"], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    info = json.loads((out / "model.json").read_text())
    assert [entry["epoch"] for entry in info["history"]] == list(range(epochs + 1))
    assert info["best_epoch"] == epochs  # nothing held out: the last heads are the model
    assert TrainedModel.load(out).tuned_blocks == 2
