"""Training the heads: per side a linear map from backbone features, then L2 — and, with
`tune_blocks`, the backbone's last blocks too (vision/backbone_tail.py).

Both maps start as the catalogue's PCA-whitening (what an index without a model uses), so
epoch 0 is the untrained search and training can only be kept if it beats it. The loss is
InfoNCE over the whole catalogue: each query's product against every other catalogue
product (in-batch and catalogue-wide hard negatives at once); and, by default, the other way
round within the batch: each product's vector against the batch's queries. With frozen
features the whole catalogue is mapped afresh at every step (a 10k-product catalogue is one
matrix product); with a tuned tail, the catalogue runs through the tail once an epoch (a
memory bank of negatives) and the batch's own products afresh, with gradients. Validation
holds out whole products, never single queries.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from tqdm import tqdm

from ..errors import FirsError
from ..index.whitening import Whitening, fit_whitening
from ..vision.backbone_tail import BackboneTail, Tail, load_tail, member_prefix

CHECKPOINT = "checkpoint"
STATE = "state.json"  # in a checkpoint folder, written last: a checkpoint is there when it is


def checkpoint_dir(folder: Path, member: int = 0) -> Path:
    """Where a member's checkpoint lives in MODEL_DIR (the first member's at the top)."""
    return folder / CHECKPOINT if member == 0 else folder / CHECKPOINT / f"member{member}"


def has_checkpoint(folder: Path, member: int = 0) -> bool:
    return (checkpoint_dir(folder, member) / STATE).is_file()


@dataclass
class TrainOptions:
    epochs: int = 20  # dev set, the defaults below: the best validation epoch was 13-17
    dim: int = 256
    batch_size: int = 128  # dev set, 2 tuned blocks: 128 beat 256 (R@20 0.724 vs 0.673) and 64 (0.710)
    learning_rate: float = 3e-3  # dev set, linear heads: 3e-3 beat 1e-3 (R@20 0.587 vs 0.546) and 1e-2 (0.571)
    weight_decay: float = 1e-4
    temperature: float = 0.05
    shared: bool = False  # one map for both sides
    val_fraction: float = 0.2
    patience: int = 4  # epochs without a better validation score before stopping
    seed: int = 0
    device: str = "auto"
    # The backbone's last blocks trained with the heads (0: heads only); docs/architecture.md has
    # the sweep. Dev set, held-out cut-outs R@20 clean/street: heads only 0.587/0.292; 1 block at
    # lr/30, batch 256: 0.628/0.361; 2 blocks at lr/10, batch 128: 0.724/0.462.
    tune_blocks: int = 2
    backbone_lr_ratio: float = 0.1  # the tuned blocks' rate, relative to the heads' (0.05: R@20 0.707)
    # Also each batch product's vector against the batch's queries (products_to_queries). Dev set,
    # through the real commands: street fine R@1 / R@20 .388 / .726 one way, .403 / .743 both.
    symmetric: bool = True
    # Subtracted from each positive's cosine before the softmax (an additive margin, CosFace's):
    # the right product must win by this much. Dev set, held-out cut-outs, mean R@1 of epochs 5-9
    # clean / street: 0 .387 / .155, 0.1 .409 / .159, 0.2 .417 / .167, 0.3 .417 / .160.
    margin: float = 0.2
    # Tuned tails trained apart (each its own shuffling and view draws, the same split), each with
    # heads of its share of dim (member_dim), whose features the model takes side by side: the index's
    # cosine is then the members' together. Dev set, street fine R@1 / R@20 through exact search: one
    # 256-d model .450 / .768 (another seed .424 / .785), two 128-d members .459 / .793; three
    # members (86 + 85 + 85) through the index .456 / .793 against two's .460 / .794.
    members: int = 2

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def member_count(self) -> int:
        """Members a run trains: linear heads on frozen features are one (their members would
        share every input; not measured)."""
        return self.members if self.tune_blocks else 1

    def member_seed(self, member: int) -> int:
        """A member's shuffling and view draws (the split stays `seed`'s): member 0 trains as a
        one-member model of the same seed."""
        return self.seed + member

    def member_dim(self, member: int) -> int:
        """A member's share of `dim`: equal parts, the first ones a dimension more where it does
        not divide (256 in three: 86, 85, 85)."""
        base, extra = divmod(self.dim, self.member_count)
        return base + (member < extra)


@dataclass
class Split:
    train: np.ndarray  # query rows
    val: np.ndarray
    val_products: list[str]


@dataclass
class Outcome:
    query: Whitening
    catalogue: Whitening
    tail: dict[str, np.ndarray] | None = None  # the tuned blocks' tensors (BackboneTail.tensors)
    history: list[dict[str, float]] = field(default_factory=list)
    best_epoch: int = 0
    stopped_early: bool = False


def combine(members: list[Outcome]) -> Outcome:
    """One model of several members: the heads take the members' features side by side (each
    member's 1280, normalised apart by the pooling) through block-diagonal maps, and the members'
    tuned tensors are named apart (member_prefix). The history is the first member's."""
    if len(members) == 1:
        return members[0]

    def side(name: str) -> Whitening:
        maps = [getattr(member, name) for member in members]
        projection = np.zeros((sum(m.projection.shape[0] for m in maps), sum(m.dim for m in maps)), np.float32)
        row = column = 0
        for m in maps:
            projection[row : row + m.projection.shape[0], column : column + m.dim] = m.projection
            row, column = row + m.projection.shape[0], column + m.dim
        return Whitening(np.concatenate([m.mean for m in maps]).astype(np.float32), projection)

    tail: dict[str, np.ndarray] = {}
    for number, member in enumerate(members):
        own = (member.tail or {}).items()
        tail.update({member_prefix(number) + name.removeprefix(member_prefix(0)): value for name, value in own})
    first = members[0]
    return replace(first, query=side("query"), catalogue=side("catalogue"), tail=tail or None)


