"""A trained model folder: self-describing, weights in safetensors (never pickle).

MODEL_DIR/
  model.json          what it is: kind, dim, the backbone's identity, what it was trained
                      on (pairs, catalogue, counts, data fingerprint), options, validation
                      recall per epoch, the best epoch
  head.safetensors    the heads: query_mean, query_projection, catalogue_mean,
                      catalogue_projection (float32), each a linear map then L2
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
from ..index.whitening import Whitening

MODEL_JSON = "model.json"
HEAD = "head.safetensors"
KIND = "firs-linear-head"
FORMAT_VERSION = 1
_TENSORS = ("query_mean", "query_projection", "catalogue_mean", "catalogue_projection")


@dataclass
class TrainedModel:
    query: Whitening  # the query side's map (a garment cut out of a photo)
    catalogue: Whitening  # the catalogue side's map (the fine view)
    info: dict[str, Any]

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
        }
        partial = folder / (HEAD + ".part")
        save_file({k: np.ascontiguousarray(v, dtype=np.float32) for k, v in tensors.items()}, str(partial))
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
        if info.get("format") != KIND or info.get("format_version") != FORMAT_VERSION:
            raise FirsError(
                f"{folder}: model format {info.get('format')!r} v{info.get('format_version')}, "
                f"this FIRS reads {KIND} v{FORMAT_VERSION}"
            )
        missing = [name for name in _TENSORS if name not in tensors]
        if missing:
            raise FirsError(f"{folder / HEAD}: lacks {', '.join(missing)}")
        return cls(
            Whitening(tensors["query_mean"], tensors["query_projection"]),
            Whitening(tensors["catalogue_mean"], tensors["catalogue_projection"]),
            info,
        )

    @staticmethod
    def digest(folder: Path) -> str:
        return sha256_file(Path(folder) / HEAD)
