"""`firs train`'s epochs under other settings, fast, on a machine with a GPU (issue 10).

The expensive part of `firs train` (pose, masks, the backbone's trunk) is cached in the model
folder; the epochs only run the tail and the heads. This takes that cache to another machine
and sweeps training settings over it, printing validation recall per epoch and seconds per
epoch for each, on whatever device is there.

    # here: pack a model folder's caches (int8 per channel, gzip) into parts of 56 MB
    python bench/train_sweep.py pack --model bench/out/dev-tail/model \
        --pairs ../shared/data/viton-dev/queries.tsv --out .devdata
    # there (PYTHONPATH=src plus the efficientnet_lite_pytorch package): the settings to try
    python bench/train_sweep.py run --bundle DIR --configs '[{"schedule": "cosine"}, ...]' --log LOG

The int8 packing changes the maps by under 1 % (`pack` prints the cosine between the pooled
features from the packed and the exact maps), so compare settings within one sweep.
"""

from __future__ import annotations

import argparse
import gzip
import json
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

PART_BYTES = 56_000_000  # with the code and tail weights, under a device call's 64 MiB


def _quantise(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Symmetric int8 per channel (axis -3 of (..., C, H, W) maps)."""
    scale = np.abs(values).max(axis=tuple(i for i in range(values.ndim) if i != values.ndim - 3)) / 127
    scale = np.maximum(scale, 1e-8).astype(np.float32)
    shaped = scale[:, None, None]
    return np.clip(np.rint(values / shaped), -127, 127).astype(np.int8), scale


def _dequantise(values: np.ndarray, scale: np.ndarray) -> np.ndarray:
    return values.astype(np.float32) * scale[:, None, None]


def _tail_prefixes(net: object) -> tuple[str, ...]:
    """The state-dict names of the network's tail (vision/backbone_tail.py): all training touches."""
    from firs.vision.backbone_tail import TRUNK_BLOCKS

    blocks = range(TRUNK_BLOCKS, len(net._blocks))  # type: ignore[attr-defined]
    return (*(f"_blocks.{i}." for i in blocks), "_conv_head.", "_bn1.")


def pack(args: argparse.Namespace) -> None:
    import torch
    from safetensors.numpy import save_file

    from firs.catalog.problems import ProblemLog
    from firs.train.pairs import read_pairs
    from firs.train.trainer import TrainOptions, split_by_product
    from firs.vision.embedder import Embedder

    cache = args.model / "cache"
    [catalogue_file] = sorted(cache.glob("catalogue-*.npz"))
    [queries_file] = sorted(cache.glob("queries-*.npz"))
    with np.load(catalogue_file) as data:
        ids, catalogue = [str(x) for x in data["ids"]], data["features"]
    with np.load(queries_file) as data:
        origins, queries = [str(x) for x in data["origins"]], data["features"]
    by_origin = {p.origin: p for p in read_pairs(args.pairs.resolve(), set(ids), ProblemLog(strict=False))}
    row_of = {product_id: row for row, product_id in enumerate(ids)}
    pairs = [by_origin[o] for o in origins]
    targets = np.array([row_of[p.product_id] for p in pairs], dtype=np.int64)
    options = TrainOptions()
    held = split_by_product([p.product_id for p in pairs], options.val_fraction, options.seed)
    val_rows = np.array([i for i, p in enumerate(pairs) if p.product_id in held], dtype=np.int64)
    cat_q, cat_scale = _quantise(catalogue.astype(np.float32))
    q_q, q_scale = _quantise(queries.astype(np.float32))
    embedder = Embedder()
    with torch.inference_mode():
        sample = torch.from_numpy(catalogue[:512].astype(np.float32))
        packed = torch.from_numpy(_dequantise(cat_q[:512], cat_scale))
        exact, approx = (embedder.pool(embedder.original_tail(x)) for x in (sample, packed))
        print(f"pooled features, packed vs exact maps: cosine min {float((exact * approx).sum(1).min()):.5f}")
    args.out.mkdir(parents=True, exist_ok=True)
    prefixes = _tail_prefixes(embedder.net)
    tail = {k: v.numpy() for k, v in embedder.net.state_dict().items() if k.startswith(prefixes)}
    save_file(tail, str(args.out / "tail.safetensors"))
    blob_path = args.out / "bundle.npz"
    np.savez(blob_path, cat=cat_q, cat_scale=cat_scale, q=q_q, q_scale=q_scale, targets=targets, val_rows=val_rows)
    blob = gzip.compress(blob_path.read_bytes(), compresslevel=6)
    blob_path.unlink()
    for number, begin in enumerate(range(0, len(blob), PART_BYTES)):
        (args.out / f"part{number}").write_bytes(blob[begin : begin + PART_BYTES])
    print(
        f"{len(ids)} products, {len(pairs)} queries x {queries.shape[1]} views, {len(val_rows)} held out;"
        f" {len(blob) / 1e6:.0f} MB in {number + 1} parts"
    )


class _Pooling:
    """The embedder's pooling and a network holding the tail's weights (all `train_heads` uses)."""

    def __init__(self, net: object) -> None:
        from firs.vision.embedder import EmbedderSpec

        self.net, self.spec = net, EmbedderSpec()

    def pool(self, fmap: object) -> object:
        from firs.vision.embedder import Embedder

        return Embedder.pool(self, fmap)  # type: ignore[arg-type]


def run(args: argparse.Namespace) -> None:
    import torch
    from efficientnet_lite_pytorch import EfficientNet
    from safetensors.torch import load_file

    from firs.train.trainer import TrainOptions, train_heads

    net = EfficientNet.from_name("efficientnet-lite0", num_classes=1000)
    net.load_state_dict(load_file(str(args.bundle / "tail.safetensors")), strict=False)
    net.eval()
    stub = _Pooling(net)
    blob = gzip.decompress(
        b"".join(p.read_bytes() for p in sorted(args.bundle.glob("part*"), key=lambda p: int(p.name[4:])))
    )
    path = Path(tempfile.mkdtemp()) / "bundle.npz"
    path.write_bytes(blob)
    with np.load(path) as data:
        catalogue = _dequantise(data["cat"], data["cat_scale"]).astype(np.float16)
        queries = _dequantise(data["q"], data["q_scale"]).astype(np.float16)
        targets, val_rows = data["targets"], data["val_rows"]
    device = "cuda" if torch.cuda.is_available() else "cpu"
    print(
        f"device {device} ({torch.cuda.get_device_name() if device == 'cuda' else 'cpu'}); "
        f"{len(catalogue)} products, {len(queries)} queries",
        flush=True,
    )
    start = time.perf_counter()
    with args.log.open("a") as log:
        for config in json.loads(args.configs):
            if time.perf_counter() - start > args.budget:
                print(f"budget spent; not run: {config}", flush=True)
                continue
            options = replace(TrainOptions(device=device, patience=10_000, members=1), **config)
            folder = Path(tempfile.mkdtemp())
            clock = time.perf_counter()
            outcome = train_heads(
                catalogue, queries, targets, val_rows, options, folder, "sweep", progress=False, embedder=stub
            )
            seconds = time.perf_counter() - clock
            best = outcome.history[outcome.best_epoch]
            line = {
                "config": config,
                "seconds": round(seconds, 1),
                "per_epoch": round(seconds / max(1, len(outcome.history) - 1), 2),
                "best_epoch": outcome.best_epoch,
                "best": best,
                "curve": [
                    [h["epoch"], round(h["val_R@20"], 3), round(h["val_street_R@20"], 3)] for h in outcome.history
                ],
            }
            log.write(json.dumps(line) + "\n")
            log.flush()
            print(
                f"{json.dumps(config)}: {seconds:.0f} s ({line['per_epoch']} s/epoch); best epoch "
                f"{outcome.best_epoch}: R@1 {best['val_R@1']:.3f} R@20 {best['val_R@20']:.3f} "
                f"street R@1 {best['val_street_R@1']:.3f} R@20 {best['val_street_R@20']:.3f}",
                flush=True,
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    packing = commands.add_parser("pack")
    packing.add_argument("--model", type=Path, required=True)
    packing.add_argument("--pairs", type=Path, required=True)
    packing.add_argument("--out", type=Path, required=True)
    running = commands.add_parser("run")
    running.add_argument("--bundle", type=Path, required=True)
    running.add_argument("--configs", default="[{}]", help="a JSON list of TrainOptions overrides")
    running.add_argument("--log", type=Path, required=True)
    running.add_argument("--budget", type=float, default=400, help="seconds after which no new setting starts")
    args = parser.parse_args()
    pack(args) if args.command == "pack" else run(args)


if __name__ == "__main__":
    main()