def split_by_product(products: list[str], fraction: float, seed: int) -> set[str]:
    """The held-out products: a seeded `fraction` of the distinct product ids."""
    distinct = sorted(set(products))
    rng = np.random.default_rng(seed)
    count = round(len(distinct) * fraction) if fraction > 0 else 0
    if fraction > 0 and len(distinct) > 1:
        count = min(max(1, count), len(distinct) - 1)
    return {distinct[i] for i in rng.permutation(len(distinct))[:count]}


def recall(scores: torch.Tensor, targets: torch.Tensor, ks: tuple[int, ...] = (1, 20)) -> dict[str, float]:
    """Recall@k of each query's target among the scores' columns."""
    target_scores = scores.gather(1, targets[:, None])
    ranks = (scores > target_scores).sum(dim=1)
    return {f"R@{k}": float((ranks < k).float().mean()) for k in ks}


def info_nce(logits: torch.Tensor, target: torch.Tensor, temperature: float, margin: float) -> torch.Tensor:
    """Cross-entropy of cosines `logits` (rows: anchors) with each row's `target` column the
    positive, which must beat the others by `margin`."""
    if margin:
        logits = logits - margin * torch.nn.functional.one_hot(target, logits.shape[1])
    return torch.nn.functional.cross_entropy(logits / temperature, target)


def products_to_queries(
    queries: torch.Tensor, products: torch.Tensor, positive: torch.Tensor, temperature: float, margin: float = 0.0
) -> torch.Tensor:
    """InfoNCE the other way round: for each query, its product's vector against the batch's
    queries, the query itself the positive; the product's other queries in the batch are left
    out rather than counted as negatives."""
    logits = products[positive] @ queries.T
    same = positive[:, None] == positive[None, :]
    others = same & ~torch.eye(len(queries), dtype=torch.bool, device=queries.device)
    steps = torch.arange(len(queries), device=queries.device)
    return info_nce(logits.masked_fill(others, -torch.inf), steps, temperature, margin)


def _device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise FirsError("--device cuda: no CUDA device is available (use --device auto or cpu)")
    return torch.device(name)


def _unit_features(x: torch.Tensor, tail: Tail | None, pool: Any) -> torch.Tensor:
    """Cached inputs (pooled features, or trunk maps when there is a tail) -> unit features."""
    return x.float() if tail is None else pool(tail(x.float()))


def _in_chunks(function: Any, x: torch.Tensor, size: int = 512) -> torch.Tensor:
    """`function` over the rows of `x`, a chunk at a time, without gradients."""
    with torch.no_grad():
        return torch.cat([function(x[i : i + size]) for i in range(0, max(1, len(x)), size)])


