"""report.html in a real browser: Debian's Chromium, headless, driven through its chromedriver.

The page must render (the funnel table and every chart drawn with a size), log no console error, make no
request outside file:// (Chromium's own network log), keep its example texts as text, fit the window
without sideways scrolling, and leave a full-page screenshot for people to look at
(HYBRIDMIX_SCREENSHOT_DIR, default: the test's temporary folder).

HYBRIDMIX_CHROMIUM and HYBRIDMIX_CHROMEDRIVER name the two binaries (`.ci/browser.sh` installs Debian's
`chromium` and `chromium-driver` and prints them). Without them the test is skipped; with them set, a
browser that does not start is a failure. Selenium is given the driver's path, so Selenium Manager never
looks for (or downloads) one.
"""

import base64
import json
import os
import tempfile
import time

import numpy as np
import pytest

from hybridmix.pipelines.cli import main
from hybridmix.transforms import report_charts as charts
from hybridmix.transforms.report_html import REPORT
from tests.builders import report_corpus

CHROMIUM = os.environ.get("HYBRIDMIX_CHROMIUM")
CHROMEDRIVER = os.environ.get("HYBRIDMIX_CHROMEDRIVER")
CHARTS = ("funnel", "mixture", "lengths", "filters", "duplicates", "collapse", "scores")
WIDTH = 1280


def _binaries() -> tuple[str, str]:
    if not CHROMIUM and not CHROMEDRIVER:
        pytest.skip("HYBRIDMIX_CHROMIUM and HYBRIDMIX_CHROMEDRIVER are not set: no browser to open report.html in "
                    "(.ci/browser.sh installs Debian's chromium and chromium-driver and prints their paths)")
    if not (CHROMIUM and CHROMEDRIVER):
        pytest.fail("set both HYBRIDMIX_CHROMIUM and HYBRIDMIX_CHROMEDRIVER, or neither")
    for name, path in (("HYBRIDMIX_CHROMIUM", CHROMIUM), ("HYBRIDMIX_CHROMEDRIVER", CHROMEDRIVER)):
        if not (os.path.isfile(path) and os.access(path, os.X_OK)):
            pytest.fail(f"{name}={path} is not an executable file")
    return CHROMIUM, CHROMEDRIVER


