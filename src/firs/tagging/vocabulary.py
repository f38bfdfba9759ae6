"""The fashion vocabulary: garment types, colours and body regions, and the words that name them.

A label is written `kind:value` (`type:dress`, `colour:red`, `region:upper`) so that the
postings of different kinds never collide and a query word can say which kind it means.
"""

from __future__ import annotations

import re

# Garment type -> (body region, words that name it in titles, categories and CSV columns).
TYPES: dict[str, tuple[str, tuple[str, ...]]] = {
    "t-shirt": ("upper", ("t-shirt", "tshirt", "tshirts", "tee", "tees", "polo", "jersey")),
    "shirt": ("upper", ("shirt", "shirts", "button-down")),
    "blouse": ("upper", ("blouse", "blouses")),
    "top": ("upper", ("top", "tops", "tank", "camisole", "cami", "tunic", "tunics", "crop top")),
    "sweater": ("upper", ("sweater", "sweaters", "jumper", "pullover", "sweatshirt", "sweatshirts", "hoodie")),
    "cardigan": ("upper", ("cardigan", "cardigans", "shrug")),
    "jacket": ("upper", ("jacket", "jackets", "blazer", "blazers", "bomber", "windcheater", "waistcoat", "vest")),
    "coat": ("full", ("coat", "coats", "trench", "parka", "overcoat", "raincoat", "poncho")),
    "dress": ("full", ("dress", "dresses", "gown", "frock", "kurta", "kurtas", "kurti", "saree", "sarees")),
    "jumpsuit": ("full", ("jumpsuit", "jumpsuits", "romper", "playsuit", "dungarees", "overalls")),
    "skirt": ("lower", ("skirt", "skirts", "miniskirt")),
    "trousers": (
        "lower",
        (
            "trousers",
            "trouser",
            "pants",
            "chinos",
            "leggings",
            "joggers",
            "track pants",
            "capris",
            "patiala",
            "churidar",
            "salwar",
        ),
    ),
    "jeans": ("lower", ("jeans", "jean", "denim")),
    "shorts": ("lower", ("shorts", "trunks", "boxers")),
    "swimwear": ("full", ("swimwear", "swimsuit", "bikini", "maillot", "swimming")),
    "nightwear": (
        "full",
        (
            "nightwear",
            "pyjama",
            "pajama",
            "nightdress",
            "nightsuit",
            "night suit",
            "night suits",
            "lounge",
            "baby dolls",
            "babydoll",
        ),
    ),
    "shoes": ("feet", ("shoes", "shoe", "loafer", "loafers", "flats", "footwear", "clogs", "formal shoes")),
    "sneakers": ("feet", ("sneakers", "sneaker", "trainers", "running shoe", "sports shoes", "casual shoes")),
    "boots": ("feet", ("boots", "boot")),
    "sandals": ("feet", ("sandals", "sandal", "flip flops", "flip-flops", "slippers", "slides")),
    "heels": ("feet", ("heels", "heel", "pumps", "stilettos")),
    "socks": ("feet", ("socks", "sock", "stockings")),
    "bag": ("accessory", ("bag", "bags", "handbag", "handbags", "purse", "backpack", "tote", "clutch", "satchel")),
    "wallet": ("accessory", ("wallet", "wallets")),
    "hat": ("accessory", ("hat", "hats", "cap", "caps", "beanie", "bonnet", "sombrero")),
    "sunglasses": ("accessory", ("sunglasses", "sunglass", "shades", "eyewear")),
    "watch": ("accessory", ("watch", "watches")),
    "tie": ("accessory", ("tie", "ties", "bow tie", "necktie")),
    "scarf": ("accessory", ("scarf", "scarves", "stole", "stoles", "dupatta", "shawl", "muffler")),
    "belt": ("accessory", ("belt", "belts")),
    "jewellery": ("accessory", ("necklace", "earrings", "bracelet", "ring", "pendant", "jewellery", "jewelry")),
}

