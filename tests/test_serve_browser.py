"""``musicrl serve`` in a real browser: a student joins in headless Chromium, hears the target and
the first clip (the audio elements load and play), answers until the session ends, and the
teacher's page shows the session in its table. Skipped where no Chromium is installed (CI
installs Debian's). The screenshots of the student's page and of the teacher's live table go
to ``$MUSICRL_SCREENSHOTS`` (default: the test's temporary folder); the page "Teaching with this book"
shows them from ``_static/``.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import pytest

from tests.test_browser import CHROMIUM
from tests.test_serve import free_port, start_server, stop

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(CHROMIUM is None, reason="no Chromium on this machine: apt-get install chromium (CI installs it)"),
]

PLAYS = """async (id) => {
  const audio = document.getElementById(id);
  audio.muted = true;
  await audio.play();
  const start = audio.currentTime;
  for (let i = 0; i < 100 && audio.currentTime <= start + 0.2; i++) await new Promise(r => setTimeout(r, 50));
  audio.pause();
  return {readyState: audio.readyState, currentTime: audio.currentTime, start};
}"""


def test_a_student_plays_a_session_in_chromium_and_the_teacher_sees_it(tmp_path):
    from playwright.sync_api import sync_playwright

    shots = Path(os.environ.get("MUSICRL_SCREENSHOTS", tmp_path))
    shots.mkdir(parents=True, exist_ok=True)
    port = free_port()
    process = start_server(tmp_path / "class", port)
    base = f"http://127.0.0.1:{port}"
    try:
        with sqlite3.connect(tmp_path / "class" / "class.sqlite3") as db:
            (token,) = db.execute("SELECT value FROM meta WHERE key = 'teacher_token'").fetchone()
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, headless=True,
                                        args=["--no-sandbox", "--autoplay-policy=no-user-gesture-required"])
            student = browser.new_page(viewport={"width": 420, "height": 900})
            student.goto(base)
            student.fill("#name", "Ada")
            student.click("button[type=submit]")
            student.wait_for_url(f"{base}/session")
            student.wait_for_function("document.getElementById('step').textContent.includes('Song 1 of 22')")
            for audio in ("target", "song"):
                heard = student.evaluate(PLAYS, audio)
                assert heard["readyState"] >= 2 and heard["currentTime"] > heard["start"], (audio, heard)
            assert student.locator("#closer-row").is_hidden()
            student.screenshot(path=str(shots / "serve-student-session.png"), full_page=True)
            for step in range(22):
                student.click(f"[data-rating='{(step + 2) % 5}']")
                if step:
                    student.click(f"[data-closer='{step % 2}']")
                student.click("#send")
                if step < 21:
                    student.wait_for_function(f"document.getElementById('step').textContent.includes('Song {step + 2} of 22')")
            student.wait_for_selector("#end:not([hidden])")
            assert student.locator("#end-table tr").count() == 23 and student.locator("#next").is_visible()
            teacher = browser.new_page(viewport={"width": 1300, "height": 1000})
            teacher.goto(f"{base}/teacher?token={token}")
            teacher.wait_for_selector("#table table")
            assert "finished 1" in teacher.inner_text("#counts") and "Ada" in teacher.inner_text("#students")
            assert teacher.locator("#table table").inner_text().count("\n") >= 1
            teacher.wait_for_function("document.getElementById('figure').complete && document.getElementById('figure').naturalWidth > 0")
            teacher.screenshot(path=str(shots / "serve-teacher-table.png"), full_page=True)
            browser.close()
    finally:
        stop(process)
