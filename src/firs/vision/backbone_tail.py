"""The backbone split in two: a trunk kept as ImageNet trained it, and a tail `firs train` may tune.

The trunk is the stem and the first TRUNK_BLOCKS MBConv blocks (EfficientNet-Lite0: a
7x7x192 map at 224 px); the tail is the remaining blocks, the 1x1 head conv and its batch
norm, giving the 1280-channel map the embedder pools. Training computes the trunk's maps once
and caches them; only the tail runs in each epoch. Batch norm keeps its ImageNet statistics
(the tail always runs in eval mode).

A model may hold several tails trained apart (`EnsembleTail`, "members"): their feature maps
are stacked channel-wise, so pooling gives each member's features side by side (the pooling
normalises each member's FEATURE_CHANNELS apart, vision/embedder.py).
"""

from __future__ import annotations

import copy

import numpy as np
import torch

TRUNK_BLOCKS = 14
TENSOR_PREFIX = "tail."
FEATURE_CHANNELS = 1280  # of a tail's feature map: the features one member gives


def member_prefix(member: int) -> str:
    """Where a member's tensors are named in a model file: `tail.` (the first), `tail1.`, ..."""
    return TENSOR_PREFIX if member == 0 else f"tail{member}."


def is_tail_tensor(name: str) -> bool:
    head = name.split(".", 1)[0]
    return head == "tail" or (head.startswith("tail") and head[4:].isdigit())


def tail_blocks(net: torch.nn.Module) -> int:
    """How many blocks the tail has (what `trained_blocks` may be at most)."""
    return len(net._blocks) - TRUNK_BLOCKS


def trunk_maps(net: torch.nn.Module, batch: torch.Tensor) -> torch.Tensor:
    x = net._swish(net._bn0(net._conv_stem(batch)))
    for block in net._blocks[:TRUNK_BLOCKS]:
        x = block(x)
    return x


class BackboneTail(torch.nn.Module):
    """A copy of the network's tail; the last `trained_blocks` blocks (and the head conv,
    when any block is trained) take gradients."""

    def __init__(self, net: torch.nn.Module, trained_blocks: int = 0) -> None:
        super().__init__()
        self.blocks = torch.nn.ModuleList(copy.deepcopy(list(net._blocks[TRUNK_BLOCKS:])))
        self.conv_head, self.bn1 = copy.deepcopy(net._conv_head), copy.deepcopy(net._bn1)
        self.act = net._swish
        if not 0 <= trained_blocks <= len(self.blocks):
            raise ValueError(f"the tail has {len(self.blocks)} blocks to tune, not {trained_blocks}")
        self.trained_blocks = trained_blocks
        self.eval()  # batch norm keeps its statistics, drop-connect stays off, in training too
        self.requires_grad_(False)
        if trained_blocks:
            for block in self.blocks[len(self.blocks) - trained_blocks :]:
                block.requires_grad_(True)
            self.conv_head.requires_grad_(True)
            self.bn1.requires_grad_(True)

    def forward(self, maps: torch.Tensor) -> torch.Tensor:
        """Trunk maps -> the 1280-channel feature map."""
        x = maps
        for block in self.blocks:
            x = block(x)
        return self.act(self.bn1(self.conv_head(x)))

    def tensors(self, prefix: str = TENSOR_PREFIX) -> dict[str, np.ndarray]:
        """The trained part's weights (and batch-norm buffers), for a safetensors file."""
        return {
            f"{prefix}{name}": value.detach().cpu().numpy().copy()
            for name, value in self.state_dict().items()
            if self._trained(name)
        }

    def load_tensors(self, tensors: dict[str, np.ndarray], prefix: str = TENSOR_PREFIX) -> None:
        wanted = {name for name in self.state_dict() if self._trained(name)}
        given = {name.removeprefix(prefix) for name in tensors if name.startswith(prefix)}
        if wanted != given:
            raise ValueError(f"tail tensors do not match {self.trained_blocks} trained blocks")
        state = {name: torch.from_numpy(np.asarray(tensors[prefix + name])) for name in wanted}
        self.load_state_dict(state, strict=False)

    def _trained(self, name: str) -> bool:
        if name.endswith("num_batches_tracked"):  # a counter batch norm in eval mode never reads
            return False
        if name.startswith(("conv_head.", "bn1.")):
            return self.trained_blocks > 0
        number = int(name.split(".")[1])
        return number >= len(self.blocks) - self.trained_blocks


class EnsembleTail(torch.nn.Module):
    """Several tuned tails on the same trunk maps; their feature maps stacked channel-wise."""

    def __init__(self, members: list[BackboneTail]) -> None:
        super().__init__()
        self.members = torch.nn.ModuleList(members)
        self.trained_blocks = members[0].trained_blocks

    def forward(self, maps: torch.Tensor) -> torch.Tensor:
        return torch.cat([member(maps) for member in self.members], dim=1)


Tail = BackboneTail | EnsembleTail


def load_tail(net: torch.nn.Module, trained_blocks: int, tensors: dict[str, np.ndarray], members: int = 1) -> Tail:
    """The tail(s) a model file's tensors describe, on `net`; ValueError when they do not fit."""
    tails = []
    for number in range(members):
        tail = BackboneTail(net, trained_blocks)
        try:
            tail.load_tensors(tensors, member_prefix(number))
        except (ValueError, RuntimeError) as exc:
            raise ValueError(f"member {number}: {exc}" if members > 1 else str(exc)) from None
        tails.append(tail)
    return tails[0] if members == 1 else EnsembleTail(tails)
