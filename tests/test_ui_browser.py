"""The MLflow UI in a real browser: a tiny real suite logged through `bench server` and its winner registered by
`bench matrix`, then in headless Chromium: the experiment's link opens on its training runs with the task in the
Dataset column, a run shows its dataset inputs, the registered model lists its alias, and the compare-runs view
shows the run names and metric values.

Screenshots are kept in ``test-artifacts/ui/`` (git-ignored; ``BENCH_TEST_ARTIFACTS`` moves it):
``experiment_runs.png``, ``run_datasets.png``, ``registered_model.png``, ``invocation_filter.png``,
``runs_table.png`` and ``compare_<metric>.png``.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException, WebDriverException
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.actions.wheel_input import ScrollOrigin
from selenium.webdriver.common.by import By

from bench import server, tracking
from bench.cli import main
from bench.execution import executors, runner
from bench.tasks import load_task
from tests.conftest import REPO, write_task

CHROMIUM = next(filter(None, map(shutil.which, ("chromium", "chromium-browser", "google-chrome"))), None)
DRIVER = shutil.which("chromedriver")
pytestmark = pytest.mark.skipif(not (CHROMIUM and DRIVER), reason="needs Debian's chromium and chromium-driver "
                                "(apt-get install chromium chromium-driver; .ci/run installs them)")
PIPELINES = ["sklearn_linear", "sklearn_hgb"]
METRICS = ["primary_score", "latency_p50_ms"]
WAIT_S = 60
ARTIFACTS = Path(os.environ.get("BENCH_TEST_ARTIFACTS", REPO / "test-artifacts")) / "ui"
DESCRIPTION = "Two noisy classes, for the browser test."

# The compare view's Metrics table is two virtualised grids, the names and the values, kept in step by the app
# (the names grid follows one scroll event late). A row exists only while scrolled into view. The test scrolls
# the values grid as a user does (mouse wheel), then reads a metric's values from the cells of the values grid at
# the same row offset as its name; "Run Name:" (a plain table) gives the column order.
SECTION_JS = """
return [...document.querySelectorAll('[class*="collapse-item"]')]
  .find(s => s.innerText.trim().startsWith(arguments[0]));
"""
VALUES_GRID_JS = """
const grids = [...arguments[0].querySelectorAll('.ReactVirtualized__Grid')];
return grids.find(g => getComputedStyle(g).overflowY !== 'hidden') || grids[grids.length - 1];
"""
ROW_VALUES_JS = """
let cell = arguments[0];
while (cell.parentElement && !cell.parentElement.className.toString().includes('innerScrollContainer'))
  cell = cell.parentElement;
const section = cell.closest('[class*="collapse-item"]');
const out = [];
for (const grid of section.querySelectorAll('[class*="innerScrollContainer"]')) {
  if (grid === cell.parentElement) continue;
  for (const c of grid.children) if (c.offsetTop === cell.offsetTop) out.push([c.offsetLeft, c.innerText.trim()]);
}
return out.sort((a, b) => a[0] - b[0]).map(x => x[1]);
"""
SAME_ROW_JS = """
const name = arguments[0], r = name.getBoundingClientRect(), cy = (r.top + r.bottom) / 2;
return [...document.querySelectorAll('*')]
  .filter(e => e.childElementCount === 0 && e !== name && e.innerText && e.innerText.trim())
  .filter(e => { const b = e.getBoundingClientRect();
                 return b.height > 0 && b.top <= cy && b.bottom >= cy && b.left >= r.right; })
  .sort((a, b) => a.getBoundingClientRect().left - b.getBoundingClientRect().left)
  .map(e => e.innerText.trim());
"""


@pytest.fixture(scope="module")
def filled_server(tmp_path_factory):
    """A tracking server on a free loopback port over its own store, filled by a tiny real suite through HTTP
    and the balanced profile's winner registered by `bench matrix`; yields (url, invocation id, matrix output)."""
    tmp_path = tmp_path_factory.mktemp("ui")
    task_path = write_task(tmp_path / "tasks", "binary")
    task_path.write_text(task_path.read_text() + f"description: {DESCRIPTION}\n")
    proc, url = server.start(f"sqlite:///{tmp_path / 'srv' / 'server.db'}", tmp_path / "srv" / "artifacts",
                             log_file=tmp_path / "server.log")
    try:
        with pytest.MonkeyPatch.context() as env:
            env.setenv("BENCH_CACHE_DIR", str(tmp_path / "cache"))
            config = runner.RunConfig(tracking_uri=url, budget_s=3, time_margin_s=120, latency_n=100,
                                      latency_warmup=5, batch_rows=500, cold_start_repeats=1, suite="ui",
                                      job_root=tmp_path / "jobs")
            jobs = runner.plan([load_task(task_path)], PIPELINES, [0])
            outcomes = executors.run_with_executor(jobs, config, executor="dask", workers=2)
            assert {o.status for o in outcomes} == {"finished"}, [o.message for o in outcomes]
            assert main(["matrix", "--tracking-uri", url, "--out", str(tmp_path / "out"), "--format", "csv",
                         "--no-log"]) == 0
        yield url, config.invocation
    finally:
        server.stop(proc)


