"""How a trained model's fine search ranks, and what scoring around it would change (issue 10).

Runs the held-out studio queries and their street versions through a built index's real fine
search once, keeping the garment cut-out each search embedded (its trunk maps and colour
signature) and the rank the index gave; computes every catalogue product's fine view the way
the build does, as trunk maps (also of its mirror image) and colour signature. Cached in
RUN/fusion/. Then, with exact search over the whole gallery, scores each model given:
  - the model as the index uses it (should match the index's ranks, which it prints beside);
  - colour weights other than the index's;
  - the untrained (ImageNet, PCA-whitened) features blended in at query time;
  - the catalogue side as the mean of the fine view and its mirror image;
  - the query expanded by its top results;
  - the trained weights moved back part of the way to the untrained ones (WiSE-FT).
    python bench/rank_fusion.py --run bench/out/dev-t5 [--model OTHER_MODEL_DIR ...]
RUN is a bench/devset_train.sh output folder (catalog.csv, heldout.tsv, street/queries.tsv,
model/, index-model/).
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from firs.catalog.sources import read_catalog
from firs.eval.metrics import mean_average_precision, recall_at
from firs.eval.queries import read_queries
from firs.index.model_dir import TrainedModel
from firs.index.whitening import Whitening, fit_whitening
from firs.pipeline.embed_stage import embed_images
from firs.pipeline.partition import catalogue_loader
from firs.search.engine import Query, SearchEngine
from firs.vision.backbone_tail import BackboneTail
from firs.vision.colour_signature import signatures
from firs.vision.embedder import Embedder

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
SETS = {"studio": "heldout.tsv", "street": "street/queries.tsv"}
DEPTH = 100


class _MapsBothWays:
    """embed_images' network: the trunk's maps of each picture and of its mirror image."""

    def __init__(self, embedder: Embedder) -> None:
        self.embedder = embedder

    def forward(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        maps = self.embedder.trunk(batch)
        mirrored = self.embedder.trunk(np.ascontiguousarray(batch[..., ::-1]))
        return np.concatenate([maps, mirrored], axis=1).astype(np.float16), np.zeros((len(batch), 0), np.float32)


def catalogue_cache(run: Path, image_root: Path, engine: SearchEngine) -> dict[str, Any]:
    """The catalogue's fine-view trunk maps (and their mirror images') and garment signatures,
    of the kind the index holds."""
    embedder, localiser = engine.embedder, engine.localiser
    target = run / "fusion" / "catalogue.npz"
    if not target.is_file():
        products, _ = read_catalog([run / "catalog.csv"], image_roots=[image_root])
        items = [(p.id, p.image) for p in products]
        load = catalogue_loader(embedder, localiser, {p.id: p.categories for p in products}, fine_only=True)
        kind = engine.views["fine"].signature
        net = _MapsBothWays(embedder)
        done = embed_images(items, net, load, signature_views=("fine",), signature_kind=kind, desc="catalogue")
        target.parent.mkdir(parents=True, exist_ok=True)
        maps = done.features["fine"]
        half = maps.shape[1] // 2
        np.savez(
            target, ids=np.array(done.ids), maps=maps[:, :half], mirrored=maps[:, half:], colour=done.signatures["fine"]
        )
    with np.load(target) as data:
        return {key: data[key] for key in data.files}


def fine_cuts(engine: SearchEngine, queries: list[Any], desc: str) -> Iterator[tuple[Any, Any, np.ndarray, int]]:
    """Each query through the index's real fine search: (the query, the garment cut-out it
    embedded, the search vector made of it, the rank it gave the query's product — 0 when not
    in the top DEPTH)."""
    seen: dict[str, Any] = {}
    real = engine.vector_of

    def spy(image: Any, view: str, classify: bool = True) -> Any:
        vector, probabilities = real(image, view, classify)
        if view == "fine":
            seen["cut"], seen["vector"] = image, vector
        return vector, probabilities

    engine.vector_of = spy  # type: ignore[method-assign]
    try:
        for query in tqdm(queries, desc=desc):
            seen.clear()
            ids = [r["id"] for r in engine.search(Query(image=query.path, k=DEPTH, mode="fine")).results]
            rank = ids.index(query.product_id) + 1 if query.product_id in ids else 0
            yield query, seen["cut"], seen["vector"], rank
    finally:
        engine.vector_of = real  # type: ignore[method-assign]


def query_cache(run: Path, name: str, engine: SearchEngine) -> dict[str, Any]:
    target = run / "fusion" / f"queries-{name}.npz"
    if not target.is_file():
        products, maps, colours, ranks = [], [], [], []
        for query, cut, _, rank in fine_cuts(engine, read_queries(run / SETS[name]), f"{name} queries"):
            prepared = engine.embedder.prepare(cut, engine.view_resize("fine"))[None]
            products.append(query.product_id)
            maps.append(engine.embedder.trunk(prepared)[0].astype(np.float16))
            colours.append(signatures(prepared, engine.views["fine"].signature)[0])
            ranks.append(rank)
        target.parent.mkdir(parents=True, exist_ok=True)
        np.savez(
            target, products=np.array(products), maps=np.stack(maps), colour=np.stack(colours), ranks=np.array(ranks)
        )
    with np.load(target) as data:
        return {key: data[key] for key in data.files}


def pooled(embedder: Embedder, tail: Any, maps: np.ndarray) -> np.ndarray:
    out = []
    with torch.inference_mode():
        for begin in range(0, len(maps), 256):
            x = torch.from_numpy(maps[begin : begin + 256].astype(np.float32))
            out.append(embedder.pool(tail(x)).numpy())
    return np.concatenate(out)


def interpolated(model: TrainedModel, start: Whitening, net: Any, share: float) -> tuple[TrainedModel, Any]:
    """The model's weights moved back towards where training started (WiSE-FT): `share` of the
    trained ones, the rest the untrained search's (the ImageNet tail, the PCA-whitening)."""

    def mix(trained: Whitening) -> Whitening:
        return Whitening(
            share * trained.mean + (1 - share) * start.mean,
            share * trained.projection + (1 - share) * start.projection,
        )

    tail = model.backbone_tail(net)
    if tail is not None:
        before = BackboneTail(net, model.tuned_blocks).state_dict()
        with torch.no_grad():
            for name, value in tail.state_dict().items():
                if value.is_floating_point():
                    value.copy_(share * value + (1 - share) * before[name])
    return TrainedModel(mix(model.query), mix(model.catalogue), model.info, None), tail


