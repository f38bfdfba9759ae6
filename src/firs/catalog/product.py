"""The product record every reader produces."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Product:
    """One catalogue product. `image` is a local path or an http(s) URL."""

    id: str
    image: str
    title: str = ""
    brand: str = ""
    categories: list[str] = field(default_factory=list)
    price: float | None = None
    metadata: dict[str, str] = field(default_factory=dict)
    origin: str = ""  # "file:line" the product was read from

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
