"""Screenshots of a sweep in MLflow's and TensorBoard's own UIs, taken with headless Chromium (README's figures).

Not part of the package: run it by hand with Playwright's Python package and a Chromium build
(``pip install playwright``; Debian's ``chromium`` works through ``--chromium``)::

    mlflow ui --backend-store-uri sqlite:///outputs/mlflow.db --port 5000 &
    python docs/tracking_ui/screenshot.py mlflow http://127.0.0.1:5000 "$PWD/outputs/multirun/<date>/<time>" \
        --out docs/tracking_ui --chromium /usr/bin/chromium
    tensorboard --logdir outputs/multirun/<date>/<time> --port 6006 &
    python docs/tracking_ui/screenshot.py tensorboard http://127.0.0.1:6006 --out docs/tracking_ui \
        --chromium /usr/bin/chromium

Writes ``mlflow_runs.png`` (the experiment's runs with their varying tags and test scores),
``mlflow_charts.png`` (the validation curves of every run, epoch by epoch) and ``tensorboard.png``
(the training and validation curves of every run).
"""

from __future__ import annotations

import argparse
import json
import urllib.parse
import urllib.request
from pathlib import Path

from playwright.sync_api import Page, sync_playwright

MLFLOW_COLUMNS = ["Dataset", "Source", "Models",  # shown by default, empty here: hidden
                  "frontend", "seed", "strf.status", "test_mean_cc_norm", "test_median_cc_norm", "best_epoch",
                  "wall_time_s"]
MLFLOW_CHARTS = "val_"  # the validation curves
TENSORBOARD_TAGS = "epoch/(train|val)_(loss|cc_norm)"
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync"]
SETTLE_MS = 6000  # both UIs poll their server, so the network never goes idle: wait for the page to draw


def experiment_id(url: str, name: str) -> str:
    query = urllib.parse.urlencode({"experiment_name": name})
    with urllib.request.urlopen(f"{url}/api/2.0/mlflow/experiments/get-by-name?{query}") as reply:
        return json.load(reply)["experiment"]["experiment_id"]


def open_page(page: Page, url: str) -> None:
    page.goto(url)
    page.wait_for_load_state("load")
    page.wait_for_timeout(SETTLE_MS)


def choose_columns(page: Page, labels: list[str]) -> None:
    """Toggle the MLflow runs table's columns by their labels in its "Columns" menu."""
    page.get_by_role("button", name="Columns").first.click()
    search = page.get_by_placeholder("Search columns")
    for label in labels:
        search.fill(label)
        page.wait_for_timeout(300)
        page.get_by_text(label, exact=True).last.click()
    page.keyboard.press("Escape")
    page.wait_for_timeout(1500)


def mlflow(page: Page, url: str, experiment: str, out: Path) -> None:
    exp = experiment_id(url, experiment)
    for name, view in (("mlflow_runs", "TABLE"), ("mlflow_charts", "CHART")):
        open_page(page, f"{url}/#/experiments/{exp}/runs?compareRunsMode={view}")
        for label in ("Close", "Got it"):  # the assistant side panel, first-visit hints
            button = page.get_by_role("button", name=label)
            if button.count():
                button.first.click()
        page.wait_for_timeout(1500)
        if view == "TABLE":
            choose_columns(page, MLFLOW_COLUMNS)
        else:
            page.get_by_placeholder("Search metric charts").fill(MLFLOW_CHARTS)
            page.wait_for_timeout(2000)
        page.screenshot(path=str(out / f"{name}.png"))


def tensorboard(page: Page, url: str, out: Path) -> None:
    open_page(page, f"{url}/#timeseries")
    page.locator("input[placeholder='Filter tags (regex)']").fill(TENSORBOARD_TAGS)
    page.get_by_label("Close side pane").click()  # the settings pane opens on a first visit
    page.wait_for_timeout(3000)
    page.screenshot(path=str(out / "tensorboard.png"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("tool", choices=("mlflow", "tensorboard"))
    parser.add_argument("url", help="the UI, e.g. http://127.0.0.1:5000 (mlflow ui) or http://127.0.0.1:6006")
    parser.add_argument("experiment", nargs="?", help="mlflow: the experiment (a sweep's: its dir's absolute path)")
    parser.add_argument("--out", type=Path, default=Path("."))
    parser.add_argument("--chromium", help="a Chromium executable (default: Playwright's own)")
    args = parser.parse_args()
    if args.tool == "mlflow" and not args.experiment:
        parser.error("mlflow needs the experiment name")
    args.out.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=args.chromium, args=FLAGS)
        page = browser.new_page(viewport={"width": 1600, "height": 900})
        if args.tool == "mlflow":
            mlflow(page, args.url, args.experiment, args.out)
        else:
            tensorboard(page, args.url, args.out)
        browser.close()


if __name__ == "__main__":
    main()
