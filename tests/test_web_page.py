"""The web page in a real browser: Debian's Chromium driven by Playwright, against `firs serve`'s
app on localhost with a generated catalogue. Screenshots are kept in test-artifacts/."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import skimage.data
from axe_playwright_python.sync_playwright import Axe
from PIL import Image
from playwright.sync_api import Browser, Page, expect, sync_playwright

from firs.search.engine import SearchEngine
from firs.service.app import ServiceOptions, create_app
from firs.vision.embedder import Embedder

from .helpers import served

CHROMIUM = os.environ.get("FIRS_CHROMIUM", "/usr/bin/chromium")
ARTIFACTS = Path(os.environ.get("FIRS_TEST_ARTIFACTS", Path(__file__).resolve().parents[1] / "test-artifacts"))


@pytest.fixture(scope="module")
def server(garment_index: Path, embedder: Embedder) -> Iterator[str]:
    # The catalogue names no currency: the operator's setting (`firs serve --currency EUR`) applies.
    with served(create_app(SearchEngine(garment_index, embedder), ServiceOptions(currency="EUR"))) as url:
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


def _artifact(name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS / f"{name}.png"


def _shot(page: Page, name: str) -> None:
    page.screenshot(path=str(_artifact(name)), full_page=True)


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
    _shot(page, "desktop-first-screen")
    expect(page.locator("#catalogue")).to_have_text("24 products")
    page.set_input_files("#file", str(person_photo))
    cards = page.locator("#results .card")
    expect(cards).to_have_count(24)
    expect(page.locator("#status")).to_have_text("24 matches for the top")  # garments named in words
    region = page.locator("#regions g").first
    expect(region).to_have_attribute("data-label", "upper")
    expect(region).to_have_attribute("aria-label", "top: show its matches")
    first_card = cards.first
    expect(first_card.locator(".title")).not_to_be_empty()
    expect(first_card.locator(".price")).to_contain_text("€")  # the operator's currency
    expect(first_card.locator(".similar")).to_have_attribute("aria-label", re.compile("^Find products similar to "))
    # Scores and timings only in the details view.
    expect(first_card.locator(".score")).to_be_hidden()
    expect(page.locator("#debug")).to_be_hidden()
    page.check("#show-details")
    expect(first_card.locator(".score")).to_contain_text("score ")
    expect(page.locator("#debug")).to_contain_text(" ms")
    page.uncheck("#show-details")
    # The modes and filters stay right under the photo however long the results are.
    gap = page.evaluate(
        "document.querySelector('.controls').getBoundingClientRect().top"
        " - document.querySelector('.photo-panel').getBoundingClientRect().bottom"
    )
    assert 0 <= gap < 40, f"the controls are {gap}px below the photo"
    first_card.locator("img").evaluate("img => img.decode()")  # the thumbnail loads
    assert first_card.locator("img").evaluate("img => img.naturalWidth") > 0
    _shot(page, "desktop-results")

    page.locator("#regions rect").first.click()  # click the garment: its matches
    expect(page.locator("#regions g.active")).to_have_count(1)
    expect(page.locator("#status")).to_contain_text("for the top")

    _answered(page, lambda: page.check('input[name="mode"][value="simple"]'))  # the whole photo: no regions
    expect(page.locator("#status")).to_have_text("24 matches for the whole photo")
    expect(page.locator("#regions g")).to_have_count(0)
    expect(cards).to_have_count(24)


def test_garments_are_buttons_for_the_keyboard(page: Page, tmp_path: Path) -> None:
    """Two people side by side: two garments found; Tab reaches each box, Enter chooses it."""
    person = Image.fromarray(skimage.data.astronaut())
    pair = Image.new("RGB", (1024, 512), "white")
    pair.paste(person, (0, 0))
    pair.paste(person.resize((512, 512)).transpose(Image.Transpose.FLIP_LEFT_RIGHT), (512, 0))
    path = tmp_path / "two.jpg"
    pair.save(path, quality=90)
    page.set_input_files("#file", str(path))
    expect(page.locator("#results .card")).to_have_count(24)
    boxes = page.locator("#regions g")
    assert boxes.count() >= 1
    box = boxes.last
    box.focus()
    expect(box).to_be_focused()
    page.keyboard.press("Enter")
    expect(box).to_have_attribute("aria-pressed", "true")
    name = box.get_attribute("aria-label").split(":")[0]
    expect(page.locator("#status")).to_have_text(f"24 matches for the {name}")
    # The drop zone is a real button: Space opens the file chooser.
    with page.expect_file_chooser() as chooser:
        page.focus("#drop")
        page.keyboard.press(" ")
    assert chooser.value is not None


def test_filter_and_words_refine(page: Page, person_photo: Path) -> None:
    page.set_input_files("#file", str(person_photo))
    expect(page.locator("#results .card")).to_have_count(24)
    page.fill("#price-max", "20")
    _answered(page, lambda: page.click("#apply"))
    prices = page.locator("#results .price")
    values = [float(re.sub(r"[^\d.]", "", text)) for text in prices.all_inner_texts()]
    assert values and max(values) <= 20 and len(values) < 24
    expect(page.locator("#filter-count")).to_have_text("(1 on)")
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
    expect(page.locator("#status")).to_contain_text("matches like “")


def test_not_an_image_is_reported(page: Page, tmp_path: Path) -> None:
    fake = tmp_path / "notes.jpg"
    fake.write_text("shopping list: socks, a red scarf")
    page.set_input_files("#file", str(fake))
    error = page.locator("#error")
    expect(error).to_be_visible()
    expect(error).to_contain_text("not a photo we can read")
    expect(page.locator("#status")).to_be_empty()
    expect(page.locator("#results .card")).to_have_count(0)
    _shot(page, "desktop-error")


def _in_view(page: Page, selector: str) -> bool:
    return page.locator(selector).evaluate(
        "e => { const r = e.getBoundingClientRect(); return r.top >= 0 && r.top < innerHeight; }"
    )


def test_phone_sized_screen(browser: Browser, server: str, person_photo: Path) -> None:
    context = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True)
    phone = context.new_page()
    phone.goto(server)
    expect(phone.locator(".camera")).to_be_visible()  # "take a photo" on a touch screen
    expect(phone.locator("#filters")).not_to_have_attribute("open", "")  # filters: a drawer, closed
    phone.screenshot(path=str(_artifact("phone-first-screen")))
    held: list = []
    phone.route("**/api/search?*", lambda route: held.append(route))
    phone.set_input_files("#file", str(person_photo))
    expect(phone.locator(".preview .spinner")).to_be_visible()  # feedback over the photo while it searches
    assert _in_view(phone, ".preview .spinner")
    held[0].continue_()
    phone.unroute("**/api/search?*")
    expect(phone.locator("#results .card")).to_have_count(24)
    expect(phone.locator(".preview .spinner")).to_be_hidden()
    phone.wait_for_timeout(800)  # the smooth scroll
    assert _in_view(phone, "#status"), "the results did not come into view"
    assert _in_view(phone, "#results .card >> nth=0")
    width = phone.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, f"the page is {width}px wide on a 390px phone"
    columns = phone.locator("#results").evaluate("g => getComputedStyle(g).gridTemplateColumns.split(' ').length")
    assert columns == 2
    phone.screenshot(path=str(_artifact("phone-results")))
    # "Similar" keeps the shopper at the results, not at the top of the page.
    phone.locator("#results .card .similar").nth(3).click()
    expect(phone.locator("#status")).to_contain_text("matches like")
    phone.wait_for_timeout(800)
    assert _in_view(phone, "#status")
    phone.screenshot(path=str(_artifact("phone-more-like-this")))
    phone.go_back()
    expect(phone.locator("#status")).to_have_text("24 matches for the top")
    phone.screenshot(path=str(_artifact("phone-back")))
    _shot(phone, "phone")
    phone.set_input_files("#file", files=[{"name": "notes.jpg", "mimeType": "image/jpeg", "buffer": b"socks"}])
    expect(phone.locator("#error")).to_contain_text("not a photo we can read")
    phone.wait_for_timeout(800)  # the smooth scroll
    assert _in_view(phone, "#error"), "the error is off-screen"
    phone.screenshot(path=str(_artifact("phone-error")))
    context.close()


def test_more_like_this_then_back_and_forward(page: Page, person_photo: Path) -> None:
    page.set_input_files("#file", str(person_photo))
    expect(page.locator("#status")).to_have_text("24 matches for the top")
    first = page.locator("#results .card").first
    title = first.locator(".title").inner_text()
    _answered(page, lambda: first.locator(".similar").click())
    expect(page.locator("#status")).to_have_text(f"23 matches like “{title}”")  # all but itself
    expect(page.locator("#preview")).to_be_hidden()  # no garment boxes of the photo under another answer
    expect(page.locator("#back")).to_be_visible()
    assert "like=" in page.url
    _shot(page, "desktop-more-like-this")
    searches: list[str] = []
    page.on("request", lambda request: "/api/search" in request.url and searches.append(request.url))
    page.go_back()  # the page's own history: the photo's answer again, boxes and all, no new search
    expect(page.locator("#status")).to_have_text("24 matches for the top")
    expect(page.locator("#preview")).to_be_visible()
    expect(page.locator("#regions g")).not_to_have_count(0)
    assert page.url.endswith("?view=photo")
    _shot(page, "desktop-back")
    page.go_forward()
    expect(page.locator("#status")).to_have_text(f"23 matches like “{title}”")
    page.locator("#back").click()
    expect(page.locator("#status")).to_have_text("24 matches for the top")
    assert searches == []
    # A more-like-this link opens on its own (a reload, a shared link).
    like_url = page.evaluate("location.origin") + f"/?like={first.get_attribute('data-id')}&title=x"
    page.goto(like_url)
    expect(page.locator("#status")).to_have_text("23 matches like “x”")


def test_filter_choices_come_from_the_catalogue(page: Page) -> None:
    category = page.locator("#facet-category")
    expect(category.locator("option", has_text="skirt (")).to_have_count(1)
    expect(page.locator("#facet-brand option")).to_have_count(2)  # Any, Acme
    page.fill("#text", "black")
    page.select_option("#facet-category", "skirt")
    _answered(page, lambda: page.click("#apply"))
    titles = page.locator("#results .title").all_inner_texts()
    assert titles and all("skirt" in t.lower() for t in titles)
    expect(page.locator("#filter-count")).to_have_text("(2 on)")


def test_an_empty_answer_names_the_filter_that_emptied_it(page: Page, person_photo: Path) -> None:
    page.set_input_files("#file", str(person_photo))
    expect(page.locator("#results .card")).to_have_count(24)
    page.fill("#price-max", "1")
    _answered(page, lambda: page.click("#apply"))
    expect(page.locator("#results .card")).to_have_count(0)
    expect(page.locator("#status")).to_have_text("No product has price up to €1.00. Change that filter.")
    page.fill("#price-max", "11")
    page.select_option("#facet-category", "skirt")  # each alone matches, together nothing
    _answered(page, lambda: page.click("#apply"))
    expect(page.locator("#status")).to_contain_text("none matches all of them together")


def test_a_reversed_price_range_is_refused_before_searching(page: Page) -> None:
    page.fill("#text", "dress")
    page.fill("#price-min", "50")
    page.fill("#price-max", "10")
    requests: list[str] = []
    page.on("request", lambda request: "/api/" in request.url and requests.append(request.url))
    page.click("#apply")
    expect(page.locator("#filter-error")).to_have_text("The lowest price (50) is above the highest (10).")
    page.wait_for_timeout(300)
    assert requests == []


def test_a_catalogue_without_prices_or_with_many_brands(page: Page) -> None:
    """No price filter without prices; more brands than a list holds: a text field that suggests."""

    def changed(route) -> None:  # type: ignore[no-untyped-def]
        stats = route.fetch().json()
        stats["catalogue"]["price"] = None
        stats["catalogue"]["facet_limit"] = 1  # as if the one brand were the first of many
        route.fulfill(json=stats)

    page.route("**/api/stats", changed)
    page.reload()
    brand = page.locator("#facet-brand")
    expect(brand).to_have_attribute("list", "facet-brand-values")
    expect(page.locator("#facet-brand-values option")).to_have_attribute("value", "Acme")
    expect(page.locator("#price")).to_be_hidden()
    brand.fill("acme")  # any spelling: the server matches it
    page.fill("#text", "dress")
    _answered(page, lambda: page.click("#apply"))
    expect(page.locator("#results .card").first).to_be_visible()


def test_cards_link_to_the_shop_and_show_its_currency(page: Page, person_photo: Path) -> None:
    """A catalogue's product page (`url`) and currency on the card; no link where there is no page."""
    # The answers as a catalogue with product pages and prices in pounds would give them.
    page.evaluate(
        """() => {
        const plain = window.fetch;
        window.fetch = async (...args) => {
          const response = await plain(...args);
          if (!String(args[0]).startsWith("/api/search?")) return response;
          const answer = await response.json();
          for (const item of [answer, ...(answer.items || [])]) {
            item.results.forEach((product, number) => {
              product.url = number ? `https://shop.example/p/${product.id}` : "";
              product.currency = "GBP";
            });
          }
          return new Response(JSON.stringify(answer), { status: response.status });
        };
      }"""
    )
    page.set_input_files("#file", str(person_photo))
    cards = page.locator("#results .card")
    expect(cards).to_have_count(24)
    second = cards.nth(1)
    product_id = second.get_attribute("data-id")
    expect(second.locator("a.shop")).to_have_attribute("href", f"https://shop.example/p/{product_id}")
    expect(second.locator("a.shop")).to_have_attribute("target", "_blank")
    expect(second.locator(".title a")).to_have_attribute("href", f"https://shop.example/p/{product_id}")
    expect(second.locator(".price")).to_contain_text("£")
    expect(cards.first.locator("a.shop")).to_have_count(0)  # no product page: no link
    expect(cards.first.locator(".title a")).not_to_have_attribute("href", re.compile("."))


