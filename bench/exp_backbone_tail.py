"""Does fine-tuning the backbone's last stages pay, over a head on frozen features? (issue 10)

Caches each picture's feature map before the backbone's last two blocks (7x7x192 at 224 px:
catalogue fine views, query cut-outs clean and one street version, made exactly as
`firs train` makes them), then trains on the training products' pairs:
  --tail 0: the linear heads alone on the frozen pooled features (what `firs train` does);
  --tail 1: also the last block and the 1x1 head conv;  --tail 2: the last two blocks too.
The catalogue side's negatives come from a memory bank refreshed every epoch; the batch's own
products are embedded fresh, with gradients. Prints held-out R@1/R@20 (studio, street) per epoch.
    python bench/exp_backbone_tail.py --out bench/out/tail [--tail 0 1 2] [--epochs 8]
Needs ../shared/data and the held-out split of bench/devset_train.sh (bench/out/dev/heldout.tsv).
"""

from __future__ import annotations

import argparse
import copy
import csv
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from firs.catalog.sources import read_catalog
from firs.index.whitening import fit_whitening
from firs.pipeline.build import catalogue_loader
from firs.pipeline.embed_stage import embed_images
from firs.train.features import query_features
from firs.train.pairs import Pair
from firs.train.trainer import recall
from firs.vision.colour_signature import colour_signatures
from firs.vision.embedder import Embedder
from firs.vision.localiser import GarmentLocaliser

CUT = 14  # blocks before this index run once and are cached
MAP_SIZE = 192 * 7 * 7
DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


class TrunkEmbedder:
    """Looks like an Embedder to the feature code, but returns the cached trunk's maps."""

    def __init__(self, embedder: Embedder) -> None:
        self.embedder = embedder
        self.identity = {**embedder.identity, "weights_sha256": f"trunk{CUT}-{embedder.identity['weights_sha256']}"}

    def prepare(self, image: Any, resize: str | None = None) -> np.ndarray:
        return self.embedder.prepare(image, resize)

    @torch.inference_mode()
    def forward(self, batch: np.ndarray) -> tuple[np.ndarray, None]:
        net = self.embedder.net
        x = net._swish(net._bn0(net._conv_stem(torch.from_numpy(batch))))
        for block in net._blocks[:CUT]:
            x = block(x)
        maps = x.reshape(len(x), -1).numpy()
        return np.concatenate([maps, colour_signatures(batch)], axis=1).astype(np.float16), None


class Tail(torch.nn.Module):
    """The last backbone blocks (the first `frozen` of them kept as they are), GeM, per-side linear maps."""

    def __init__(self, net: torch.nn.Module, trained_blocks: int) -> None:
        super().__init__()
        self.blocks = torch.nn.ModuleList(copy.deepcopy(list(net._blocks[CUT:])))
        self.conv_head, self.bn1, self.act = copy.deepcopy(net._conv_head), copy.deepcopy(net._bn1), net._swish
        for module in list(self.blocks[: len(self.blocks) - trained_blocks]):
            module.requires_grad_(False)
        if trained_blocks == 0:
            self.conv_head.requires_grad_(False)
            self.bn1.requires_grad_(False)

    def start_heads(self, start: Any) -> None:
        """Both sides' maps begin as the catalogue's PCA whitening, as in `firs train`."""
        mean = torch.from_numpy(start.mean.astype(np.float32))
        projection = torch.from_numpy(start.projection.astype(np.float32))
        self.means = torch.nn.ParameterList([torch.nn.Parameter(mean.clone()) for _ in range(2)])
        self.projections = torch.nn.ParameterList([torch.nn.Parameter(projection.clone()) for _ in range(2)])

    def pooled(self, maps: torch.Tensor) -> torch.Tensor:
        if maps.shape[-1] == 1280:  # already pooled once: the blocks are frozen
            return maps.float()
        x = maps.float().reshape(len(maps), 192, 7, 7)
        for block in self.blocks:
            x = block(x)
        x = self.act(self.bn1(self.conv_head(x)))
        pooled = x.clamp(min=1e-6).pow(3).mean(dim=(2, 3)).pow(1 / 3)
        return torch.nn.functional.normalize(pooled, dim=-1)

    def add_mlp(self, hidden: int = 1024) -> None:
        """A residual two-layer MLP before each side's linear map; zero at the start."""
        self.mlps = torch.nn.ModuleList()
        for _ in range(2):
            mlp = torch.nn.Sequential(torch.nn.Linear(1280, hidden), torch.nn.GELU(), torch.nn.Linear(hidden, 1280))
            torch.nn.init.zeros_(mlp[2].weight)
            torch.nn.init.zeros_(mlp[2].bias)
            self.mlps.append(mlp)

    def forward(self, maps: torch.Tensor, side: int) -> torch.Tensor:
        x = self.pooled(maps)
        if hasattr(self, "mlps"):
            x = x + self.mlps[side](x)
        z = (x - self.means[side]) @ self.projections[side]
        return torch.nn.functional.normalize(z, dim=-1)


