"""Every value an executed book shows, as JSON: each chapter's glued values and its cells' text outputs.

Two builds compare with `diff` (a refactoring must leave them identical):

    .venv/bin/python scripts/book_values.py book > before.json
"""
from __future__ import annotations

import json
import re
import sys
from pathlib import Path

VOLATILE = re.compile(r"\d+(\.\d+)? ?(s|min|it/s|s/it)\b|\d\d:\d\d|/tmp/\S+|T_[0-9a-f]{5}")  # timings, progress bars, temp paths, table ids
# embedded audio: an Ogg stream's serial number (and so its CRCs) is drawn anew at every encoding
AUDIO = re.compile(r"data:audio/[^,]*,[A-Za-z0-9+/=]+")
WALL = re.compile(r"\d{8}T\d{6}")  # a saved session's timestamp in its file name


def chapter_values(path: Path) -> dict[str, object]:
    """One executed notebook's glued values (name -> text) and its cells' text outputs, in order."""
    cells = json.loads(path.read_text())["cells"]
    glued, shown = {}, []
    for cell in cells:
        for output in cell.get("outputs", []):
            data = output.get("data", {})
            scrap = output.get("metadata", {}).get("scrapbook")
            if scrap:
                glued[scrap["name"]] = data.get("application/papermill.record/text/plain")
                continue
            text = data.get("text/markdown") or data.get("text/html") or data.get("text/plain") or output.get("text")
            if text and output.get("name") != "stderr":
                text = "".join(text) if isinstance(text, list) else text
                shown.append(VOLATILE.sub("#", WALL.sub("#", AUDIO.sub("data:audio", text))))
    return {"glued": glued, "shown": shown}


def main(folder: str) -> None:
    values = {p.stem: chapter_values(p) for p in sorted(Path(folder).glob("*.ipynb"))}
    json.dump(values, sys.stdout, indent=1, sort_keys=True)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "book")