def _main_states(page: Page, photo: Path) -> Iterator[str]:
    """Takes the page through its main states, naming each once it is reached."""
    expect(page.locator("#catalogue")).not_to_be_empty()
    yield "first screen"
    page.set_input_files("#file", str(photo))
    expect(page.locator("#results .card")).to_have_count(24)
    yield "results"
    page.check("#show-details")
    yield "details"
    page.locator("#filters").evaluate("d => (d.open = true)")
    yield "filters open"
    page.locator("#results .card .similar").first.click()
    expect(page.locator("#status")).to_contain_text("like")
    yield "more like this"
    page.set_input_files("#file", files=[{"name": "x.jpg", "mimeType": "image/jpeg", "buffer": b"no"}])
    expect(page.locator("#error")).to_be_visible()
    yield "error"


def test_no_serious_accessibility_problems(browser: Browser, server: str, person_photo: Path) -> None:
    """axe-core in the page's main states, desktop and phone: no serious or critical violations."""
    axe = Axe()
    summary = []
    for viewport in ({"width": 1366, "height": 900}, {"width": 390, "height": 844}):
        context = browser.new_context(viewport=viewport)
        page = context.new_page()
        page.goto(server)
        for state in _main_states(page, person_photo):
            violations = axe.run(page).response["violations"]
            bad = [(v["id"], v["impact"]) for v in violations if v["impact"] in ("serious", "critical")]
            summary.append(f"{viewport['width']}px {state}: {len(violations)} violations, serious/critical {bad}")
            assert not bad, summary[-1]
        context.close()
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / "axe-summary.txt").write_text("\n".join(summary) + "\n")


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
    expect(page.locator("#error")).to_contain_text("The search is busy right now. Try again in 1 second.")
    expect(page.locator("#results .card")).to_have_count(0)
    expect(page.locator("body")).not_to_have_class("busy")
    page.locator("#error button.again").click()
    expect(page.locator("#results .card")).to_have_count(24)
    expect(page.locator("#error")).to_be_hidden()


def test_an_iphone_heic_photo_is_searched(page: Page, tmp_path: Path) -> None:
    """Chromium cannot show HEIC: no preview, but the server decodes it and the results come."""
    import pillow_heif

    path = tmp_path / "IMG_0001.HEIC"
    pillow_heif.from_pillow(Image.fromarray(skimage.data.astronaut())).save(path, quality=80)
    page.set_input_files("#file", str(path))
    expect(page.locator("#results .card")).to_have_count(24)
    expect(page.locator("#status")).to_have_text("24 matches for the top")
    expect(page.locator("#error")).to_be_hidden()