# Colour -> words that name it (tagging/tagger.py names a pixel's colour by lightness, chroma, hue).
COLOURS: dict[str, tuple[str, ...]] = {
    "black": ("black", "charcoal"),
    "white": ("white", "off white", "ivory"),
    "grey": ("grey", "gray", "silver", "melange"),
    "beige": ("beige", "cream", "khaki", "nude", "skin", "camel"),
    "brown": ("brown", "tan", "coffee", "bronze", "rust", "copper"),
    "red": ("red", "maroon", "burgundy", "wine", "crimson"),
    "pink": ("pink", "rose", "magenta", "fuchsia", "peach"),
    "orange": ("orange", "coral"),
    "yellow": ("yellow", "mustard", "gold", "golden"),
    "green": ("green", "olive", "lime", "mint", "sea green", "teal"),
    "blue": ("blue", "navy", "turquoise", "denim", "indigo", "aqua"),
    "purple": ("purple", "violet", "lavender", "mauve", "lilac"),
}

REGIONS = ("upper", "lower", "full", "feet", "accessory")

# ImageNet-1k class -> garment type: the classes of EfficientNet's head that name garments.
IMAGENET_TYPES: dict[int, str] = {
    399: "dress",  # abaya
    400: "dress",  # academic gown
    411: "dress",  # apron
    414: "bag",  # backpack
    433: "hat",  # bathing cap
    439: "hat",  # bearskin
    445: "swimwear",  # bikini
    451: "tie",  # bolo tie
    452: "hat",  # bonnet
    457: "tie",  # bow tie
    459: "top",  # brassiere
    465: "jacket",  # bulletproof vest
    474: "cardigan",
    501: "coat",  # cloak
    502: "shoes",  # clog
    514: "boots",  # cowboy boot
    515: "hat",  # cowboy hat
    531: "watch",  # digital watch
    552: "scarf",  # feather boa
    568: "coat",  # fur coat
    578: "dress",  # gown
    601: "skirt",  # hoopskirt
    608: "jeans",  # jean, denim
    610: "t-shirt",  # jersey, T-shirt
    614: "dress",  # kimono
    617: "coat",  # lab coat
    630: "shoes",  # Loafer
    636: "bag",  # mailbag
    638: "swimwear",  # maillot
    639: "swimwear",  # maillot, tank suit
    652: "jacket",  # military uniform
    655: "skirt",  # miniskirt
    689: "skirt",  # overskirt
    697: "nightwear",  # pajama
    735: "coat",  # poncho
    748: "bag",  # purse
    770: "sneakers",  # running shoe
    774: "sandals",  # sandal
    775: "skirt",  # sarong
    806: "socks",  # sock
    808: "hat",  # sombrero
    824: "scarf",  # stole
    834: "jacket",  # suit
    836: "sunglasses",  # sunglass
    837: "sunglasses",
    841: "sweater",  # sweatshirt
    842: "shorts",  # swimming trunks
    869: "coat",  # trench coat
    893: "wallet",
    906: "tie",  # Windsor tie
}

_WORD = re.compile(r"[a-z]+(?:-[a-z]+)?")


def phrase_index() -> dict[str, str]:
    """Every naming phrase -> its label (`type:...` or `colour:...`)."""
    index: dict[str, str] = {}
    for name, (_region, words) in TYPES.items():
        for word in (name, *words):
            index[word] = f"type:{name}"
    for name, words in COLOURS.items():
        for word in (name, *words):
            index.setdefault(word, f"colour:{name}")
    return index


_PHRASES = phrase_index()
_LONGEST = max(len(p.split()) for p in _PHRASES)


def labels_in_text(text: str) -> list[str]:
    """The vocabulary labels named in free text, in order of first mention (longest phrase wins)."""
    words = _WORD.findall(text.lower())
    found: list[str] = []
    i = 0
    while i < len(words):
        for size in range(min(_LONGEST, len(words) - i), 0, -1):
            label = _PHRASES.get(" ".join(words[i : i + size]))
            if label:
                if label not in found:
                    found.append(label)
                i += size
                break
        else:
            i += 1
    return found


def region_of(type_label: str) -> str | None:
    entry = TYPES.get(type_label.removeprefix("type:"))
    return entry[0] if entry else None
