"""The page in a real browser (Debian's Chromium, driven by Selenium through chromedriver): a user
chooses an image file, sees the network's top class and the overlay. Without Chromium the test
skips, and fails under CI (`make test` installs it)."""

from __future__ import annotations

import base64
import io
import os
import shutil

import pytest
from PIL import Image

from tests.serve.conftest import digit_image, encode, live_server

CHROMIUM = os.environ.get("STRIATE_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("STRIATE_CHROMEDRIVER", "/usr/bin/chromedriver")


@pytest.fixture(scope="module")
def browser():
    """A headless Chromium (as root too: no sandbox), closed after the module."""
    found = [p for p in (CHROMIUM, CHROMEDRIVER) if not (os.path.isfile(p) or shutil.which(p))]
    if found:
        msg = f"Chromium or chromedriver not found at {', '.join(found)} (make test installs them)"
        if os.environ.get("CI") == "true":
            pytest.fail(msg)
        pytest.skip(msg)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                 "--window-size=1000,900"):  # fmt: skip
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def test_choosing_an_image_shows_the_top_class_and_the_overlay(
    browser, classifier, digits_test, tmp_path
):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    wanted = {}
    for i in (0, 1):
        path = tmp_path / f"digit-{i}.png"
        path.write_bytes(encode(digit_image(digits_test, i)))
        probs = classifier.predict_proba([digit_image(digits_test, i)])[0]
        wanted[path] = (classifier.classes[int(probs.argmax())], float(probs.max()))
    with live_server(classifier) as url:
        browser.get(url + "/")
        assert "digits-mlp" in browser.title
        wait = WebDriverWait(browser, 30)
        for path, (top, p) in wanted.items():  # a second image replaces the first's results
            browser.find_element(By.ID, "file").send_keys(str(path))
            wait.until(ec.text_to_be_present_in_element((By.ID, "status"), path.name))
            assert browser.find_element(By.ID, "error").text == ""
            assert browser.find_element(By.ID, "top-class").text == top
            rows = browser.find_elements(By.CSS_SELECTOR, "#classes tr")
            assert len(rows) == 5
            assert rows[0].find_elements(By.TAG_NAME, "td")[1].text == f"{100 * p:.1f} %"
            overlay = browser.find_element(By.ID, "overlay")
            assert browser.execute_script("return arguments[0].complete && "
                                          "arguments[0].naturalWidth", overlay) == 224  # fmt: skip
            src = overlay.get_attribute("src")
            png = base64.b64decode(src.split(",", 1)[1])
            assert Image.open(io.BytesIO(png)).size == (224, 224)
            assert browser.find_element(By.ID, "method").text == f"saliency of {top}"


def test_a_file_that_is_not_an_image_shows_the_server_s_message(browser, classifier, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    path = tmp_path / "notes.png"
    path.write_text("these are notes, not a picture")
    with live_server(classifier) as url:
        browser.get(url + "/")
        browser.find_element(By.ID, "file").send_keys(str(path))
        WebDriverWait(browser, 30).until(lambda b: b.find_element(By.ID, "error").text)
        assert "not a readable image" in browser.find_element(By.ID, "error").text
        assert browser.find_elements(By.ID, "top-class") == []
