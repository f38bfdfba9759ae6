"""Normalising text and prices from catalogue fields."""

from __future__ import annotations

import html
import math
import re
from typing import Any

from .paths import ImageRoots
from .problems import shown

MAX_PRICE = 1e9
_NUMBER = re.compile(r"\d[\d,]*(?:\.\d+)?(?:[eE][+-]?\d+)?")
# A minus right before the number, perhaps around one currency sign: "-5", "-$5", "$-5", "- 5".
# "Sale - $5" is not negative: a spaced dash before the currency sign reads as a separator.
_MINUS_BEFORE = re.compile(r"-[^\w\s-]?\s*$")
_NON_FINITE = re.compile(r"\b(?:nan|inf|infinity)\b", re.IGNORECASE)


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
    """A price from 3.17, "$12.99", "$10.99 - $15.99" (the lower bound), "1,299.00" or "" (None).

    Raises ValueError for text that holds no number at all ("call us") and for prices that are
    negative ("-$5", "$-5"), not finite ("1e999", "nan", inf from JSON) or above MAX_PRICE.
    """
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise ValueError(f"price {value!r} is not a number")
    if isinstance(value, int | float):
        return _checked_price(_as_float(value, shown(value)), shown(value))
    text = clean_text(value)
    if not text:
        return None
    return _checked_price(_number_in(text), shown(text))


def _as_float(number: int | float | str, shown: str) -> float:
    try:
        return float(number)
    except OverflowError:  # an int of hundreds of digits
        raise ValueError(f"price {shown} is too large (over {MAX_PRICE:,.0f})") from None


def _number_in(text: str) -> float:
    match = _NUMBER.search(text)
    if not match:
        if _NON_FINITE.search(text):
            raise ValueError(f"price {shown(text)} is not a finite number")
        raise ValueError(f"price {shown(text)} holds no number")
    number = _as_float(match.group().replace(",", ""), shown(text))
    return -number if _MINUS_BEFORE.search(text, 0, match.start()) else number


def _checked_price(number: float, shown: str) -> float:
    if not math.isfinite(number):
        raise ValueError(f"price {shown} is not a finite number")
    if number < 0:
        raise ValueError(f"price {shown} is negative")
    if number > MAX_PRICE:
        raise ValueError(f"price {shown} is too large (over {MAX_PRICE:,.0f})")
    return abs(number)  # -0.0 -> 0.0


def image_and_price(product_id: str, image: str, price: object, images: ImageRoots) -> tuple[str, float | None]:
    """A product's image (checked against where local images may lie) and price; ValueError
    names the product and the bad field."""
    try:
        image = images.resolve(image)
    except ValueError as exc:
        raise ValueError(f"product {product_id}: {exc}") from None
    try:
        return image, parse_price(price)
    except ValueError as exc:
        raise ValueError(f"product {product_id}: field 'price': {exc}") from None


# A price's currency, from a sign or an ISO code in its text ("$12.99", "12,99 EUR"). "$" is read
# as US dollars; a shop in another dollar names its currency (a `currency` column or `--currency`).
_CURRENCY_SIGNS = {"US$": "USD", "$": "USD", "€": "EUR", "£": "GBP", "¥": "JPY", "₹": "INR", "₩": "KRW"}
_CURRENCY_CODE = re.compile(r"\b(USD|EUR|GBP|JPY|INR|CAD|AUD|NZD|CHF|SEK|NOK|DKK|PLN|CZK|CNY|KRW|BRL|MXN)\b")
# Metadata fields that may hold a product's page in the shop, first found wins.
URL_FIELDS = ("url", "link", "product_url", "productUrl", "page_url")


def price_currency(value: object) -> str | None:
    """The ISO 4217 code a price's text names, or None (a bare number names none)."""
    if not isinstance(value, str):
        return None
    text = clean_text(value)
    code = _CURRENCY_CODE.search(text.upper())
    if code:
        return code.group(1)
    return next((iso for sign, iso in _CURRENCY_SIGNS.items() if sign in text), None)


def with_currency(metadata: dict[str, str], price: object, default: str | None = None) -> dict[str, str]:
    """`metadata` with a `currency` taken from the price's text (or `default`) where it names none."""
    if not metadata.get("currency"):
        currency = price_currency(price) or default
        if currency:
            metadata["currency"] = currency
    return metadata


def product_url(fields: dict[str, Any]) -> str:
    """The product's page in the shop: the first web address among URL_FIELDS, else ''.
    Only http(s): a catalogue's `javascript:` link must never reach a page as a link."""
    for name in URL_FIELDS:
        value = fields.get(name)
        if isinstance(value, str) and value.strip().lower().startswith(("http://", "https://")):
            return value.strip()
    return ""
