"""Where a catalogue's local images may live: its own folder, or a folder allowed with --image-root.

The service later serves product images from disk, so a catalogue line must not be able to point
at /etc/passwd or ../../secret.jpg. Every reader checks its local paths here.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ..errors import CatalogError
from .problems import shown

WEB_SCHEMES = ("http", "https")
_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*)://")
_HINT = "allow other folders with --image-root DIR"
MAX_PICTURES = 64  # pictures looked at per product; any later ones are dropped with one note


@dataclass(frozen=True)
class ImageRoots:
    """The resolved folders a catalogue's local images must lie in; relative paths start at `folder`."""

    folder: Path
    extra: tuple[Path, ...] = ()

    @classmethod
    def of(cls, folder: Path, extra: Sequence[Path] = ()) -> ImageRoots:
        """The catalogue's folder and the extra allowed roots, symlinks resolved."""
        return cls(_resolved_root(folder), tuple(_resolved_root(root) for root in extra))

    def allows(self, path: Path | str) -> bool:
        """Whether an already resolved path lies inside the catalogue's folder or an extra root."""
        text = str(path)
        return any(text == str(root) or text.startswith(os.path.join(root, "")) for root in (self.folder, *self.extra))

    def refusal(self, value: str, resolved: Path | str) -> str:
        """Why a local path outside the allowed folders is refused."""
        where = shown(value) if str(resolved) == value else f"{shown(value)} ({shown(str(resolved))})"
        extra = "".join(f", --image-root {root}" for root in self.extra)
        return f"image path {where} is outside the catalogue's folder {self.folder}{extra} ({_HINT})"

    def resolve(self, value: str) -> str:
        """An http(s) URL as it is, or a checked absolute local path; ValueError says why not."""
        scheme = _SCHEME.match(value)
        if scheme:
            name = scheme.group(1).lower()
            if name not in WEB_SCHEMES:
                raise ValueError(f"image {shown(value)}: unsupported URL scheme {name!r} (http, https or a local path)")
            return name + value[len(scheme.group(1)) :]
        resolved = _resolve_local(value, self.folder)
        if not self.allows(resolved):
            raise ValueError(self.refusal(value, resolved))
        return resolved

    def pictures(self, first: str, others: Sequence[str], limit: int = MAX_PICTURES) -> tuple[list[str], list[str]]:
        """`first` (already resolved), then each of `others` that passes resolve() and is not a
        repeat, in order; and why each other one was dropped. Only the first `limit` pictures of
        all are looked at (a hostile line may list thousands), the rest dropped with one reason."""
        kept: dict[str, None] = {first: None}  # an ordered set
        dropped: list[str] = []
        for value in others[: max(limit - 1, 0)]:
            try:
                resolved = self.resolve(value)
            except ValueError as exc:
                dropped.append(str(exc))
                continue
            kept.setdefault(resolved)
        if len(others) >= limit:
            dropped.append(f"{len(others) - limit + 1} pictures after the first {limit} ignored")
        return list(kept), dropped


def _resolved_root(root: Path) -> Path:
    try:
        return Path(root).expanduser().resolve()
    except (OSError, RuntimeError, ValueError) as exc:
        raise CatalogError(f"image folder {root}: cannot resolve it ({exc})") from exc


def _resolve_local(value: str, folder: Path) -> str:
    # os.path rather than pathlib: this runs once per catalogue line, and pathlib is several times slower
    try:
        return os.path.realpath(os.path.join(folder, os.path.expanduser(value)))
    except (OSError, ValueError) as exc:  # a NUL byte
        raise ValueError(f"image path {shown(value)} cannot be resolved ({exc})") from None
