"""The web page in a real browser: Debian's Chromium driven by Playwright, against `firs serve`'s
app on localhost with a generated catalogue. Screenshots are kept in test-artifacts/."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import skimage.data
from PIL import Image
from playwright.sync_api import Browser, Page, expect, sync_playwright

from firs.search.engine import SearchEngine
from firs.service.app import create_app
from firs.vision.embedder import Embedder

from .helpers import served

CHROMIUM = os.environ.get("FIRS_CHROMIUM", "/usr/bin/chromium")
ARTIFACTS = Path(os.environ.get("FIRS_TEST_ARTIFACTS", Path(__file__).resolve().parents[1] / "test-artifacts"))


@pytest.fixture(scope="module")
def server(garment_index: Path, embedder: Embedder) -> Iterator[str]:
    with served(create_app(SearchEngine(garment_index, embedder))) as url:
        yield url


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    assert Path(CHROMIUM).exists(), f"{CHROMIUM} missing: `apt-get install chromium` (make test does it)"
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM)
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Browser, server: str) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    opened = context.new_page()
    opened.goto(server)
    yield opened
    context.close()


def _shot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def _answered(page: Page, action) -> None:  # type: ignore[no-untyped-def]
    """Do `action` and wait until the page has shown the API's answer to it."""
    with page.expect_response(lambda response: "/api/" in response.url and "/image" not in response.url):
        action()
    expect(page.locator("body")).not_to_have_class("busy")


@pytest.fixture(scope="module")
def person_photo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("photos") / "astronaut.jpg"
    Image.fromarray(skimage.data.astronaut()).save(path, quality=90)
    return path


def test_upload_shows_regions_and_results(page: Page, person_photo: Path) -> None:
    expect(page.locator("#catalogue")).to_have_text("24 products")
    page.set_input_files("#file", str(person_photo))
    cards = page.locator("#results .card")
    expect(cards).to_have_count(24)
    expect(page.locator("#status")).to_contain_text("for the upper garment")
    region = page.locator("#regions g").first
    expect(region).to_have_attribute("data-label", "upper")
    first_card = cards.first
    expect(first_card.locator(".title")).not_to_be_empty()
    expect(first_card.locator(".score")).to_contain_text("score ")
    first_card.locator("img").evaluate("img => img.decode()")  # the thumbnail loads
    assert first_card.locator("img").evaluate("img => img.naturalWidth") > 0
    _shot(page, "upload-fine")

    page.locator("#regions rect").first.click()  # click the garment: its matches
    expect(page.locator("#regions g.active")).to_have_count(1)
    expect(page.locator("#status")).to_contain_text("for the upper garment")

    _answered(page, lambda: page.check('input[name="mode"][value="simple"]'))  # the whole photo: no regions
    expect(page.locator("#status")).not_to_contain_text("garment")
    expect(page.locator("#regions g")).to_have_count(0)
    expect(cards).to_have_count(24)


def test_filter_and_words_refine(page: Page, person_photo: Path) -> None:
    page.set_input_files("#file", str(person_photo))
    expect(page.locator("#results .card")).to_have_count(24)
    page.fill("#price-max", "20")
    _answered(page, lambda: page.click("#apply"))
    prices = page.locator("#results .price")
    values = [float(text) for text in prices.all_inner_texts()]
    assert values and max(values) <= 20 and len(values) < 24
    page.fill("#price-max", "")
    page.fill("#text", "skirt")
    _answered(page, lambda: page.click("#apply"))
    titles = page.locator("#results .title")
    expect(titles.first).to_contain_text("skirt")
    assert all("skirt" in t.lower() for t in titles.all_inner_texts())
    _shot(page, "filtered")


def test_words_alone_and_more_like_this(page: Page) -> None:
    page.fill("#text", "striped dress")
    _answered(page, lambda: page.click("#apply"))
    first = page.locator("#results .card").first
    expect(first.locator(".title")).to_contain_text("dress")
    _answered(page, lambda: first.locator(".similar").click())
    expect(page.locator("#status")).to_contain_text("products like")


def test_not_an_image_is_reported(page: Page, tmp_path: Path) -> None:
    fake = tmp_path / "notes.jpg"
    fake.write_text("shopping list: socks, a red scarf")
    page.set_input_files("#file", str(fake))
    error = page.locator("#error")
    expect(error).to_be_visible()
    expect(error).to_contain_text("not a photo we can read")
    _shot(page, "error-not-an-image")