class _Model(torch.nn.Module):
    """Per-side linear maps on pooled features; with a tail, the features come from trunk
    maps run through it (`pool` turns its feature map into unit features)."""

    def __init__(self, start: Whitening, shared: bool, tail: Tail | None = None, pool: Any = None) -> None:
        super().__init__()
        mean = torch.from_numpy(start.mean.astype(np.float32))
        projection = torch.from_numpy(start.projection.astype(np.float32))
        self.catalogue_mean = torch.nn.Parameter(mean.clone())
        self.catalogue_projection = torch.nn.Parameter(projection.clone())
        self.shared = shared
        if not shared:
            self.query_mean = torch.nn.Parameter(mean.clone())
            self.query_projection = torch.nn.Parameter(projection.clone())
        self.tail, self.pool = tail, pool

    def _map(self, x: torch.Tensor, side: str) -> torch.Tensor:
        side = "catalogue" if self.shared else side
        mean, projection = getattr(self, f"{side}_mean"), getattr(self, f"{side}_projection")
        features = _unit_features(x, self.tail, self.pool)
        return torch.nn.functional.normalize((features - mean) @ projection, dim=-1)

    def query(self, x: torch.Tensor) -> torch.Tensor:
        return self._map(x, "query")

    def catalogue(self, x: torch.Tensor) -> torch.Tensor:
        return self._map(x, "catalogue")

    def in_chunks(self, side: str, x: torch.Tensor) -> torch.Tensor:
        return _in_chunks(getattr(self, side), x)

    def train(self, mode: bool = True) -> _Model:
        super().train(mode)
        if self.tail is not None:
            self.tail.eval()  # batch norm keeps its ImageNet statistics
        return self

    def snapshot(self) -> tuple[Whitening, Whitening, dict[str, np.ndarray] | None]:
        """Copies of the current maps (query side, catalogue side) and tuned tensors."""

        def copy(side: str) -> Whitening:
            mean, projection = getattr(self, f"{side}_mean"), getattr(self, f"{side}_projection")
            return Whitening(mean.detach().cpu().numpy().copy(), projection.detach().cpu().numpy().copy())

        tail = self.tail.tensors() if self.tail is not None and self.tail.trained_blocks else None
        return copy("catalogue" if self.shared else "query"), copy("catalogue"), tail


def _options_key(options: TrainOptions, data_key: str) -> str:
    fixed = {k: v for k, v in options.as_dict().items() if k not in ("epochs", "device", "patience")}
    return json.dumps({**fixed, "data": data_key}, sort_keys=True)


