"""The chapters' widgets, live: JupyterLab on localhost, chapters 01, 02 and 04 opened in headless Chromium
(Playwright driving the system Chromium), run with ``interactive=True``; moving a control must change the
widget's image. The book itself shows static frames (tests/test_widgets.py checks those)."""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from radgazegen.book import execute_notebooks
from radgazegen.presets import get_preset

ROOT = Path(__file__).resolve().parents[1]
SMOKE_RUN = ROOT / "runs" / "smoke"
CHROMIUM = next(filter(None, map(shutil.which, ("chromium", "chromium-browser", "google-chrome"))), None)
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync"]  # fmt: skip
IMAGE = ".widget-output img"
SCREENSHOTS = SMOKE_RUN / "screenshots"  # live-<chapter>.png: the page after the control moved (or where it failed)

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(CHROMIUM is None, reason="headless Chromium not found (Debian: apt-get install chromium): "
                                                "the live widgets are not tested"),  # fmt: skip
]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """JupyterLab serving the three chapters, prepared for the trained smoke run; yields the URL with its token."""
    import papermill

    smoke = get_preset("smoke")
    execute_notebooks(ROOT, smoke, run_dir=SMOKE_RUN, executed_dir=SMOKE_RUN / "notebooks", progress=False,
                      only=["01_gaze_heatmaps", "02_radiomic_maps", "03_controlnet_training", "04_sampling"])  # fmt: skip
    folder = tmp_path_factory.mktemp("lab")
    for name in ("01_gaze_heatmaps", "02_radiomic_maps", "04_sampling"):
        papermill.execute_notebook(str(ROOT / "notebooks" / f"{name}.ipynb"), str(folder / f"{name}.ipynb"),
                                   parameters={"preset": "smoke", "run_dir": str(SMOKE_RUN), "interactive": True},
                                   prepare_only=True, progress_bar=False)  # fmt: skip
    port, token = _free_port(), secrets.token_hex(16)
    log = (folder / "lab.log").open("w")
    settings = folder / ".settings" / "@jupyterlab" / "notebook-extension" / "tracker.jupyterlab-settings"
    settings.parent.mkdir(parents=True)
    settings.write_text('{"windowingMode": "none"}')  # render every cell, not only those in view
    environment = os.environ | {"JUPYTER_CONFIG_DIR": str(folder / ".config"), "JUPYTER_RUNTIME_DIR": str(folder / ".run"),
                                "JUPYTERLAB_SETTINGS_DIR": str(folder / ".settings")}  # fmt: skip
    server = subprocess.Popen(
        [sys.executable, "-m", "jupyter", "lab", "--no-browser", "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}",
         "--ServerApp.port_retries=0", f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={folder}",
         "--LabApp.expose_app_in_browser=True", "--LabApp.news_url=", "--LabApp.extension_manager=readonly",
         "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate", *(["--allow-root"] if os.geteuid() == 0 else [])],
        cwd=folder, env=environment, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(120):
            try:
                urllib.request.urlopen(f"{url}/api/status?token={token}", timeout=1)
                break
            except OSError:
                if server.poll() is not None:
                    pytest.fail(f"JupyterLab exited: {(folder / 'lab.log').read_text()[-3000:]}")
                time.sleep(0.5)
        yield f"{url}|{token}"
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()


def _run_notebook(page, url: str, token: str, name: str) -> str:
    """Open ``name``, run every cell, and return the ``src`` of the widget's first image."""
    page.goto(f"{url}/lab/tree/{name}.ipynb?token={token}&reset")  # reset: no tab of an earlier test stays open
    page.wait_for_function("() => window.jupyterapp && window.jupyterapp.shell.currentWidget"
                           " && window.jupyterapp.shell.currentWidget.sessionContext"
                           " && window.jupyterapp.shell.currentWidget.sessionContext.session"
                           " && window.jupyterapp.shell.currentWidget.sessionContext.session.kernel",
                           timeout=120_000)  # fmt: skip
    page.evaluate("() => window.jupyterapp.shell.currentWidget.sessionContext.ready")
    page.evaluate("() => window.jupyterapp.commands.execute('notebook:run-all-cells')")
    page.wait_for_selector(IMAGE, state="attached", timeout=300_000)
    errors = page.locator(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr'] .jp-RenderedText"
                          ":has-text('Traceback')")  # fmt: skip
    assert errors.count() == 0, errors.first.inner_text()
    return page.locator(IMAGE).first.get_attribute("src")


def _image_changes(page, before: str) -> None:
    page.wait_for_function("([selector, before]) => { const img = document.querySelector(selector);"
                           " return img && img.getAttribute('src') !== before; }",
                           arg=[IMAGE, before], timeout=300_000)  # fmt: skip


@pytest.mark.parametrize(
    ("chapter", "slider", "presses", "button"),
    [("01_gaze_heatmaps", 0, -8, None),  # reading time: back from the end of the reading
     ("02_radiomic_maps", 0, 1, None),  # the kernel radius: 2 -> 3
     ("04_sampling", 0, 3, "sample")],  # the gaze hotspot's row, then sample
)  # fmt: skip
def test_moving_a_control_changes_the_widget_image(lab: str, chapter: str, slider: int, presses: int,
                                                   button: str | None) -> None:  # fmt: skip
    from playwright.sync_api import sync_playwright

    url, token = lab.split("|")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            try:
                before = _run_notebook(page, url, token, chapter)
                handle = page.locator(".widget-slider .noUi-handle").nth(slider)
                value = handle.get_attribute("aria-valuenow")
                handle.scroll_into_view_if_needed()
                handle.focus()
                for _ in range(abs(presses)):
                    page.keyboard.press("ArrowRight" if presses > 0 else "ArrowLeft")
                page.wait_for_function("([el, value]) => el.getAttribute('aria-valuenow') !== value",
                                       arg=[handle.element_handle(), value], timeout=10_000)  # fmt: skip
                if button:
                    page.locator(".widget-button", has_text=button).click()
                _image_changes(page, before)
            finally:
                SCREENSHOTS.mkdir(parents=True, exist_ok=True)
                page.screenshot(path=SCREENSHOTS / f"live-{chapter}.png", full_page=True)
        finally:
            browser.close()
