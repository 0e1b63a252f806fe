"""Build the book: papermill executes every chapter notebook, then Jupyter Book renders HTML.

Chapter sources live in ``notebooks/`` as MyST markdown (jupytext, ``notebooks/<name>.md``);
:func:`read_chapter` turns one into a notebook and papermill writes the executed copy into
``book/`` (atomically: a temporary file, then a rename), with the profile as a parameter.
Papermill records the parameters in each notebook's metadata and every chapter ends with a
table of the package versions. Jupyter Book runs with execution off and warnings as errors.
Before the chapters run, one Ray sweep trains (in parallel) every run the chapters need that
neither the results store nor the published results hold yet (under ``full``, only with
``train_missing=True``). The chapters then run in ``jobs`` processes at once (:data:`CHAINS`:
a chapter that reads what another computes runs after it, in the same process); their
notebooks do not depend on ``jobs``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from concurrent.futures import ProcessPoolExecutor, as_completed
from multiprocessing import get_context
from pathlib import Path
from typing import Any

from tqdm import tqdm

from musicrl import profiles
from musicrl.profiles import NAMES as PROFILES
from musicrl.registry import CHAPTER_EXPERIMENTS, run_specs
from musicrl.store import results_root
from musicrl.training import train_many
from musicrl.users import check_choice

ROOT = Path(__file__).resolve().parent.parent
CHAPTERS = ("environment", "experiments_2d", "higher_dimensions", "music_features", "recommender", "beyond", "taggers",
            "conclusions", "departures", "teaching", "intro")
FRONT = ("intro",)  # executed like a chapter (its summary is computed), without a chapter's exercises


def local_kernel_manager() -> type:
    """A kernel manager whose kernel talks over Unix sockets in the temporary folder instead of TCP
    on 127.0.0.1: nothing listens on the network, and ipykernel no longer warns twice per chapter
    that its TCP transport is unencrypted."""
    import tempfile
    import uuid

    from jupyter_client.manager import AsyncKernelManager

    class LocalKernelManager(AsyncKernelManager):
        def __init__(self, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self.transport = "ipc"
            self.ip = os.path.join(tempfile.gettempdir(), f"musicrl-kernel-{uuid.uuid4().hex[:12]}")

    return LocalKernelManager


# The kernel's torch and BLAS: one thread. Two chapters run at once, and a kernel with a thread
# per core on a busy machine ran its small networks ten times slower (63 s against 6 s).
ONE_THREAD = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}


def chapter_source(name: str, root: Path = ROOT) -> Path:
    """The MyST markdown source of chapter ``name``."""
    check_choice("chapter", name, CHAPTERS)
    return root / "notebooks" / f"{name}.md"


def read_chapter(name: str, root: Path = ROOT):
    """Chapter ``name`` as an ``nbformat`` notebook, read from its MyST source with jupytext."""
    import jupytext

    return jupytext.read(chapter_source(name, root))


def execute_chapter(name: str, profile: str, root: Path = ROOT, parameters: dict | None = None) -> Path:
    """Run chapter ``name`` (``notebooks/<name>.md``) with papermill into ``book/<name>.ipynb``."""
    import papermill

    check_choice("chapter", name, CHAPTERS)
    check_choice("profile", profile, PROFILES)
    source, output = read_chapter(name, root), root / "book" / f"{name}.ipynb"
    partial = output.with_name(f".{name}.partial.ipynb")
    env_before = {var: os.environ.get(var) for var in ("MUSICRL_RESULTS", *ONE_THREAD)}
    os.environ.setdefault("MUSICRL_RESULTS", str(results_root() if root == ROOT else root / "results"))
    os.environ.update(ONE_THREAD)
    try:
        papermill.execute_notebook(
            source,
            str(partial),
            parameters={"profile": profile, **(parameters or {})},
            cwd=str(root / "book"),
            kernel_name="python3",
            progress_bar=False,
            kernel_manager_class=local_kernel_manager(),
        )
        _one_parameters_cell(partial)
        os.replace(partial, output)
    finally:
        for var, value in env_before.items():
            if value is None:
                os.environ.pop(var, None)
            else:
                os.environ[var] = value
        if partial.exists():
            partial.unlink()
    return output


PLACEHOLDER = "musicrl_placeholder"


def write_placeholder(name: str, root: Path = ROOT) -> Path:
    """``book/<name>.ipynb`` for a chapter this build does not execute: its title, the labels other
    pages link to (each with its heading), and the command that builds it."""
    import nbformat

    source = read_chapter(name, root)
    lines = [line for cell in source.cells if cell.cell_type == "markdown" for line in cell.source.splitlines()]
    title = next((line for line in lines if line.startswith("# ")), f"# {name}")
    text = [title, "", f"This chapter was not executed in this build. Build it with "
            f"`.venv/bin/musicrl book --chapters {name}` (or `make book` for every chapter).", ""]
    for i, line in enumerate(lines):
        if line.strip().startswith("(") and line.strip().endswith(")="):
            heading = next((h for h in lines[i + 1:] if h.startswith("#")), "## Section")
            text += [line.strip(), "## " + heading.lstrip("#").strip(), ""]
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("\n".join(text))])
    notebook.metadata[PLACEHOLDER] = True
    notebook.metadata["kernelspec"] = source.metadata.get("kernelspec", {"name": "python3", "display_name": "Python 3"})
    path = root / "book" / f"{name}.ipynb"
    nbformat.write(notebook, path)
    return path


def _one_parameters_cell(path: Path) -> None:
    """Show one parameters cell: the chapter's own, with the values papermill injected written into
    it (marked), and papermill's injected cell removed from the page (kept in the notebook)."""
    import re

    import nbformat

    notebook = nbformat.read(path, as_version=4)
    injected = next((c for c in notebook.cells if "injected-parameters" in c.metadata.get("tags", [])), None)
    own = next((c for c in notebook.cells if "parameters" in c.metadata.get("tags", [])), None)
    if injected is None or own is None:
        return
    values = {m.group(1): m.group(2) for m in re.finditer(r"^(\w+) = (.*)$", injected.source, flags=re.M)}
    lines = []
    for line in own.source.splitlines():
        match = re.match(r"^(\w+) = ", line)
        if match and match.group(1) in values:
            line = f"{match.group(1)} = {values[match.group(1)]}  # set for this build (papermill)"
        lines.append(line)
    own.source = "\n".join(lines)
    injected.metadata.setdefault("tags", []).append("remove-cell")
    nbformat.write(notebook, path)


