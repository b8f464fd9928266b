"""End to end in a real browser: Debian's headless Chromium, driven by Playwright, uses the served page.

It drops a real handwritten digit onto the page and must see the label the
API predicts for the same bytes as the top score bar, plus image thumbnails of
neighbours; a text query must show neighbour thumbnails that actually load;
and at phone width (375 px) the page must not scroll sideways. Needs
``.ci/install-browser.sh`` (chromium + playwright); skipped when they are absent.
"""

from __future__ import annotations

import shutil

import httpx
import pytest
from test_serve_support import digit_images, loopback_server, served_folders

from chorus.serve import create_app

playwright_api = pytest.importorskip(
    "playwright.sync_api", reason="pip install playwright (see .ci/install-browser.sh)"
)
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
pytestmark = pytest.mark.skipif(
    shutil.which("chromium") is None, reason="Debian chromium missing: run .ci/install-browser.sh"
)


@pytest.fixture(scope="module")
def base_url(tmp_path_factory, real_data_root):
    runs, index_dir = served_folders(tmp_path_factory, real_data_root)
    with loopback_server(create_app(runs, index_dir)) as url:
        yield url


@pytest.fixture(scope="module")
def browser():
    with playwright_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        yield browser
        browser.close()


def open_page(browser, base_url: str, width: int = 1000):
    page = browser.new_page(viewport={"width": width, "height": 900})
    page.set_default_timeout(60_000)
    page.goto(base_url + "/")
    page.wait_for_function("document.querySelector('#status').textContent.startsWith('Ready')")
    return page


def test_uploading_a_real_image_shows_the_predicted_label(browser, base_url, tmp_path):
    png, _ = digit_images(5)[4]
    expected = httpx.post(base_url + "/zeroshot", files={"image": ("d.png", png, "image/png")}, timeout=60).json()
    top = expected["labels"][0]
    upload = tmp_path / "digit.png"
    upload.write_bytes(png)
    page = open_page(browser, base_url)
    page.set_input_files("#file-input", str(upload))
    page.wait_for_selector("#predictions li.prediction")
    shown = page.locator("#predictions li.prediction").first
    assert shown.locator(".label").inner_text() == top["label"]
    assert shown.locator(".score").inner_text() == f"{100 * top['score']:.1f}%"
    assert expected["run"] in page.locator("#predictions-note").inner_text()  # the page says which run answered
    page.wait_for_selector("#neighbours li.hit img")
    assert page.locator("#neighbours li.hit").count() == 8
    page.close()


def test_text_search_shows_thumbnails_that_load(browser, base_url):
    page = open_page(browser, base_url)
    page.fill("#text-input", "the number three.")
    page.click("#text-form button")
    page.wait_for_selector("#neighbours li.hit img")
    page.wait_for_function(
        "[...document.querySelectorAll('#neighbours img')].every(i => i.complete && i.naturalWidth > 0)"
    )
    assert page.locator("#neighbours li.hit").count() == 8
    assert not page.locator("#status").evaluate("e => e.classList.contains('error')")
    page.close()


def test_page_fits_a_phone_screen(browser, base_url):
    page = open_page(browser, base_url, width=375)
    page.fill("#text-input", "the number five.")
    page.click("#text-form button")
    page.wait_for_selector("#neighbours li.hit img")
    overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0, f"page is {overflow}px wider than a 375px screen"
    page.close()
