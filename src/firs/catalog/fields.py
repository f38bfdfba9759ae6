"""Normalising text and prices from catalogue fields."""

from __future__ import annotations

import html
import re

_PRICE = re.compile(r"(\d[\d,]*(?:\.\d+)?)")


def clean_text(value: object) -> str:
    """HTML entities unescaped (twice-escaped '&amp;amp;' too), whitespace collapsed."""
    if value is None:
        return ""
    text = str(value)
    for _ in range(2):
        unescaped = html.unescape(text)
        if unescaped == text:
            break
        text = unescaped
    return " ".join(text.split())


def parse_price(value: object) -> float | None:
    """A price from 3.17, "$12.99", "$10.99 - $15.99" (the lower bound) or "" (None).

    Raises ValueError for text that holds no number at all ("call us").
    """
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise ValueError(f"price {value!r} is not a number")
    if isinstance(value, int | float):
        if value < 0:
            raise ValueError(f"price {value!r} is negative")
        return float(value)
    text = clean_text(value)
    if not text:
        return None
    match = _PRICE.search(text)
    if not match:
        raise ValueError(f"price {text!r} holds no number")
    return float(match.group(1).replace(",", ""))