def unit(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def ranks_of(scores: np.ndarray, targets: np.ndarray) -> list[int | None]:
    better = (scores > scores[np.arange(len(targets)), targets][:, None]).sum(axis=1)
    return [int(b) + 1 if b < DEPTH else None for b in better]


def line(label: str, ranks: list[int | None]) -> str:
    recalls = " / ".join(f"{recall_at(ranks, k):.3f}" for k in (1, 5, 10, 20))
    return f"  {label:<44} {recalls} / {mean_average_precision(ranks):.3f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", type=Path, default=Path("bench/out/dev-t5"))
    parser.add_argument("--model", type=Path, action="append", default=[], help="default: RUN/model")
    parser.add_argument("--colour", type=float, nargs="*", default=[0.0, 0.2, 0.4, 0.6, 0.8, 1.0])
    parser.add_argument("--share", type=float, nargs="*", default=[0.5, 0.7, 0.85])
    parser.add_argument("--blend", type=float, nargs="*", default=[0.15, 0.25, 0.35, 0.5])
    parser.add_argument("--ensemble", action="store_true", help="also score the models' mean cosine")
    args = parser.parse_args()
    engine = SearchEngine(args.run / "index-model")
    embedder = engine.embedder
    catalogue = catalogue_cache(args.run, DATA, engine)
    row_of = {str(pid): row for row, pid in enumerate(catalogue["ids"])}
    sets = {name: query_cache(args.run, name, engine) for name in SETS}
    original = embedder.original_tail
    plain_cat = pooled(embedder, original, catalogue["maps"])
    whitenings = {dim: fit_whitening(plain_cat, dim) for dim in (1024, 256, 128)}
    targets_of = {name: np.array([row_of[str(p)] for p in data["products"]]) for name, data in sets.items()}
    colour_of = {name: data["colour"] @ catalogue["colour"].T for name, data in sets.items()}
    plain_cat_of = {dim: whitenings[dim].apply(plain_cat) for dim in (1024, 256)}
    plain_of = {}  # the untrained search's cosines, per query set and whitened dimension
    for name, data in sets.items():
        queries = pooled(embedder, original, data["maps"])
        plain_of[name] = {dim: whitenings[dim].apply(queries) @ vectors.T for dim, vectors in plain_cat_of.items()}
    index_weight = engine.views["fine"].colour_weight
    cosines: dict[str, list[np.ndarray]] = {name: [] for name in sets}
    for folder in args.model or [args.run / "model"]:
        model = TrainedModel.load(folder)
        tail = model.backbone_tail(embedder.net) or original
        cat_e = model.catalogue.apply(pooled(embedder, tail, catalogue["maps"]))
        cat_mirror = model.catalogue.apply(pooled(embedder, tail, catalogue["mirrored"]))
        mixes = {}
        for share in args.share:
            mixed, mixed_tail = interpolated(model, whitenings[model.dim], embedder.net, share)
            mixed_tail = mixed_tail or original
            mixes[share] = (mixed, mixed_tail, mixed.catalogue.apply(pooled(embedder, mixed_tail, catalogue["maps"])))
        print(f"== {folder} (index colour weight {index_weight})")
        print(f"  {'':<44} R@1 / R@5 / R@10 / R@20 / mAP")
        for name, data in sets.items():
            targets, colour = targets_of[name], colour_of[name]
            q_e = model.query.apply(pooled(embedder, tail, data["maps"]))
            print(f" {name} ({len(targets)} queries)")
            print(line("the index's own fine search", [int(r) or None for r in data["ranks"]]))
            cosine = q_e @ cat_e.T
            cosines[name].append(cosine)
            for w in args.colour:
                print(line(f"colour {w}", ranks_of(cosine + w * colour, targets)))
            fused = index_weight * colour
            for dim, plain in plain_of[name].items():
                for a in args.blend:
                    for w in sorted({index_weight, index_weight + 0.1 * (dim == 256)}):
                        blended = ranks_of(cosine + a * plain + w * colour, targets)
                        print(line(f"colour {w:g}, untrained {dim}-d blended {a}", blended))
            mirror = q_e @ unit(cat_e + cat_mirror).T
            print(line(f"colour {index_weight}, catalogue mean of mirror", ranks_of(mirror + fused, targets)))
            first = cosine + fused
            for k in (1, 3):
                top = np.argsort(-first, axis=1)[:, :k]
                expanded = unit(q_e + 0.5 * cat_e[top].mean(axis=1))
                print(
                    line(
                        f"colour {index_weight}, query expanded by top {k}",
                        ranks_of(expanded @ cat_e.T + fused, targets),
                    )
                )
            for share, (mixed, mixed_tail, c_m) in mixes.items():
                q_m = mixed.query.apply(pooled(embedder, mixed_tail, data["maps"]))
                for w in (index_weight, index_weight + 0.1):
                    print(line(f"colour {w:g}, weights {share} trained", ranks_of(q_m @ c_m.T + w * colour, targets)))

    if args.ensemble:
        print(f"== the mean cosine of {len(args.model)} models")
        for name in sets:
            mean = np.mean(cosines[name], axis=0)
            for w in (0.3, index_weight):
                print(line(f"{name}, colour {w}", ranks_of(mean + w * colour_of[name], targets_of[name])))


if __name__ == "__main__":
    main()
