"""The listener panel in a real browser: JupyterLab on 127.0.0.1, driven by headless Chromium.

Runs the README's ``ListenerPanel`` lines in a notebook, answers twice with the panel's
buttons and checks that each answer adds a row to the panel's log. Skipped (with the reason)
where no Chromium is installed; CI installs Debian's (``apt-get install chromium``). The
screenshot of the panel after two answers is written to ``$MUSICRL_SCREENSHOTS`` (default:
the test's temporary folder).
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
TOKEN = "musicrl-browser-test"

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(CHROMIUM is None, reason="no Chromium on this machine: apt-get install chromium (CI installs it)"),
]


RUN_WHEN_KERNEL_IDLE = """async () => {
  const panel = window.jupyterapp.shell.currentWidget;
  await panel.sessionContext.ready;
  const kernel = () => panel.sessionContext.session && panel.sessionContext.session.kernel;
  for (let i = 0; i < 1200 && !(kernel() && kernel().status === 'idle'); i++) await new Promise(r => setTimeout(r, 100));
  await window.jupyterapp.commands.execute('notebook:run-all-cells');
}"""


def readme_panel_lines() -> str:
    """The README's lines that show the panel in JupyterLab."""
    readme = (ROOT / "README.md").read_text()
    block = re.search(r"To be the listener in JupyterLab.*?```python\n(.*?)```", readme, flags=re.S)
    assert block, "the README no longer shows the ListenerPanel lines"
    return block.group(1)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def jupyterlab(tmp_path):
    import nbformat

    lines = readme_panel_lines()
    assert "ListenerPanel" in lines
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(lines)],
                                            metadata={"kernelspec": {"name": "python3", "display_name": "Python 3"}}),
                   tmp_path / "panel.ipynb")
    port = free_port()
    env = {**os.environ, "MUSICRL_RESULTS": str(tmp_path / "results"), "OMP_NUM_THREADS": "1"}
    server = subprocess.Popen(
        [sys.executable, "-m", "jupyter", "lab", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
         f"--IdentityProvider.token={TOKEN}", f"--ServerApp.root_dir={tmp_path}", "--LabApp.expose_app_in_browser=True",
         *(["--allow-root"] if hasattr(os, "geteuid") and os.geteuid() == 0 else [])],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    for _ in range(120):
        try:
            urllib.request.urlopen(f"{url}/api/status?token={TOKEN}", timeout=2)
            break
        except OSError:
            time.sleep(0.5)
    else:
        server.kill()
        pytest.fail("JupyterLab did not start within 60 s")
    yield url, tmp_path
    server.terminate()
    server.wait(timeout=30)


def test_listener_panel_logs_each_answer_in_headless_chromium(jupyterlab):
    from playwright.sync_api import sync_playwright

    url, folder = jupyterlab
    shots = Path(os.environ.get("MUSICRL_SCREENSHOTS", folder))
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1300, "height": 1000})
        page.goto(f"{url}/lab/tree/panel.ipynb?token={TOKEN}")
        page.wait_for_function("window.jupyterapp && document.querySelector('.jp-Notebook')", timeout=120_000)
        page.evaluate(RUN_WHEN_KERNEL_IDLE)
        answer = page.get_by_role("button", name="answer")
        answer.wait_for(timeout=600_000)  # the first run extracts the catalogue's features
        log_rows = page.locator(".widget-html table tr")
        for step, rating in ((1, "3"), (2, "1")):
            page.locator(".widget-toggle-button", has_text=re.compile(f"^{rating}$")).click()
            page.locator(".widget-toggle-button", has_text=re.compile("^closer$")).click()
            answer.click()
            page.wait_for_function(f"document.querySelectorAll('.widget-html table tr').length >= {step + 1}",
                                   timeout=60_000)
            cells = [c.strip() for c in log_rows.nth(step).inner_text().split("\t")]
            assert cells[0] == str(step - 1) and cells[2] == rating and cells[3] == "yes", cells
        assert page.get_by_text("Step 2 of 21").count() == 1
        shots.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(shots / "listener-panel-two-answers.png"))
        browser.close()