def build_html(root: Path = ROOT) -> Path:
    """Render the executed notebooks and pages to ``_build/html`` (warnings are errors)."""
    jupyter_book = Path(sys.executable).parent / "jupyter-book"
    command = [str(jupyter_book), "build", str(root), "--warningiserror", "--keep-going", "--quiet"]
    subprocess.run(command, check=True, cwd=root)
    return root / "_build" / "html"


RL_CHAPTERS = ("experiments_2d", "higher_dimensions", "conclusions")  # trained in one sweep before the chapters run
TRAINING_CHAPTERS = (*RL_CHAPTERS, "beyond")  # their notebooks take train_missing
# Chapters that must run one after the other: the recommender, the teaching page and "A stronger
# tagger" read the features and the catalogue the music chapter extracts (running them at once
# would extract twice), and the conclusions show the verdict "A stronger tagger" stores.
# Longest first, so that a pool of two processes finishes the chains at about the same time.
CHAINS = (("music_features", "recommender", "teaching", "taggers", "conclusions", "intro"), ("environment",), ("beyond",),
          ("experiments_2d",), ("higher_dimensions",), ("departures",))


def train_for(chapters: tuple[str, ...], profile: str, root: Path = ROOT, address: str | None = None) -> None:
    """Train every run the chosen chapters need, all in one parallel sweep (cached runs are read)."""
    from musicrl import beyond, codecheck

    names = sorted({name for chapter in chapters if chapter in RL_CHAPTERS for name in CHAPTER_EXPERIMENTS[chapter]})
    specs = run_specs(names, profile)
    if "beyond" in chapters:
        specs += [*beyond.noise_specs(profile), *beyond.scaling_specs(profile)]
    if "conclusions" in chapters:
        specs += [check for check, _ in codecheck.check_specs(profile)]
    if specs:
        train_many(specs, root=results_root() if root == ROOT else root / "results", address=address)


def chains(chapters: tuple[str, ...]) -> list[tuple[str, ...]]:
    """The chosen chapters as :data:`CHAINS` (each in its order), longest chain first."""
    picked = [tuple(name for name in chain if name in chapters) for chain in CHAINS]
    return [chain for chain in picked if chain]