def train_heads(
    catalogue: np.ndarray,
    queries: np.ndarray,
    targets: np.ndarray,
    val_rows: np.ndarray,
    options: TrainOptions,
    folder: Path,
    data_key: str,
    resume: bool = False,
    progress: bool = True,
    on_best: Any = None,
    embedder: Any = None,
    member: int = 0,
) -> Outcome:
    """Train on `queries` (n, views, ...) whose products are rows `targets` of `catalogue`
    (m, ...): pooled features, or trunk maps when `options.tune_blocks` (then `embedder`
    gives the network's tail and pooling). `val_rows` are the held-out queries. A checkpoint
    lands in `folder` after every epoch; `on_best(outcome)` is called whenever validation
    improves (the caller saves the model). `member`: which of `options.member_count` members
    (its own seed, share of dim and checkpoint)."""
    seed = options.member_seed(member)
    torch.manual_seed(seed)
    device = _device(options.device)
    cat = torch.from_numpy(catalogue).to(device)
    qs = torch.from_numpy(queries).to(device)
    tail = None
    if options.tune_blocks:
        if embedder is None:
            raise FirsError("tuning backbone blocks needs the embedder's network")
        tail = BackboneTail(embedder.net, options.tune_blocks).to(device)
    pool = embedder.pool if embedder is not None else None
    dim = options.member_dim(member)
    start = fit_whitening(_in_chunks(lambda x: _unit_features(x, tail, pool), cat).cpu().numpy(), dim)
    model = _Model(start, options.shared, tail, pool).to(device)
    heads = [p for name, p in model.named_parameters() if not name.startswith("tail.")]
    groups: list[dict[str, Any]] = [{"params": heads, "lr": options.learning_rate}]
    if tail is not None:
        tuned = [p for p in tail.parameters() if p.requires_grad]
        groups.append({"params": tuned, "lr": options.learning_rate * options.backbone_lr_ratio})
    optimizer = torch.optim.AdamW(groups, weight_decay=options.weight_decay)
    tg = torch.from_numpy(targets.astype(np.int64)).to(device)
    val = torch.from_numpy(val_rows.astype(np.int64)).to(device)
    train_rows = np.setdiff1d(np.arange(len(queries)), val_rows)
    if len(train_rows) == 0:
        raise FirsError("no training pairs left after holding out the validation products")
    outcome = Outcome(*model.snapshot())
    key = _options_key(options, f"{data_key}|member {member}")
    first_epoch, best, waited = 1, -math.inf, 0
    state_dir = checkpoint_dir(folder, member)
    if resume and has_checkpoint(folder, member):
        state = json.loads((state_dir / STATE).read_text())
        if state.get("key") != key:
            raise FirsError(
                f"{state_dir}: the checkpoint was made with other data or options; drop --resume to start over"
            )
        tensors = load_file(str(state_dir / "state.safetensors"), device=str(device))
        model.load_state_dict({k.removeprefix("heads."): v for k, v in tensors.items() if k.startswith("heads.")})
        optimizer.load_state_dict(_optimizer_state(optimizer, tensors, state["optimizer"]))
        outcome.history, outcome.best_epoch = state["history"], state["best_epoch"]
        first_epoch, best, waited = state["epoch"] + 1, state["best"], state["waited"]
        if len(val_rows) and waited >= options.patience:  # it had stopped early: nothing left to run
            first_epoch, outcome.stopped_early = options.epochs + 1, True
        best_tensors = {k.removeprefix("best."): v.cpu().numpy() for k, v in tensors.items() if k.startswith("best.")}
        outcome.query = Whitening(best_tensors["query_mean"], best_tensors["query_projection"])
        outcome.catalogue = Whitening(best_tensors["catalogue_mean"], best_tensors["catalogue_projection"])
        tuned_tensors = {k: v for k, v in best_tensors.items() if k.startswith("tail.")}
        outcome.tail = tuned_tensors or None

    def validate() -> dict[str, float]:
        return _validation(model, cat, qs, tg, val)

    def loss_of(rows: torch.Tensor, picked: torch.Tensor, bank: torch.Tensor | None) -> torch.Tensor:
        q = model.query(qs[rows, picked])
        products, positive = torch.unique(tg[rows], return_inverse=True)
        if bank is None:  # frozen features: the whole catalogue mapped afresh
            everything = model.catalogue(cat)
            logits, target, own = q @ everything.T, tg[rows], everything[products]
        else:
            own = model.catalogue(cat[products])
            others = q @ bank.T
            others[:, products] = -torch.inf  # the batch's products count once, afresh
            logits, target = torch.cat([q @ own.T, others], dim=1), positive
        loss = info_nce(logits, target, options.temperature, options.margin)
        if not options.symmetric:
            return loss
        return (loss + products_to_queries(q, own, positive, options.temperature, options.margin)) / 2

    if first_epoch == 1:
        outcome.history = [{"epoch": 0, "loss": float("nan"), **validate()}]  # the untrained search
        best = _score(outcome.history[0])
    bar = tqdm(
        range(first_epoch, options.epochs + 1),
        desc="train",
        unit="epoch",
        disable=not progress,
        initial=first_epoch - 1,
        total=options.epochs,
    )
    for epoch in bar:
        generator = np.random.default_rng(seed * 100_003 + epoch)  # resumable without saved RNG state
        order = generator.permutation(train_rows)
        views = generator.integers(0, qs.shape[1], len(order))
        losses = []
        bank = model.in_chunks("catalogue", cat) if tail is not None else None
        model.train()
        for begin in range(0, len(order), options.batch_size):
            rows = torch.from_numpy(order[begin : begin + options.batch_size]).to(device)
            picked = torch.from_numpy(views[begin : begin + options.batch_size]).to(device)
            loss = loss_of(rows, picked, bank)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            losses.append(float(loss.detach()))
        entry = {"epoch": epoch, "loss": float(np.mean(losses)), **validate()}
        outcome.history.append(entry)
        score = _score(entry)
        if score > best or not len(val_rows):  # with nothing held out, the latest heads are kept
            best, waited, outcome.best_epoch = score, 0, epoch
            outcome.query, outcome.catalogue, outcome.tail = model.snapshot()
            if on_best is not None:
                on_best(outcome)
        else:
            waited += 1
        bar.set_postfix(loss=f"{entry['loss']:.3f}", R1=f"{entry['val_R@1']:.3f}", R20=f"{entry['val_R@20']:.3f}")
        _checkpoint(
            state_dir,
            model,
            optimizer,
            outcome,
            {
                "key": key,
                "epoch": epoch,
                "history": outcome.history,
                "best": best,
                "best_epoch": outcome.best_epoch,
                "waited": waited,
            },
        )
        if len(val_rows) and waited >= options.patience:
            outcome.stopped_early = True
            break
    bar.close()
    return outcome


