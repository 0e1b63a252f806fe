"""Screenshots of the built book at 1300 px in headless Chromium, and every table's width.

    .venv/bin/python scripts/screenshots.py [_build/html] [--out screenshots]

Writes one full-page PNG per chapter, one PNG of the first exercise with its collapsed
solution, and prints, for every table, its width against the width of its column and
whether its container scrolls (a table wider than its column must scroll, not be cut off).
Needs Chromium (``apt-get install chromium``) and playwright (a test dependency).
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

WIDTH = 1300
TABLES = """() => Array.from(document.querySelectorAll('article table')).map(t => {
  let box = t.parentElement;
  while (box && getComputedStyle(box).overflowX !== 'auto' && getComputedStyle(box).overflowX !== 'scroll'
         && box.tagName !== 'ARTICLE') box = box.parentElement;
  const article = document.querySelector('article');
  return {width: Math.round(t.getBoundingClientRect().width), column: Math.round(article.clientWidth),
          scrolls: !!box && box.tagName !== 'ARTICLE'};
})"""


def _browser(p):
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        raise SystemExit("no Chromium: apt-get install chromium")
    return p.chromium.launch(executable_path=chromium, headless=True, args=["--no-sandbox"])


def sections(html: Path, out: Path, wanted: list[str], suffix: str = "") -> None:
    """One PNG per ``chapter#section-id`` (the section as the reader sees it at 1300 px)."""
    from playwright.sync_api import sync_playwright

    out.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = _browser(p)
        page = browser.new_page(viewport={"width": WIDTH, "height": 1000})
        for item in wanted:
            chapter, _, section = item.partition("#")
            page.goto((html / "book" / f"{chapter}.html").as_uri())
            page.wait_for_load_state("load")
            target = out / f"{chapter}-{section}{suffix}.png"
            page.add_style_tag(content=".bd-header, .skip-link, .bd-header-article { position: static !important; }")
            page.evaluate("Promise.all(Array.from(document.images).map(i => { i.loading = 'eager'; return i.decode().catch(() => null); }))")
            page.wait_for_load_state("networkidle")
            box = page.evaluate(f"""() => {{ const r = document.querySelector('section#{section}').getBoundingClientRect();
                                             return {{y: r.top + window.scrollY, height: r.height}}; }}""")
            top = box["y"]
            page.screenshot(path=str(target), full_page=True,
                            clip={"x": 0, "y": top - 10, "width": WIDTH, "height": box["height"] + 20})
            print(f"{item}: {target}")
        browser.close()


def main() -> None:
    from playwright.sync_api import sync_playwright

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("html", nargs="?", default="_build/html")
    parser.add_argument("--out", default="screenshots")
    parser.add_argument("--sections", nargs="+", metavar="CHAPTER#SECTION-ID", default=None,
                        help="only these sections, one PNG each, e.g. conclusions#the-verdicts")
    parser.add_argument("--suffix", default="", help="appended to the section PNGs' names, e.g. -full")
    args = parser.parse_args()
    if args.sections:
        sections(Path(args.html).resolve(), Path(args.out), args.sections, args.suffix)
        return
    html, out = Path(args.html).resolve(), Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        raise SystemExit("no Chromium: apt-get install chromium")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, headless=True, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": WIDTH, "height": 1000})
        cut_off = 0
        for path in sorted((html / "book").glob("*.html")):
            page.goto(path.as_uri())
            page.wait_for_load_state("load")
            page.screenshot(path=str(out / f"{path.stem}.png"), full_page=True)
            for i, t in enumerate(page.evaluate(TABLES)):
                wide = t["width"] > t["column"]
                cut_off += wide and not t["scrolls"]
                if wide:
                    print(f"{path.stem}: table {i}: {t['width']} px in a {t['column']} px column, "
                          f"{'scrolls' if t['scrolls'] else 'CUT OFF'}")
            box = page.evaluate("""() => {
              const e = document.querySelector('div.exercise');
              if (!e) return null;
              const s = document.querySelector('div.solution') || e;
              const top = e.getBoundingClientRect().top + window.scrollY;
              return {top: top, bottom: s.getBoundingClientRect().bottom + window.scrollY};
            }""")
            if box:
                page.screenshot(path=str(out / f"{path.stem}-exercise.png"), full_page=True,
                                clip={"x": 0, "y": box["top"] - 10, "width": WIDTH, "height": box["bottom"] - box["top"] + 20})
        browser.close()
    print(f"screenshots in {out}; {cut_off} table(s) cut off")


if __name__ == "__main__":
    main()