def chapter_parameters(chapters: tuple[str, ...], given: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Each chapter's share of ``given`` (``musicrl book -p NAME VALUE``): the names it accepts.
    A name none of ``chapters`` accepts, or a value one rejects, raises ``ValueError`` before any work."""
    from musicrl import parameters

    shares: dict[str, dict[str, Any]] = {}
    for name in chapters:
        accepted = parameters.CHAPTER_PARAMETERS[name]
        shares[name] = {k: v for k, v in given.items() if k in accepted}
        for key, value in shares[name].items():
            rule, description = parameters.RULES[key]
            if not rule(value):
                raise ValueError(f"parameter {key!r} of the chapter {name!r} must be {description}, got {value!r}")
    orphans = sorted(set(given) - {k for share in shares.values() for k in share})
    if orphans:
        raise ValueError(f"no chosen chapter takes the parameter{'s' if len(orphans) > 1 else ''} {', '.join(map(repr, orphans))}; "
                         + "; ".join(f"{name}: {', '.join(parameters.CHAPTER_PARAMETERS[name])}" for name in chapters))
    return shares


def _run_chain(chain: tuple[str, ...], profile: str, root: Path, train_missing: bool,
               given: dict[str, dict[str, Any]] | None = None) -> tuple[str, ...]:
    for name in chain:
        chosen = {"train_missing": train_missing} if name in TRAINING_CHAPTERS else {}
        execute_chapter(name, profile, root, {**chosen, **(given or {}).get(name, {})})
    return chain


def execute_chapters(chapters: tuple[str, ...], profile: str, root: Path = ROOT, train_missing: bool = True,
                     jobs: int = 1, parameters: dict[str, Any] | None = None) -> None:
    """Execute ``chapters``: one after the other with ``jobs=1``, else their :func:`chains` in
    ``jobs`` processes at once. A chapter that fails stops the build with its error once the
    chapters already running have finished."""
    if jobs < 1:
        raise ValueError(f"jobs must be an integer >= 1 (processes running chapters at once), got {jobs!r}")
    given = chapter_parameters(chapters, parameters or {})
    bar = tqdm(total=len(chapters), desc=f"chapters ({profile})")
    if jobs == 1:
        for name in chapters:
            _run_chain((name,), profile, root, train_missing, given)
            bar.update()
        bar.close()
        return
    # spawn: a forked copy of this process (Ray, tqdm's lock, open kernels) is not safe to reuse
    with ProcessPoolExecutor(max_workers=jobs, mp_context=get_context("spawn")) as pool:
        futures = [pool.submit(_run_chain, chain, profile, root, train_missing, given) for chain in chains(chapters)]
        try:
            for future in as_completed(futures):
                bar.update(len(future.result()))
        except BaseException:
            for future in futures:
                future.cancel()
            raise
        finally:
            bar.close()


def build(profile: str = "quick", chapters: tuple[str, ...] = CHAPTERS, html: bool = True, root: Path = ROOT,
          train_missing: bool | None = None, jobs: int | None = None, parameters: dict[str, Any] | None = None) -> Path:
    """Execute the chapters and render the book.

    ``train_missing`` (default: yes, except under ``full``) trains the runs the RL chapters
    need that neither the local store nor the published results hold; without it they
    show what is there and list the rest. The recommender's 4D agent plays at the
    ``full`` budget under ``full`` only if its weights are published, else at ``quick``
    (see :func:`musicrl.publish.playable_profile`). ``jobs`` chapters run at once
    (default: one per core, at most two: the chapters themselves use several cores at times).
    """
    check_choice("profile", profile, PROFILES)
    for name in chapters:
        check_choice("chapter", name, CHAPTERS)
    train_missing = profiles.get(profile).book.train_missing if train_missing is None else train_missing
    jobs = min(2, os.cpu_count() or 1) if jobs is None else jobs
    chapter_parameters(chapters, parameters or {})  # a bad -p stops the build before the sweep
    if train_missing:
        train_for(chapters, profile, root)
    execute_chapters(chapters, profile, root, train_missing, jobs, parameters)
    return render(root) if html else root / "book"


def render(root: Path = ROOT) -> Path:
    """Render the book from the executed notebooks in ``book/`` as they are (``musicrl book
    --render-only``: e.g. after papermill wrote one); a chapter not executed yet gets a page
    that says how to build it."""
    for name in CHAPTERS:
        if not (root / "book" / f"{name}.ipynb").exists():
            write_placeholder(name, root)
    return build_html(root)
