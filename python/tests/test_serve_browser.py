"""`gradlens serve` in headless Chromium (Debian's chromium and chromium-driver, driven by
Selenium): the page loads with no console error, runs two methods on the tiny Llama, shows
two heatmaps, the agreement matrix, a value on hover, the faithfulness curves as SVG, and
folds that open onto each generated token's heatmap; the screenshot is kept in
target/artifacts/serve.png."""
import os
import pathlib
import re
import shutil
import subprocess
import threading

import pytest

from conftest import ROOT, cli, tiny

ARTIFACTS = ROOT / "target" / "artifacts"


def chromium_tools():
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if not (browser and driver):
        if os.environ.get("CI") == "true":
            pytest.fail("chromium and chromedriver are needed under CI=true")
        pytest.skip("chromium or chromedriver not installed")
    try:
        import selenium  # noqa: F401
    except ImportError:
        pytest.skip("selenium not installed")
    return browser, driver


@pytest.fixture
def server():
    process = subprocess.Popen(
        # GRADLENS_SERVE_MODEL: another model, for the README's screenshot.
        [cli(), "serve", "--model", os.environ.get("GRADLENS_SERVE_MODEL", tiny("tiny-llama")),
         "--port", "0"],
        stderr=subprocess.PIPE, text=True)
    address = None
    for line in process.stderr:
        found = re.search(r"http://([^/ ]+)/", line)
        if found:
            address = found.group(1)
            break
    assert address, "the server did not say where it listens"
    threading.Thread(target=lambda: [None for _ in process.stderr], daemon=True).start()
    yield f"http://{address}/"
    process.terminate()
    assert process.wait(timeout=60) == 0, "SIGTERM stops the server cleanly"


def test_the_page_compares_two_methods(server):
    browser, driver_path = chromium_tools()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for flag in ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--window-size=1280,1320"]:
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(driver_path), options=options)
    try:
        wait = WebDriverWait(driver, 120)
        driver.get(server)
        wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#methods input")) >= 23)
        for box in driver.find_elements(By.CSS_SELECTOR, "#methods input"):
            if box.is_selected() != (box.get_attribute("value") in ("saliency", "attnlrp")):
                box.click()
        prompt = driver.find_element(By.ID, "prompt")
        prompt.clear()
        prompt.send_keys("the quick brown fox jumps over")
        driver.find_element(By.ID, "run").click()
        wait.until(lambda d: d.find_element(By.ID, "agreement").is_displayed())

        panels = driver.find_elements(By.CSS_SELECTOR, ".panel")
        assert [p.find_element(By.TAG_NAME, "h2").text for p in panels] == ["saliency", "attnlrp"]
        for p in panels:
            assert len(p.find_elements(By.CSS_SELECTOR, ".tok")) > 5
        matrix = driver.find_element(By.ID, "agreement").text
        for word in ["Spearman", "Kendall", "overlap"]:
            assert word in matrix

        token = panels[1].find_elements(By.CSS_SELECTOR, ".tok")[2]
        ActionChains(driver).move_to_element(token).perform()
        assert re.search(r"attnlrp · .*: -?\d", driver.find_element(By.ID, "hover").text)
        token.click()
        detail = driver.find_element(By.ID, "detail")
        assert detail.is_displayed() and "saliency" in detail.text and "attnlrp" in detail.text

        driver.find_element(By.ID, "faithfulness").click()
        wait.until(lambda d: d.find_element(By.ID, "curves").is_displayed())
        curves = driver.find_element(By.ID, "curves")
        assert len(curves.find_elements(By.TAG_NAME, "polyline")) == 4  # 2 methods × 2 curves

        # Export HTML: the server renders what the page shows as the static report.
        driver.find_element(By.ID, "export-html").click()
        wait.until(lambda d: "exported" in d.find_element(By.ID, "status").text)

        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(ARTIFACTS / "serve.png"))
        # Two generated tokens, each with a fold that opens onto its own heatmap.
        steps = driver.find_element(By.ID, "generate")
        steps.clear()
        steps.send_keys("2")
        driver.find_element(By.ID, "run").click()
        wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, ".panel details.step")) == 4)
        fold = driver.find_elements(By.CSS_SELECTOR, ".panel details.step")[1]
        assert not fold.find_elements(By.CSS_SELECTOR, ".tok")[0].is_displayed()
        fold.find_element(By.TAG_NAME, "summary").click()
        assert fold.find_elements(By.CSS_SELECTOR, ".tok")[0].is_displayed()
        wait.until(lambda d: d.find_element(By.ID, "agreement").is_displayed())

        errors = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
        assert not errors, errors
    finally:
        driver.quit()
