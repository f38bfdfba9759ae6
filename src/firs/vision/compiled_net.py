"""The embedder's network on OpenVINO, in pieces: the trunk, and each tail with its pooling.

PyTorch eager runs EfficientNet-Lite0 at ~17 ms a photo on the 2-core dev machine;
OpenVINO's CPU plugin at fp32 takes ~6 ms for the same numbers (max |diff| < 1e-6;
bench/embed_runtime.py). The network is split where `firs train` splits it (trunk | tail),
so the ImageNet tail and a trained tail share one trunk, and a search that needs only the
trained features skips the ImageNet tail.

Converting a piece from PyTorch takes seconds, reading it back as OpenVINO IR a tenth of
one: `save` writes the converted pieces into a folder (the index's `network/`), named by
a digest of everything that fixes their numbers, and `NetworkCache(folder)` reads them
back, converting in memory whatever is not there.
"""

from __future__ import annotations

import hashlib
import threading
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

# bf16 (chosen by OpenVINO itself on CPUs with AVX512-BF16 or AMX) moves features by up to
# 1e-2 and would make an index depend on the machine that built it; fp32 is the same
# everywhere and already well under the eager forward's time.
PRECISION = "f32"
CONVERSION_VERSION = 1  # bump when what a piece computes changes for the same weights


def _openvino():  # imported on first use: ~0.2 s that `firs --help` need not pay
    import openvino

    return openvino


def digest(kind: str, module: torch.nn.Module, input_shape: tuple[int, ...], extra: str = "") -> str:
    """What fixes a piece's numbers: its kind, its tensors, its input shape, the pooling."""
    h = hashlib.sha256(f"{CONVERSION_VERSION}|{kind}|{input_shape}|{extra}".encode())
    for name, value in sorted(module.state_dict().items()):
        h.update(name.encode())
        h.update(value.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:32]


class CompiledPiece:
    """One converted piece compiled for the CPU, callable from any thread (one infer request
    per calling thread: a request is not thread-safe)."""

    def __init__(self, model: object, threads: int | None) -> None:
        ov = _openvino()
        config: dict[str, object] = {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_PRECISION_HINT": PRECISION}
        if threads:
            config["INFERENCE_NUM_THREADS"] = threads
        self.model = model
        self._compiled = ov.Core().compile_model(model, "CPU", config)
        self._local = threading.local()
        # One inference now, in the thread that compiles: OpenVINO's bindings set up their NumPy
        # access lazily, and two threads doing that at once deadlock (seen: `firs serve` with two
        # workers hung at start-up, both in their first infer). It also pays the first-call cost.
        shape = [1 if size.is_dynamic else size.get_length() for size in self._compiled.input(0).get_partial_shape()]
        self(np.zeros(shape, np.float32))

    def __call__(self, batch: np.ndarray) -> list[np.ndarray]:
        request = getattr(self._local, "request", None)
        if request is None:
            request = self._local.request = self._compiled.create_infer_request()
        results = request.infer({0: np.ascontiguousarray(batch, dtype=np.float32)})
        # The outputs are views of the request's own buffers, overwritten by its next call.
        return [np.array(results[i], dtype=np.float32, copy=True) for i in range(len(results))]


class NetworkCache:
    """Compiled pieces by digest: read from `folder` where saved there, else converted."""

    def __init__(self, folder: Path | None, threads: int | None) -> None:
        self.folder, self.threads = folder, threads
        self._pieces: dict[str, CompiledPiece] = {}
        self._lock = threading.Lock()

    def piece(self, key: str, module: Callable[[], torch.nn.Module], input_shape: tuple[int, ...]) -> CompiledPiece:
        with self._lock:
            if key not in self._pieces:
                self._pieces[key] = CompiledPiece(self._model(key, module, input_shape), self.threads)
            return self._pieces[key]

    def _model(self, key: str, module: Callable[[], torch.nn.Module], input_shape: tuple[int, ...]) -> object:
        ov = _openvino()
        if self.folder is not None and (self.folder / f"{key}.xml").is_file():
            return ov.Core().read_model(str(self.folder / f"{key}.xml"))
        example = torch.zeros((1, *input_shape))
        # The conversion traces the module; torch's tracer warns about its own deprecation.
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return ov.convert_model(module().eval(), example_input=example, input=[(-1, *input_shape)])

    def save(self, folder: Path) -> list[str]:
        """Write every piece compiled so far as OpenVINO IR (`<digest>.xml` + `.bin`)."""
        ov = _openvino()
        folder.mkdir(parents=True, exist_ok=True)
        with self._lock:
            for key, piece in self._pieces.items():
                ov.save_model(piece.model, str(folder / f"{key}.xml"), compress_to_fp16=False)
            return sorted(self._pieces)