def embed_all(tail: Tail, maps: torch.Tensor, side: int, batch: int = 256) -> torch.Tensor:
    with torch.no_grad():
        return torch.cat([tail(maps[i : i + batch], side) for i in range(0, len(maps), batch)])


def features(out: Path, catalog: Path, pairs_tsv: Path) -> tuple[list[str], np.ndarray, list[Pair], np.ndarray]:
    embedder = Embedder(threads=None)
    trunk, localiser = TrunkEmbedder(embedder), GarmentLocaliser()
    products, _ = read_catalog([catalog], image_roots=[DATA])
    target = out / "catalogue.npz"
    if target.is_file():
        stored = np.load(target)
        ids, cat = [str(x) for x in stored["ids"]], stored["maps"]
    else:
        load = catalogue_loader(embedder, localiser, {p.id: p.categories for p in products}, fine_only=True)
        done = embed_images([(p.id, p.image) for p in products], trunk, load, desc="catalogue maps")  # type: ignore[arg-type]
        ids, cat = done.ids, done.features["fine"]
        np.savez(target, ids=np.array(ids), maps=cat)
    with pairs_tsv.open() as handle:
        rows = list(csv.DictReader(handle, delimiter="\t"))
    pairs = [Pair(pairs_tsv.parent / r["query"], r["product_id"], f"{pairs_tsv}:{n + 2}") for n, r in enumerate(rows)]
    known = set(ids)
    pairs = [p for p in pairs if p.product_id in known]
    paths = [p.image for p in products]
    queries = query_features(pairs, {p.id: p.categories for p in products}, trunk, localiser, out, paths, views=2)  # type: ignore[arg-type]
    return ids, cat, queries.pairs, queries.features.astype(np.float16)


def signature_variant(path: Path, name: str, ids: list[str], pairs: list[Pair]) -> tuple[torch.Tensor, torch.Tensor]:
    """A signature variant of bench/colour_signature_dev.py, in this script's catalogue and pair order."""
    from colour_signature_dev import SIZE, VARIANTS  # a sibling bench script

    part = slice(VARIANTS.index(name) * SIZE, (VARIANTS.index(name) + 1) * SIZE)
    with np.load(path) as stored:
        row = {str(pid): i for i, pid in enumerate(stored["ids"])}
        at = {str(origin): i for i, origin in enumerate(stored["origins"])}
        cat = stored["catalogue"][[row[pid] for pid in ids], part]
        qs = stored["queries"][[at[p.origin] for p in pairs]][..., part]
    return torch.from_numpy(cat), torch.from_numpy(qs)


