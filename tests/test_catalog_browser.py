"""The feature catalog in a real browser (Debian's Chromium, headless, driven by Selenium), one
session: the sample project's catalog opened from file://, a search typed and a result followed
with the keyboard, the lineage links and "how to use it" snippets of the feature page, a phone's
width, filters, then the same catalog from `dbt-features serve` with its live online status. The
screenshots are kept in the test's folder (their paths are printed)."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import Select

from browser import open_chromium
from http_support import Server
from helpers import DBT_FEATURES
from dbt_features import FeatureStore


def wait_for(condition, what: str, timeout: float = 15.0):
    deadline = time.monotonic() + timeout
    while True:
        found = condition()
        if found:
            return found
        if time.monotonic() > deadline:
            pytest.fail(f"the page never showed {what}")
        time.sleep(0.05)


def test_search_follow_a_result_and_read_the_feature_page(duck_project: Path, tmp_path: Path):
    FeatureStore(str(duck_project)).sync()
    site = tmp_path / "site"
    subprocess.run([DBT_FEATURES, "catalog", "-o", str(site)], cwd=duck_project, check=True,
                   capture_output=True)
    driver = open_chromium(1280, 900)
    server = None
    try:
        search_and_follow(driver, site)
        read_the_feature_page(driver, tmp_path)
        follow_lineage_at_a_phones_width(driver, tmp_path)
        filter_by_tag(driver, site)
        server = Server(duck_project, start_timeout=120)
        driver.get(f"{server.url}/views/customer_spend.html")
        live = wait_for(lambda: driver.find_elements(By.CSS_SELECTOR, "[data-live=true]"),
                        "the live online status")
        assert "Last sync" in live[0].text and "As read live" in live[0].text
        assert driver.get_log("browser") == []  # no script errors, no missing files
    finally:
        if server is not None:
            server.stop()
        driver.quit()


def search_and_follow(driver, site: Path) -> None:
    """Type a search, go down to the first result with the keyboard, open it with Enter."""
    driver.get(site.joinpath("index.html").as_uri())
    search = driver.find_element(By.ID, "q")
    assert driver.switch_to.active_element == search  # focused: type at once
    search.send_keys("amount 30")
    results = wait_for(lambda: driver.find_elements(By.CSS_SELECTOR, "#results a"),
                       "search results")
    assert results[0].find_element(By.CLASS_NAME, "name").text == "customer_spend:avg_amount_30d"
    assert not driver.find_element(By.ID, "all-views").is_displayed()
    search.send_keys(Keys.ARROW_DOWN)
    assert driver.switch_to.active_element == results[0]
    driver.switch_to.active_element.send_keys(Keys.ENTER)
    wait_for(lambda: driver.current_url.endswith("features/customer_spend/avg_amount_30d.html"),
             "the feature page")


def read_the_feature_page(driver, tmp_path: Path) -> None:
    assert driver.find_element(By.TAG_NAME, "h1").text.startswith("customer_spend:avg_amount_30d")
    marked = driver.find_elements(By.CSS_SELECTOR, "#sql mark")
    assert marked[0].text == "avg(amount) over last_30d as avg_amount_30d"
    snippets = {e.get_attribute("data-snippet"): e.text
                for e in driver.find_elements(By.CSS_SELECTOR, "#use pre")}
    assert "get_training_set(spine, ['customer_spend:avg_amount_30d'])" in snippets["python"]
    assert "--features 'customer_spend:avg_amount_30d'" in snippets["sh"]
    assert "['customer_spend:avg_amount_30d']" in snippets["sql"]
    assert "/get-online-features" in snippets["curl"]
    copy = driver.find_elements(By.CSS_SELECTOR, "button.copy")
    assert len(copy) == 5 and all(b.is_displayed() for b in copy)
    shot = tmp_path / "catalog-feature.png"
    driver.set_window_size(1280, 2300)
    driver.save_screenshot(str(shot))
    print(f"screenshot: {shot}")


def follow_lineage_at_a_phones_width(driver, tmp_path: Path) -> None:
    links = {a.text for a in driver.find_elements(By.CSS_SELECTOR, "#lineage a")}
    assert links == {"transactions", "fraud_model", "fraud_training_set"}
    driver.find_element(By.LINK_TEXT, "transactions").click()
    wait_for(lambda: driver.find_element(By.TAG_NAME, "h1").text == "transactions",
             "the upstream model's page")
    driver.find_element(By.LINK_TEXT, "customer_spend").click()
    wait_for(lambda: driver.current_url.endswith("views/customer_spend.html"), "the view's page")
    driver.set_window_size(390, 844)  # a phone: nothing wider than the screen
    width = driver.execute_script(
        "return [document.documentElement.scrollWidth, window.innerWidth]")
    assert width[0] <= width[1], width
    shot = tmp_path / "catalog-phone.png"
    driver.save_screenshot(str(shot))
    print(f"screenshot: {shot}")


def filter_by_tag(driver, site: Path) -> None:
    driver.set_window_size(1280, 900)
    driver.get(site.joinpath("index.html").as_uri())
    Select(driver.find_element(By.ID, "filter-tag")).select_by_value("risk")
    names = wait_for(lambda: [e.text for e in driver.find_elements(
        By.CSS_SELECTOR, "#results .name")], "filtered results")
    assert names[0] == "merchant_risk" and all(n.startswith("merchant_risk") for n in names)
    assert len(names) == 4
