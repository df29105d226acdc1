"""The dashboard in a real browser: headless Chromium (Debian's chromium and chromium-driver) via Selenium.

It opens the overview and sees a queued job, opens a dead job, clicks requeue and sees it run.
Set BATCHRUN_SCREENSHOTS=<folder> to keep a screenshot of each step.
"""
from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.project import Project, wait_for
from tests.surfaces.dashboard_support import start_dashboard

webdriver = pytest.importorskip("selenium.webdriver")
from selenium.common.exceptions import WebDriverException  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402

pytestmark = pytest.mark.timeout(120)
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
ONCE_FAILING = ("name: once-failing\nhandler: testjobs:fail_times\nqueue: default\n"
                "params:\n  times: {type: int, required: true}\n  tag: {type: str, default: ''}\n")


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[object]:
    if not (CHROMIUM and CHROMEDRIVER):
        pytest.skip("needs Debian's chromium and chromium-driver (apt-get install chromium chromium-driver)")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                 "--window-size=1360,1000", f"--user-data-dir={tmp_path / 'chromium'}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=webdriver.ChromeService(executable_path=CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


def snap(driver: object, name: str) -> None:
    folder = os.environ.get("BATCHRUN_SCREENSHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(Path(folder) / f"{name}.png"))


def text_of(driver: object, by: str, what: str) -> str:
    """The element's text, or '' while the page is loading (the element may be missing or stale)."""
    try:
        return driver.find_element(by, what).text
    except WebDriverException:
        return ""


def test_overview_dead_job_requeue_and_run(project: Project, browser: object) -> None:
    (project.root / "jobs" / "once-failing.yaml").write_text(ONCE_FAILING)
    base = start_dashboard(project)
    queued = project.submit("sleep", seconds=0.01, tag="queued")

    browser.get(base + "/")
    link = browser.find_element(By.LINK_TEXT, queued)
    depth = browser.find_element(By.CSS_SELECTOR, 'tr[data-queue="default"] .depth')
    assert depth.text == "1" and link.is_displayed()
    snap(browser, "1-overview-queued")

    doomed = project.submit("once-failing", times=1, tag="doomed")
    project.supervise()
    wait_for(lambda: project.state(doomed) == "failed" and project.state(queued) == "succeeded",
             what="the queued job to succeed and the once-failing job to be dead-lettered")
    browser.get(base + "/")
    wait_for(lambda: text_of(browser, By.CSS_SELECTOR, '[data-count="workers"]') == "2",
             what="the overview to show two workers")
    snap(browser, "2-overview-running")

    browser.get(base + "/dead")
    snap(browser, "3-dead-letters")
    browser.find_element(By.LINK_TEXT, doomed).click()
    wait_for(lambda: text_of(browser, By.ID, "job-state") == "failed", what="the dead job's page")
    assert "failure 1 of 1" in browser.find_element(By.ID, "error").text
    snap(browser, "4-dead-job")

    browser.find_element(By.ID, "requeue").click()
    wait_for(lambda: text_of(browser, By.CSS_SELECTOR, ".notice") == "requeued", what="the page after requeue")
    wait_for(lambda: text_of(browser, By.ID, "job-state") == "succeeded", timeout=30,
             what="the requeued job to run and the page to show it succeeded")
    assert "succeeded after 1 failures" in browser.find_element(By.ID, "result").text
    assert project.state(doomed) == "succeeded"
    snap(browser, "5-requeued-succeeded")