def test_phone_sized_screen(browser: Browser, server: str, person_photo: Path) -> None:
    context = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True)
    phone = context.new_page()
    phone.goto(server)
    expect(phone.locator(".camera")).to_be_visible()  # "take a photo" on a touch screen
    phone.set_input_files("#file", str(person_photo))
    expect(phone.locator("#results .card")).to_have_count(24)
    width = phone.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, f"the page is {width}px wide on a 390px phone"
    columns = phone.locator("#results").evaluate("g => getComputedStyle(g).gridTemplateColumns.split(' ').length")
    assert columns == 2
    _shot(phone, "phone")
    context.close()


def test_a_big_phone_photo_gets_its_box_on_the_person(page: Page, tmp_path: Path) -> None:
    """A 3024x4032 photo stored on its side with EXIF orientation 6, as phones write them: the
    box is drawn in the photo's own (upright) pixels, around the astronaut's torso."""
    upright = Image.new("RGB", (3024, 4032), "white")
    upright.paste(Image.fromarray(skimage.data.astronaut()).resize((3024, 3024)), (0, 0))
    exif = Image.Exif()
    exif[0x0112] = 6
    path = tmp_path / "phone.jpg"
    upright.transpose(Image.Transpose.ROTATE_90).save(path, quality=85, exif=exif)
    page.set_input_files("#file", str(path))
    expect(page.locator("#results .card").first).to_be_visible()
    assert page.locator("#photo").evaluate("img => [img.naturalWidth, img.naturalHeight]") == [3024, 4032]
    rect = page.locator("#regions g rect").first
    x, y = float(rect.get_attribute("x") or 0), float(rect.get_attribute("y") or 0)
    width, height = float(rect.get_attribute("width") or 0), float(rect.get_attribute("height") or 0)
    # The torso of the astronaut (upper left 3024 px square): far from the half-scale frame.
    assert 300 < x + width / 2 < 2400 and 1200 < y + height / 2 < 2900, (x, y, width, height)
    assert width > 800 and y + height <= 4032
    _shot(page, "phone-photo-exif")


def test_a_newer_photo_wins_over_a_slower_older_answer(page: Page, person_photo: Path, garment_catalog: Path) -> None:
    """Two photos chosen in quick succession: the first one's answer comes last (held back
    here), and must not replace the second's; the page is not idle until the newest is shown."""
    held: list = []

    def hold_first(route) -> None:  # type: ignore[no-untyped-def]
        if not held:
            held.append(route)  # answered later, after the second search's answer
        else:
            route.continue_()

    page.route("**/api/search?*", hold_first)
    garment = garment_catalog.parent / "img" / "skirt-black-solid.png"
    page.set_input_files("#file", str(person_photo))
    page.wait_for_timeout(200)
    page.set_input_files("#file", str(garment))
    expect(page.locator("#results .card").first.locator(".title")).to_have_text("Black skirt")
    held[0].continue_()
    page.wait_for_timeout(1500)
    expect(page.locator("#results .card").first.locator(".title")).to_have_text("Black skirt")
    expect(page.locator("body")).not_to_have_class("busy")


def test_an_error_clears_the_old_results_and_offers_to_try_again(page: Page, person_photo: Path) -> None:
    page.set_input_files("#file", str(person_photo))
    expect(page.locator("#results .card")).to_have_count(24)
    failures = {"left": 1}

    def busy_once(route) -> None:  # type: ignore[no-untyped-def]
        if failures["left"]:
            failures["left"] -= 1
            route.fulfill(status=503, headers={"Retry-After": "1"}, json={"error": "busy", "detail": None})
        else:
            route.continue_()

    page.route("**/api/search?*", busy_once)
    page.set_input_files("#file", str(person_photo))  # the same file again: it must search again
    expect(page.locator("#error")).to_contain_text("The search is busy right now. Try again in 1 seconds.")
    expect(page.locator("#results .card")).to_have_count(0)
    expect(page.locator("body")).not_to_have_class("busy")
    page.locator("#error button.again").click()
    expect(page.locator("#results .card")).to_have_count(24)
    expect(page.locator("#error")).to_be_hidden()