def evaluate(
    colours: tuple[torch.Tensor, torch.Tensor],
    tail: Tail,
    name: str,
    cat: torch.Tensor,
    qs: torch.Tensor,
    val: np.ndarray,
    targets: torch.Tensor,
    epoch: int,
    loss: float,
    clock: float,
    weights: list[float],
) -> None:
    tail.eval()
    bank = embed_all(tail, cat, 1)
    line = f"{name} epoch {epoch}: loss {loss:.3f}"
    for weight in weights:
        for name, view in (("studio", 0), ("street", 1)):
            scores = embed_all(tail, qs[val, view], 0) @ bank.T + weight * colours[1][val, view] @ colours[0].T
            found = recall(scores, targets[val])
            line += f" {name}{f'+colour{weight}' if weight else ''} R@1 {found['R@1']:.3f} R@20 {found['R@20']:.3f}"
    print(f"{line} ({time.perf_counter() - clock:.0f} s)", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=Path("bench/out/tail"))
    parser.add_argument("--catalog", type=Path, default=Path("bench/out/dev/catalog.csv"))
    parser.add_argument("--heldout", type=Path, default=Path("bench/out/dev/heldout.tsv"))
    parser.add_argument("--tail", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--mlp", action="store_true", help="also: frozen backbone, a residual MLP head")
    parser.add_argument("--lr", type=float, default=3e-3, help="heads; the backbone blocks get lr/30")
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--weights", type=float, nargs="+", default=[0.0, 0.1, 0.2, 0.4], help="colour weights scored")
    parser.add_argument(
        "--colour", default="cached", help="signature: the caches' own, or a variant of bench/colour_signature_dev.py"
    )
    parser.add_argument("--train-colour", type=float, default=0.0, help="colour weight inside the training loss")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(2)
    ids, cat_maps, pairs, q_maps = features(args.out, args.catalog, DATA / "viton-dev" / "queries.tsv")
    with args.heldout.open() as handle:
        held = {r["product_id"] for r in csv.DictReader(handle, delimiter="\t")}
    row = {pid: i for i, pid in enumerate(ids)}
    targets = torch.tensor([row[p.product_id] for p in pairs])
    val = np.array([i for i, p in enumerate(pairs) if p.product_id in held])
    train = np.array([i for i, p in enumerate(pairs) if p.product_id not in held])
    print(f"catalogue {len(ids)}, pairs {len(pairs)}: train {len(train)}, held out {len(val)}")
    cat, qs = torch.from_numpy(cat_maps[:, :MAP_SIZE]), torch.from_numpy(q_maps[..., :MAP_SIZE])
    colours = (torch.from_numpy(cat_maps[:, MAP_SIZE:]).float(), torch.from_numpy(q_maps[..., MAP_SIZE:]).float())
    if args.colour != "cached":
        colours = signature_variant(args.out / "signatures.npz", args.colour, ids, pairs)
    net = Embedder(threads=None).net
    frozen = Tail(net, 0)
    with torch.no_grad():
        pooled_cat = torch.cat([frozen.pooled(cat[i : i + 256]) for i in range(0, len(cat), 256)])
        flat = qs.reshape(-1, MAP_SIZE)
        pooled_qs = torch.cat([frozen.pooled(flat[i : i + 256]) for i in range(0, len(flat), 256)])
    start = fit_whitening(pooled_cat.numpy(), 256)
    runs = [(blocks, False) for blocks in args.tail] + [(0, True)] * args.mlp
    for trained_blocks, mlp in runs:
        torch.manual_seed(0)
        tail = Tail(net, trained_blocks)
        tail.start_heads(start)
        name = f"{trained_blocks} blocks" + (" + MLP head" if mlp else "")
        if mlp:
            tail.add_mlp()
        cat_in, qs_in = (pooled_cat, pooled_qs.reshape(*qs.shape[:2], 1280)) if trained_blocks == 0 else (cat, qs)
        head_names = ("means", "projections", "mlps")
        backbone = [p for n, p in tail.named_parameters() if not n.startswith(head_names)]
        heads = [p for n, p in tail.named_parameters() if n.startswith(head_names)]
        groups = [{"params": heads, "lr": args.lr}]
        if trained_blocks:
            groups.append({"params": [p for p in backbone if p.requires_grad], "lr": args.lr / 30})
        optimizer = torch.optim.AdamW(groups, weight_decay=1e-4)

        clock = time.perf_counter()
        evaluate(colours, tail, name, cat_in, qs_in, val, targets, 0, float("nan"), clock, args.weights)
        for epoch in range(1, args.epochs + 1):
            tail.eval()  # batch norm keeps its ImageNet statistics; drop-connect stays off
            bank = embed_all(tail, cat_in, 1)
            rng = np.random.default_rng(epoch)
            order = rng.permutation(train)
            views = rng.integers(0, 2, len(order))
            losses = []
            for begin in range(0, len(order), args.batch):
                rows = torch.from_numpy(order[begin : begin + args.batch])
                picked = torch.from_numpy(views[begin : begin + args.batch])
                positives = targets[rows]
                q = tail(qs_in[rows, picked], 0)
                fresh = tail(cat_in[positives], 1)
                others = q @ bank.T + args.train_colour * colours[1][rows, picked] @ colours[0].T
                others[:, positives] = -torch.inf  # the batch's products count once, fresh
                mine = q @ fresh.T + args.train_colour * colours[1][rows, picked] @ colours[0][positives].T
                logits = torch.cat([mine, others], dim=1) / 0.05
                loss = torch.nn.functional.cross_entropy(logits, torch.arange(len(rows)))
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                losses.append(float(loss))
            evaluate(
                colours, tail, name, cat_in, qs_in, val, targets, epoch, float(np.mean(losses)), clock, args.weights
            )


if __name__ == "__main__":
    main()
