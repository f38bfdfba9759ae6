"""The product record every reader produces."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Product:
    """One catalogue product. `image` is a local path or an http(s) URL.

    `images` holds all the product's pictures in catalogue order, each checked like `image`;
    the first is always `image` (the one indexed), so a reader that knows of one picture only may
    leave `images` out.
    """

    id: str
    image: str
    title: str = ""
    brand: str = ""
    categories: list[str] = field(default_factory=list)
    price: float | None = None
    metadata: dict[str, str] = field(default_factory=dict)
    origin: str = ""  # "file:line" the product was read from
    images: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.images = list(dict.fromkeys([self.image, *self.images]))

    @property
    def category(self) -> str:
        """The most specific category (the last of the list), or ''."""
        return self.categories[-1] if self.categories else ""


@dataclass(frozen=True)
class ReadProblem:
    """A malformed line or row: where it is and what is wrong with it."""

    path: str
    line: int
    reason: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.reason}"