@pytest.fixture
def browser(filled_server):
    options = Options()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1600,1200"):
        options.add_argument(arg)
    driver = webdriver.Chrome(options=options, service=Service(DRIVER))
    driver.set_page_load_timeout(WAIT_S)
    # A plain page of the same origin first: close the assistant panel before the app ever loads.
    driver.get(f"{filled_server[0]}/health")
    driver.execute_script("localStorage.setItem('mlflow.assistant.panelOpen_v1', 'false');"
                          "localStorage.setItem('mlflow.assistant.fab.autoOpenedOnFirstLoad_v1', 'true');")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    try:
        yield driver
    finally:
        driver.quit()


def wait_for(condition, what: str, timeout_s: float = WAIT_S):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if result := condition():
                return result
        except (StaleElementReferenceException, WebDriverException):
            pass  # the page re-rendered under us: look again
        time.sleep(0.3)
    raise AssertionError(f"the UI never showed {what} within {timeout_s:.0f} s")


def shown(driver, text: str):
    """Displayed elements whose own text is exactly ``text``."""
    return [e for e in driver.find_elements(By.XPATH, f"//*[normalize-space(text())='{text}']") if e.is_displayed()]


def reveal_metric(driver, name: str):
    """Wheel-scroll the Metrics grid until the row named ``name`` is on screen; returns its name cell."""
    section = driver.execute_script(SECTION_JS, "Metrics")
    driver.execute_script("arguments[0].scrollIntoView({block: 'start'})", section)
    grid = driver.execute_script(VALUES_GRID_JS, section)
    ActionChains(driver).scroll_from_origin(ScrollOrigin.from_element(grid), 0, -20_000).perform()  # to the top
    last = None
    for _ in range(80):
        found = [e for e in section.find_elements(By.XPATH, f".//*[normalize-space(text())='{name}']")
                 if e.is_displayed()]
        box, offset = grid.rect, driver.execute_script("return arguments[0].scrollTop", grid)
        if found and (box["y"] + 5 < found[0].rect["y"] < box["y"] + box["height"] - 60 or offset == last):
            return found[0]  # well inside the grid, or the grid is at its end
        last = offset
        ActionChains(driver).scroll_from_origin(ScrollOrigin.from_element(grid), 0, 60).perform()
        time.sleep(0.15)
    raise AssertionError(f"metric {name} not found in the compare view")


def test_runs_table_and_compare_view_show_run_names_and_metrics(filled_server, browser):
    url = filled_server[0]
    client = tracking._client(url)
    experiment = client.get_experiment_by_name("tiny_binary")
    runs = {r.info.run_name: r for r in client.search_runs([experiment.experiment_id])}
    assert sorted(runs) == sorted(f"{p}-s0" for p in PIPELINES)

    browser.get(f"{url}/#/experiments/{experiment.experiment_id}/runs")
    wait_for(lambda: all(shown(browser, name) for name in runs), "both run names in the runs table")
    browser.save_screenshot(str(ARTIFACTS / "runs_table.png"))

    browser.get(tracking.compare_url(url, experiment.experiment_id, [r.info.run_id for r in runs.values()]))
    wait_for(lambda: "Comparing 2 Runs from 1 Experiment" in browser.find_element(By.TAG_NAME, "body").text,
             "the compare-runs heading")
    label = wait_for(lambda: shown(browser, "Run Name:"), "the run details")[0]
    columns = wait_for(lambda: browser.execute_script(SAME_ROW_JS, label), "the run names in the compare view")
    assert sorted(columns) == sorted(runs), columns
    for metric in METRICS:
        row = reveal_metric(browser, metric)
        values = browser.execute_script(ROW_VALUES_JS, row)
        browser.save_screenshot(str(ARTIFACTS / f"compare_{metric}.png"))
        assert len(values) == len(columns), (metric, values)
        for name, shown_value in zip(columns, values, strict=True):
            actual = runs[name].data.metrics[metric]
            assert float(shown_value) == pytest.approx(actual, rel=0.01, abs=0.01), (metric, name, shown_value)
    assert (ARTIFACTS / "runs_table.png").stat().st_size > 10_000