def _validation(
    model: _Model, cat: torch.Tensor, qs: torch.Tensor, tg: torch.Tensor, val: torch.Tensor
) -> dict[str, float]:
    """Recall of the held-out queries (clean: the first view; street: the last) over the catalogue."""
    model.eval()
    bank = model.in_chunks("catalogue", cat)
    clean = recall(model.in_chunks("query", qs[val, 0]) @ bank.T, tg[val])
    street = recall(model.in_chunks("query", qs[val, -1]) @ bank.T, tg[val]) if qs.shape[1] > 1 else clean
    return {
        "val_R@1": clean["R@1"],
        "val_R@20": clean["R@20"],
        "val_street_R@1": street["R@1"],
        "val_street_R@20": street["R@20"],
    }


def validate_members(
    outcome: Outcome,
    members: int,
    catalogue: np.ndarray,
    queries: np.ndarray,
    targets: np.ndarray,
    val_rows: np.ndarray,
    options: TrainOptions,
    embedder: Any,
) -> dict[str, float]:
    """The validation recall of a model of several members (`combine`) as an index searches with it."""
    device = _device(options.device)
    tail = load_tail(embedder.net, options.tune_blocks, outcome.tail or {}, members)
    model = _Model(outcome.catalogue, False, tail, embedder.pool).to(device)
    with torch.no_grad():
        model.query_mean.copy_(torch.from_numpy(outcome.query.mean))
        model.query_projection.copy_(torch.from_numpy(outcome.query.projection))
    cat, qs = torch.from_numpy(catalogue).to(device), torch.from_numpy(queries).to(device)
    tg = torch.from_numpy(targets.astype(np.int64)).to(device)
    return _validation(model, cat, qs, tg, torch.from_numpy(val_rows.astype(np.int64)).to(device))


def _score(entry: dict[str, float]) -> float:
    """What 'better' means for early stopping: street and clean recall, top-1 and top-20."""
    return entry["val_R@1"] + entry["val_R@20"] + entry["val_street_R@1"] + entry["val_street_R@20"]


def _checkpoint(
    folder: Path, heads: torch.nn.Module, optimizer: torch.optim.Optimizer, outcome: Outcome, state: dict[str, Any]
) -> None:
    """The epoch's state (heads, optimizer, the best heads so far, counters), written atomically."""
    folder.mkdir(parents=True, exist_ok=True)
    tensors = {f"heads.{k}": v.detach().contiguous() for k, v in heads.state_dict().items()}
    best = {
        "query_mean": outcome.query.mean,
        "query_projection": outcome.query.projection,
        "catalogue_mean": outcome.catalogue.mean,
        "catalogue_projection": outcome.catalogue.projection,
        **(outcome.tail or {}),
    }
    for name, value in best.items():
        tensors[f"best.{name}"] = torch.from_numpy(np.ascontiguousarray(value))
    layout: dict[str, Any] = {"param_groups": optimizer.state_dict()["param_groups"], "state": {}}
    for index, values in optimizer.state_dict()["state"].items():
        layout["state"][str(index)] = {}
        for name, value in values.items():
            if torch.is_tensor(value):
                tensors[f"optimizer.{index}.{name}"] = value.detach().contiguous().reshape(value.shape or (1,))
                layout["state"][str(index)][name] = {"tensor": list(value.shape)}
            else:
                layout["state"][str(index)][name] = {"value": value}
    save_file({k: v.cpu() for k, v in tensors.items()}, str(folder / "state.safetensors.part"))
    (folder / "state.safetensors.part").replace(folder / "state.safetensors")
    (folder / f"{STATE}.part").write_text(json.dumps({**state, "optimizer": layout}) + "\n")
    (folder / f"{STATE}.part").replace(folder / STATE)


def _optimizer_state(
    optimizer: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], layout: dict[str, Any]
) -> dict[str, Any]:
    state: dict[int, dict[str, Any]] = {}
    for index, values in layout["state"].items():
        entry: dict[str, Any] = {}
        for name, spec in values.items():
            if "tensor" in spec:
                entry[name] = tensors[f"optimizer.{index}.{name}"].reshape(spec["tensor"])
            else:
                entry[name] = spec["value"]
        state[int(index)] = entry
    return {"param_groups": layout["param_groups"], "state": state}
