"""A trained model folder: self-describing, weights in safetensors (never pickle).

MODEL_DIR/
  model.json          what it is: kind, dim, the backbone's identity, what it was trained
                      on (pairs, catalogue, counts, data fingerprint), options, validation
                      recall per epoch, the best epoch
  head.safetensors    the heads: query_mean, query_projection, catalogue_mean,
                      catalogue_projection (float32), each a linear map then L2; with
                      tuned backbone blocks (model.json `tuned_blocks`), their weights as
                      tail.* (vision/backbone_tail.py), and with several members (model.json
                      `members`) the others' as tail1.*, tail2.*, ...: the heads then map
                      the members' features side by side, block by block
  checkpoint/         the last epoch's state, for --resume
  cache/              frozen-backbone features (recomputed when the data changes)
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from safetensors.numpy import load_file, save_file

from ..errors import FirsError
from ..files import sha256_file
from ..vision.backbone_tail import FEATURE_CHANNELS, Tail, is_tail_tensor, load_tail
from .whitening import Whitening

MODEL_JSON = "model.json"
HEAD = "head.safetensors"
KIND = "firs-linear-head"
FORMAT_VERSION = 2  # 2: tuned backbone blocks (tail.* tensors); version 1 models still load
READABLE_VERSIONS = (1, 2)
_TENSORS = ("query_mean", "query_projection", "catalogue_mean", "catalogue_projection")


@dataclass
class TrainedModel:
    query: Whitening  # the query side's map (a garment cut out of a photo)
    catalogue: Whitening  # the catalogue side's map (the fine view)
    info: dict[str, Any]
    tail: dict[str, np.ndarray] | None = None  # tuned backbone blocks, both sides' pictures run through them

    @property
    def tuned_blocks(self) -> int:
        return int(self.info.get("tuned_blocks", 0)) if self.tail else 0

    @property
    def members(self) -> int:
        """Tails trained apart whose features the heads take side by side (1: one tail, or none)."""
        return int(self.info.get("members", 1)) if self.tail else 1

    @property
    def dim(self) -> int:
        return self.catalogue.dim

    def save(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        tensors = {
            "query_mean": self.query.mean,
            "query_projection": self.query.projection,
            "catalogue_mean": self.catalogue.mean,
            "catalogue_projection": self.catalogue.projection,
            **(self.tail or {}),
        }
        partial = folder / (HEAD + ".part")
        save_file({k: np.ascontiguousarray(v) for k, v in tensors.items()}, str(partial))
        partial.replace(folder / HEAD)
        info = {"format": KIND, "format_version": FORMAT_VERSION, **self.info, "dim": self.dim}
        text = json.dumps(info, indent=2) + "\n"
        (folder / (MODEL_JSON + ".part")).write_text(text)
        (folder / (MODEL_JSON + ".part")).replace(folder / MODEL_JSON)

    @classmethod
    def load(cls, folder: Path) -> TrainedModel:
        folder = Path(folder)
        if not (folder / MODEL_JSON).is_file() or not (folder / HEAD).is_file():
            raise FirsError(
                f"{folder}: not a FIRS model ({MODEL_JSON} and {HEAD} expected; make one with `firs train`)"
            )
        try:
            info = json.loads((folder / MODEL_JSON).read_text())
            tensors = load_file(str(folder / HEAD))
        except (OSError, ValueError) as exc:
            raise FirsError(f"{folder}: unreadable model ({exc})") from None
        if info.get("format") != KIND or info.get("format_version") not in READABLE_VERSIONS:
            raise FirsError(
                f"{folder}: model format {info.get('format')!r} v{info.get('format_version')}, "
                f"this FIRS reads {KIND} v{', v'.join(map(str, READABLE_VERSIONS))}"
            )
        missing = [name for name in _TENSORS if name not in tensors]
        if missing:
            raise FirsError(f"{folder / HEAD}: lacks {', '.join(missing)}")
        tail = {name: value for name, value in tensors.items() if is_tail_tensor(name)}
        if bool(tail) != bool(info.get("tuned_blocks")):
            raise FirsError(f"{folder}: model.json's tuned_blocks and the tensors in {HEAD} disagree")
        inputs = FEATURE_CHANNELS * (int(info.get("members", 1)) if tail else 1)
        if any(tensors[f"{side}_mean"].shape != (inputs,) for side in ("query", "catalogue")):
            raise FirsError(f"{folder}: the heads in {HEAD} do not take {inputs} features, as model.json says")
        shape = tensors["catalogue_projection"].shape
        dim = shape[1] if len(shape) == 2 else 0
        if not dim:
            raise FirsError(f"{folder / HEAD}: catalogue_projection is {shape}, not features x dimensions")
        for name in ("query_projection", "catalogue_projection"):  # the means were checked above
            if tensors[name].shape != (inputs, dim):
                raise FirsError(
                    f"{folder / HEAD}: {name} is {'x'.join(map(str, tensors[name].shape))}, "
                    f"not {inputs}x{dim} (both heads map {inputs} features to one size)"
                )
        broken = [name for name, value in tensors.items() if not np.isfinite(value).all()]
        if broken:
            verb = "holds" if len(broken) == 1 else "hold"
            raise FirsError(f"{folder / HEAD}: {', '.join(broken)} {verb} non-finite values (NaN or infinity)")
        return cls(
            Whitening(tensors["query_mean"].astype(np.float32), tensors["query_projection"].astype(np.float32)),
            Whitening(tensors["catalogue_mean"].astype(np.float32), tensors["catalogue_projection"].astype(np.float32)),
            info,
            tail or None,
        )

    def backbone_tail(self, net: Any) -> Tail | None:
        """The tuned tail on `net` (the embedder's network), or None for heads only; an
        EnsembleTail for a model of several members."""
        if not self.tail:
            return None
        try:
            return load_tail(net, self.tuned_blocks, self.tail, self.members)
        except ValueError as exc:
            raise FirsError(f"model with {self.tuned_blocks} tuned blocks: {exc}") from None

    @staticmethod
    def digest(folder: Path) -> str:
        return sha256_file(Path(folder) / HEAD)