LEAVES_CONTAINING_JS = """
const text = arguments[0];
return [...document.querySelectorAll('body *')]
  .filter(e => e.textContent.includes(text) && ![...e.children].some(c => c.textContent.includes(text)))
  .filter(e => e.getClientRects().length > 0)
  .map(e => e.textContent.trim());
"""


def containing(driver, text: str) -> list[str]:
    """Texts of the innermost rendered elements containing ``text`` (cells cut with an ellipsis included)."""
    return driver.execute_script(LEAVES_CONTAINING_JS, text)


def body_text(driver) -> str:
    return driver.find_element(By.TAG_NAME, "body").text


def test_experiment_opens_on_training_runs_with_datasets_and_the_registered_winner(filled_server, browser):
    url, invocation = filled_server
    client = tracking._client(url)
    experiment = client.get_experiment_by_name("tiny_binary")
    runs = {r.info.run_name: r for r in client.search_runs([experiment.experiment_id])}
    split = {r.data.tags["split_hash"] for r in runs.values()}.pop()

    # The link the harness prints (bench ui, the matrix reports): the runs table, not the GenAI overview.
    browser.get(tracking.experiment_url(url, experiment.experiment_id))
    wait_for(lambda: all(shown(browser, name) for name in runs), "the run names on the experiment's page")
    assert "/runs" in browser.current_url and "/overview" not in browser.current_url, browser.current_url
    wait_for(lambda: shown(browser, "Dataset"), "the Dataset column")
    cells = wait_for(lambda: (found := containing(browser, f"tiny_binary ({split}-train)")) and
                     len(found) >= len(runs) and found, "the task in every run's Dataset cell")
    assert len(cells) == len(runs), cells
    assert DESCRIPTION in body_text(browser)  # the task's description is the experiment's
    assert "No data available" not in body_text(browser)  # not the GenAI overview of traces
    browser.save_screenshot(str(ARTIFACTS / "experiment_runs.png"))

    # Once 'Model training' is chosen (the browser remembers it), a plain experiment link opens on runs too.
    browser.get(f"{url}/health")  # a full page load: the app reads the choice when it starts
    browser.execute_script("localStorage.setItem('mlflow.workflowType_v1', JSON.stringify('machine_learning'))")
    browser.get(f"{url}/#/experiments/{experiment.experiment_id}")
    wait_for(lambda: "/runs" in browser.current_url and all(shown(browser, name) for name in runs),
             "the runs table from the plain experiment link")

    # One invocation's runs, with the filter the README shows.
    browser.get(tracking.experiment_url(url, experiment.experiment_id, f"tags.invocation = '{invocation}'"))
    wait_for(lambda: all(shown(browser, name) for name in runs), "this invocation's runs, filtered")
    browser.save_screenshot(str(ARTIFACTS / "invocation_filter.png"))
    browser.get(tracking.experiment_url(url, experiment.experiment_id, "tags.invocation = 'none-such'"))
    try:
        wait_for(lambda: not any(shown(browser, name) for name in runs) and "none-such" in browser.current_url
                 and "0 matching runs" in body_text(browser), "no runs for another invocation", 20)
    except AssertionError:
        raise AssertionError(body_text(browser)[-1500:]) from None

    # A run's page: its train and test inputs, named after the task, with the split hash.
    run = runs["sklearn_hgb-s0"]
    browser.get(f"{url}/#/experiments/{experiment.experiment_id}/runs/{run.info.run_id}?{tracking.TRAINING_VIEW}")
    wait_for(lambda: shown(browser, "Datasets") and containing(browser, f"tiny_binary ({split}-train)"),
             "the run's dataset inputs")
    browser.save_screenshot(str(ARTIFACTS / "run_datasets.png"))

    # The registered model: named after the task, the balanced profile's alias on the winner's version.
    version = client.get_model_version_by_alias("tiny_binary", "balanced-winner")
    assert client.get_run(version.run_id).data.tags["pipeline"] in PIPELINES
    browser.get(f"{url}/#/models/tiny_binary?{tracking.TRAINING_VIEW}")
    wait_for(lambda: containing(browser, "balanced-winner") and shown(browser, f"Version {version.version}"),
             "the alias on the registered model's page")
    browser.save_screenshot(str(ARTIFACTS / "registered_model.png"))
    for name in ("experiment_runs", "invocation_filter", "run_datasets", "registered_model"):
        assert (ARTIFACTS / f"{name}.png").stat().st_size > 10_000, name