@pytest.fixture(scope="module")
def browser():
    chromium, chromedriver = _binaries()
    from selenium import webdriver
    from selenium.common.exceptions import WebDriverException
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="hybridmix-chromium-")
    options = Options()
    options.binary_location = chromium
    for flag in ("--headless=new", f"--window-size={WIDTH},1000", f"--user-data-dir={profile}",
                 # CI runs as root, where Chromium refuses its sandbox; the page is our own file.
                 "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 # Chromium's own traffic (updates, sync, metrics) is not the page's, and there is no network.
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--no-first-run", "--no-default-browser-check"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    try:
        driver = webdriver.Chrome(service=Service(executable_path=chromedriver), options=options)
    except WebDriverException as exc:
        pytest.fail(f"Chromium did not start ({chromium} through {chromedriver}): {exc.msg}")
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture(scope="module")
def page(browser, tmp_path_factory):
    """The report of a run of the report corpus, loaded; the browser's logs of the load."""
    root = tmp_path_factory.mktemp("browser")
    out = root / "out"
    assert main(["run", report_corpus(root), "--output", str(out)]) == 0
    url = (out / REPORT).as_uri()
    # What the browser did before (its start page) is not the report's doing.
    browser.get_log("browser")
    browser.get_log("performance")
    browser.get(url)
    for _ in range(100):
        if browser.execute_script("return document.readyState") == "complete":
            break
        time.sleep(0.05)
    return url, browser.get_log("browser"), browser.get_log("performance")


def test_the_report_renders_in_chromium(browser, page):
    url, _, _ = page
    assert browser.current_url == url
    assert browser.title.startswith("hybridmix report: run ")
    table = browser.find_element("css selector", "table.funnel")
    assert table.size["width"] > 300 and table.size["height"] > 60
    rows = table.find_elements("css selector", "tbody tr")
    assert [r.find_elements("css selector", "td")[0].text for r in rows] == ["wiki", "chat", "TOTAL"]
    for name in CHARTS:
        svg = browser.find_element("css selector", f'svg[aria-label="{name}"]')
        assert svg.size["width"] > 200 and svg.size["height"] > 80, (name, svg.size)
        # Drawn, not just laid out: its text has glyphs with a width.
        widths = browser.execute_script(
            "return Array.from(arguments[0].querySelectorAll('text')).map(t => t.getBBox().width)", svg)
        assert widths and max(widths) > 0, name
    # Nothing wider than the window: tables scroll inside their box, charts shrink.
    assert browser.execute_script("return document.documentElement.scrollWidth") <= WIDTH


def _check_labels(browser, name: str) -> None:
    """The chart's text, as the browser laid it out (the fonts CI has), inside the chart and clear of
    its other text: the charts reserve room for text from an estimate of its width."""
    svg = browser.find_element("css selector", f'svg[aria-label="{name}"]')
    chart, boxes = browser.execute_script(
        "const r = e => { const b = e.getBoundingClientRect(); return [b.left, b.top, b.right, b.bottom]; };"
        "return [r(arguments[0]), Array.from(arguments[0].querySelectorAll('text'))"
        ".map(t => [t.textContent, ...r(t)])];", svg)
    assert len(boxes) >= 3, name
    for text, left, top, right, bottom in boxes:
        assert (left >= chart[0] - 0.5 and top >= chart[1] - 0.5 and right <= chart[2] + 0.5
                and bottom <= chart[3] + 0.5), (name, text, (left, top, right, bottom), chart)
    for i, (a, *box_a) in enumerate(boxes):
        for b, *box_b in boxes[i + 1:]:
            across = min(box_a[2], box_b[2]) - max(box_a[0], box_b[0])
            down = min(box_a[3], box_b[3]) - max(box_a[1], box_b[1])
            assert across <= 0.5 or down <= 0.5, (name, a, b, box_a, box_b)


def test_chart_labels_stay_inside_their_chart_and_clear_of_each_other(browser, page):
    for name in CHARTS:
        _check_labels(browser, name)


def test_long_and_chinese_labels_fit_too(browser, page, tmp_path):
    """Source and filter names are the user's: wide (CJK) and long ones must fit as well."""
    names = ["维基百科中文语料", "a_very_long_source_name-with-WIDE-CAPITALS_and_more_2026"]
    fates = list(charts.FATE_COLORS)
    svgs = [
        charts.render(charts.funnel, "funnel", names, fates, np.array([[1, 2, 3, 4, 5, 85], [40, 0, 0, 0, 50, 10]])),
        charts.render(charts.mixture, "mixture", names, [0.3, None], [0.2999, 0.7001], ["#0072B2", "#E69F00"],
                      "tokens"),
        charts.render(charts.filters, "filters", [f"{n}_v1" for n in names], [12_345_678, 0], [1, 999]),
        charts.render(charts.collapse, "collapse", names, [0.41, 1.87]),
        charts.render(charts.scores, "scores", names + ["第三个来源"],
                      [{"pool": [5] * 20, "selected": [0] * 10 + [9] * 10, "filtered": [30] + [0] * 19}] * 3),
    ]
    path = tmp_path / "charts.html"
    path.write_text('<!DOCTYPE html><html><head><meta charset="utf-8"></head><body style="width:1180px">'
                    + "".join(svgs) + "</body></html>", encoding="utf-8")
    browser.get(path.as_uri())
    try:
        for name in ("funnel", "mixture", "filters", "collapse", "scores"):
            _check_labels(browser, name)
    finally:
        browser.get(page[0])  # the other tests look at the report


def test_no_console_error_and_no_request_outside_the_file(page):
    url, console, performance = page
    assert [e for e in console if e["level"] in ("SEVERE", "WARNING")] == []
    requested = []
    for entry in performance:
        message = json.loads(entry["message"])["message"]
        if message["method"].startswith("Network."):
            params = message.get("params", {})
            target = (params.get("request") or {}).get("url") or params.get("url")
            if target:
                requested.append(target)
    assert url in requested, "Chromium's network log did not see the page itself"
    assert [r for r in requested if not r.startswith(("file://", "data:"))] == []


def test_example_texts_stay_text(browser, page):
    assert browser.execute_script("return document.scripts.length") == 0
    refusal = next(d for d in browser.find_elements("css selector", "details.filter")
                   if d.find_element("tag name", "summary").text.startswith("refusal_v8"))
    refusal.find_element("tag name", "summary").click()
    sample = refusal.find_element("css selector", "pre.sample")
    assert sample.is_displayed()
    assert "<script>alert('x')</script>" in sample.text
    assert "\\u202eevil" in sample.text


def test_screenshot(browser, page, tmp_path):
    folder = os.environ.get("HYBRIDMIX_SCREENSHOT_DIR") or str(tmp_path)
    os.makedirs(folder, exist_ok=True)
    # From the top, so the sticky section bar sits where a reader first sees it.
    browser.execute_script("window.scrollTo(0, 0)")
    height = browser.execute_script("return document.documentElement.scrollHeight")
    shot = browser.execute_cdp_cmd("Page.captureScreenshot", {
        "format": "png", "captureBeyondViewport": True,
        "clip": {"x": 0, "y": 0, "width": WIDTH, "height": height, "scale": 1}})
    path = os.path.join(folder, "report.png")
    with open(path, "wb") as fh:
        fh.write(base64.b64decode(shot["data"]))
    assert os.path.getsize(path) > 50_000
    print(f"\nscreenshot of report.html: {path} ({WIDTH} x {height})")
