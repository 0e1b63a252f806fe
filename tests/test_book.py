"""Build the whole book with the smoke profile in a scratch copy and check what it holds."""

import ast
import html as html_module
import io
import json
import re
import shutil
from pathlib import Path

import pytest

from musicrl import book, codecheck, profiles, registry, training
from musicrl.chapters import conclusions

ROOT = Path(__file__).resolve().parent.parent
MIN_FIGURES = {"environment": 3, "experiments_2d": 5, "higher_dimensions": 1, "music_features": 5, "recommender": 1, "beyond": 2, "conclusions": 0,
               "teaching": 1, "taggers": 2, "departures": 0, "intro": 0}


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("bookroot")
    shutil.copytree(ROOT / "notebooks", root / "notebooks")
    shutil.copytree(ROOT / "book", root / "book", ignore=shutil.ignore_patterns("*.ipynb"))
    for name in ("_config.yml", "_toc.yml", "references.bib"):
        shutil.copy(ROOT / name, root / name)
    shutil.copytree(ROOT / "_static", root / "_static")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MUSICRL_RESULTS", str(root / "results"))
        html = book.build(profile="smoke", root=root)
    return root, html


@pytest.mark.book
def test_every_chapter_is_executed_with_its_parameters_and_rendered_with_figures(built):
    root, html = built
    toc = (root / "_toc.yml").read_text()
    for chapter in book.CHAPTERS:
        assert f"book/{chapter}" in toc
        executed = json.loads((root / "book" / f"{chapter}.ipynb").read_text())
        assert executed["metadata"]["papermill"]["parameters"]["profile"] == "smoke"
        errors = [o for c in executed["cells"] for o in c.get("outputs", []) if o.get("output_type") == "error"]
        assert not errors
        page = (html / "book" / f"{chapter}.html").read_text()
        images = re.findall(r'<img[^>]+src="([^"]+)"', page)
        assert len(images) >= MIN_FIGURES[chapter]
        assert all((html / "book" / src).resolve().exists() for src in images)
    assert (html / "book" / "intro.html").exists() and (html / "book" / "rerun.html").exists()


@pytest.mark.book
def test_environment_chapter_glues_the_exact_2d_optimum_and_the_baselines_below_it(built):
    """The glued values the text quotes: the 2D optimum equals the exact planner's expected return
    (recomputed here), no baseline beats it, and the maxima are 21 steps of the best reward."""
    from musicrl import baselines, users
    from musicrl.envs import EnvConfig

    root, _ = built
    values = {k: float(v) for k, v in glued(root / "book" / "environment.ipynb").items() if k.startswith(("v2_", "max_"))}
    assert len([k for k in values if k.startswith("v2_")]) == 2 * 4 * len(users.PRESETS)  # rewards x policies x presets
    for preset in users.PRESETS:
        for reward in ("Bullseye", "Rating"):
            v = {p: values[f"v2_{preset}_{reward}_{p}"] for p in ("optimal", "greedy", "lookahead", "random")}
            exact = baselines.BayesPlanner(EnvConfig(d=2, preset=preset, reward=reward)).expected_return()
            assert v["optimal"] == pytest.approx(exact, abs=1e-9)
            assert v["optimal"] >= max(v["greedy"], v["lookahead"]) > v["random"] > 0
    assert values["max_bullseye"] == 21 * 10 and values["max_rating"] == 21 * 16
    assert not list((built[0] / "book").glob(".*partial*"))


@pytest.mark.book
def test_training_chapters_glue_the_metric_tables_their_runs_give(built, monkeypatch):
    """The metric tables the 2D and 3D/4D chapters glue equal the tables recomputed here from the
    build's runs; every CI holds its mean, no agent beats the optimum, and the 2D chapter's runs
    table has one row per experiment and seed."""
    import pandas as pd

    from musicrl.chapters import tables

    root, _ = built
    monkeypatch.setenv("MUSICRL_RESULTS", str(root / "results"))
    seeds = profiles.get("smoke").training.seeds
    for chapter, key in (("experiments_2d", "metrics"), ("higher_dimensions", "hd_metrics")):
        names = registry.CHAPTER_EXPERIMENTS[chapter]
        shown = pd.read_json(io.StringIO(ast.literal_eval(glued(root / "book" / f"{chapter}.ipynb")[key])), orient="records")
        runs = training.experiment_runs(names, "smoke", root / "results", progress=False, train_missing=False)
        expected = tables.metrics_table(runs, "smoke")
        pd.testing.assert_frame_equal(shown, expected[shown.columns], check_dtype=False)
        assert list(shown.experiment) == list(names) and (shown.seeds == len(seeds)).all()
        assert (shown["pooled low"] <= shown["pooled mean"]).all() and (shown["pooled mean"] <= shown["pooled high"]).all()
        exact = shown[shown.d == 2]
        assert (exact["pooled high"] <= exact["optimal"] + 1e-9).all() and (exact["optimal"] >= exact["greedy"]).all()
    values = glued(root / "book" / "experiments_2d.ipynb")
    assert int(values["n_runs"]) == len(registry.CHAPTER_EXPERIMENTS["experiments_2d"]) * len(seeds)
    assert ast.literal_eval(values["seeds"]) == str(len(seeds))


@pytest.mark.book
def test_the_trpo_section_counts_the_collapses_of_the_published_trpo_runs(built):
    from musicrl import stats

    values = glued(built[0] / "book" / "experiments_2d.ipynb")
    trpo = training.experiment_runs(["fig17", "fig20", "fig17-entropy", "fig20-entropy"], profiles.VERDICT, progress=False,
                                    train_missing=False)
    assert int(values["trpo_collapsed"]) == sum(stats.collapsed(r.curve, 0.99) for rs in trpo.values() for r in rs) > 0


@pytest.mark.book
def test_training_chapters_show_the_thesis_agents_and_train_no_stand_in(built):
    root, _ = built
    text = outputs_text(root / "book" / "experiments_2d.ipynb")
    seeds = len(profiles.get("smoke").training.seeds)
    for phrase in (f"multiseed ({seeds} seeds)", "Thesis figure 21 (A2C, BoardObs"):  # computed: the runs table, the claims
        assert phrase in text, phrase
    assert f"{registry.experiment('fig25').converged:,}" in outputs_text(root / "book" / "higher_dimensions.ipynb")
    finished = [p.parent.name for p in (root / "results" / "runs").glob("*/result.json")]
    checks = [n for n in finished if f"{codecheck.SUFFIX}-" in n]  # the exact code check's: every published seed
    thesis = [n for n in finished if n.startswith("fig") and "-catalogue-" not in n and n not in checks]
    assert len(thesis) == 2 * len(registry.EXPERIMENTS)  # the thesis's agents; the stand-ins are read, never trained
    assert sorted(checks) == sorted(check.key for check, _ in codecheck.check_specs("smoke"))
    catalogue = [n for n in finished if "-catalogue-" in n]
    assert len(catalogue) == 2 and all(n.startswith("fig25-gru-catalogue-") for n in catalogue)  # the recommender's agent


@pytest.mark.book
def test_beyond_chapter_measures_agents_against_the_filter_and_runs_past_four_features(built):
    from musicrl import beyond

    root, _ = built
    text = outputs_text(root / "book" / "beyond.ipynb")
    for phrase in ("LSTM-A2C BoardObs (fig16)", f"At d = 5 ({5 ** 5:,} positions)"):  # computed from the runs and d
        assert phrase in text, phrase
    assert "Traceback" not in text and "Not run yet under smoke" not in text  # the hidden code holds the phrase
    finished = {p.parent.name.rsplit("-s", 1)[0] for p in (root / "results" / "runs").glob("*/result.json")}
    assert {s.name for s in [*beyond.noise_specs("smoke"), *beyond.scaling_specs("smoke")]} <= finished


def test_unknown_profile_or_chapter_is_rejected():
    with pytest.raises(ValueError, match="unknown profile 'fast'; accepted: 'smoke', 'quick', 'full'"):
        book.build(profile="fast")
    with pytest.raises(ValueError, match="unknown chapter 'agents'"):
        book.execute_chapter("agents", "smoke")


def test_chains_cover_every_chapter_once_and_keep_the_music_chapter_first():
    assert sorted(name for chain in book.CHAINS for name in chain) == sorted(book.CHAPTERS)
    assert book.chains(("teaching", "environment", "music_features")) == [("music_features", "teaching"), ("environment",)]
    assert book.chains(("conclusions",)) == [("conclusions",)]
    assert book.chains(("intro", "conclusions", "taggers")) == [("taggers", "conclusions", "intro")]  # the summary reads both


def test_zero_jobs_is_rejected_before_any_chapter_runs(tmp_path):
    with pytest.raises(ValueError, match="jobs must be an integer >= 1"):
        book.execute_chapters(("environment",), "smoke", root=tmp_path, jobs=0)
    assert not (tmp_path / "book").exists()


def test_the_sweep_trains_the_thesis_agents_and_no_stand_in(monkeypatch):
    trained = []
    monkeypatch.setattr(book, "train_many", lambda specs, root, address=None: trained.extend(specs))
    book.train_for(("experiments_2d", "conclusions"), "smoke")
    checks = [s for s in trained if s.name.endswith(codecheck.SUFFIX)]  # the conclusions' exact code check
    trained = [s for s in trained if s not in checks]
    names = {s.name for s in trained}
    assert names == set(registry.thesis_agents(registry.EXPERIMENTS))
    assert {s.agent.algorithm for s in trained} == {"GRUA2C", "ACKTR", "A2C"}
    assert len(trained) == len(names) * len(profiles.get("smoke").training.seeds)
    assert {s.name.removesuffix(codecheck.SUFFIX) for s in checks} == names
    assert {s.updates for s in checks} == {profiles.get("smoke").book.code_check_updates}


def outputs_text(notebook_path: Path) -> str:
    """What a chapter's cells displayed or printed (never its source): HTML without its tags,
    Markdown without its emphasis, runs of spaces folded."""
    executed = json.loads(notebook_path.read_text())
    parts = []
    for cell in executed["cells"]:
        for output in cell.get("outputs", []):
            data = output.get("data", {})
            if "text/html" in data and "text/markdown" not in data:
                parts.append(html_module.unescape(re.sub(r"<[^>]+>", " ", "".join(data["text/html"]))))
                continue
            text = data.get("text/markdown") or data.get("text/plain") or output.get("text") or ""
            parts.append(("".join(text) if isinstance(text, list) else text).replace("**", ""))
    return re.sub(r"\s+", " ", " ".join(parts))


def literal(text: str | None):
    """A glued value's text as the Python value it shows (numpy scalars as plain numbers); a figure's
    or anything else's text as it is."""
    if text is None:
        return None
    try:
        return ast.literal_eval(re.sub(r"np\.(?:float|int)\d+\(([^)]*)\)", r"\1", text))
    except (ValueError, SyntaxError):
        return text


def glued(notebook_path: Path) -> dict[str, str]:
    """The values a chapter glued (myst_nb), as their text."""
    executed = json.loads(notebook_path.read_text())
    return {o["metadata"]["scrapbook"]["name"]: o["data"].get("application/papermill.record/text/plain")
            for c in executed["cells"] for o in c.get("outputs", []) if o.get("metadata", {}).get("scrapbook")}


@pytest.mark.book
def test_the_conclusions_count_the_verdicts_of_the_published_thesis_budget_runs(built):
    root, _ = built
    values = glued(root / "book" / "conclusions.ipynb")
    runs = training.experiment_runs(registry.VERDICT_RUNS, "full", progress=False, train_missing=False)
    expected = conclusions.claims_counts(conclusions.claims_table({n: rs for n, rs in runs.items() if rs}))
    assert {k: int(v) for k, v in values.items() if k in expected} == expected  # the smoke build judges the full runs
    assert expected["n_claims"] == expected["n_held"] + expected["n_not_held"] + expected["n_undecided"]


@pytest.mark.book
def test_music_chapter_glues_counts_and_scores_its_inputs_give(built):
    """The clip counts the text quotes equal the manifest's (all of it, and the smoke subset), every
    clip is either featurised or named as failed, and the shares and accuracies are shares."""
    from musicrl.music import features, gtzan_dir

    root, _ = built
    values = {k: literal(v) for k, v in glued(root / "book" / "music_features.ipynb").items()}
    music = profiles.get("smoke").music
    manifest = features.read_manifest(gtzan_dir())
    assert values["n_manifest"] == len(manifest)
    assert values["n_clips"] == len(features.subset(manifest, per_genre=music.per_genre, balanced=music.balanced_only))
    assert values["n_features"] + values["n_failed"] == values["n_clips"] and values["n_padded"] <= values["n_features"]
    assert 0 <= values["named_hits"] <= values["named_total"] and 0 <= values["held"] <= values["n_statements"]
    assert all(0 < values[k] <= 1 for k in values if k.startswith(("var4_", "acc4_")) or k in ("best_acc", "mfcc_acc"))
    assert "Traceback" not in outputs_text(root / "book" / "music_features.ipynb")


@pytest.mark.book
def test_recommender_chapter_has_table1_sessions_and_the_listener(built):
    root, html = built
    page = (html / "book" / "recommender.html").read_text()
    text = outputs_text(root / "book" / "recommender.ipynb")
    values = {k: literal(v) for k, v in glued(root / "book" / "recommender.ipynb").items()}
    assert -1 <= values["rho_feature"] <= 1 and 1 <= values["rating4_steps"] <= 21 and 1 <= values["distinct_plain"] <= 21
    assert page.count("<audio") >= 22 and "Traceback" not in text


@pytest.mark.book
def test_the_readme_partial_build_builds_the_pages_it_has(tmp_path):
    """`musicrl book --profile smoke --chapters environment`: the other chapters get a placeholder
    page that says how to build them, and the links into them (labels included) resolve."""
    import subprocess
    import sys

    shutil.copytree(ROOT / "notebooks", tmp_path / "notebooks")
    shutil.copytree(ROOT / "book", tmp_path / "book", ignore=shutil.ignore_patterns("*.ipynb"))
    for name in ("_config.yml", "_toc.yml", "references.bib"):
        shutil.copy(ROOT / name, tmp_path / name)
    if (ROOT / "_static").exists():
        shutil.copytree(ROOT / "_static", tmp_path / "_static")
    script = ("import sys; from pathlib import Path; from musicrl import book; "
              "book.build('smoke', ('environment',), root=Path(sys.argv[1]))")
    subprocess.run([sys.executable, "-c", script, str(tmp_path)], check=True, env={**__import__("os").environ,
                   "MUSICRL_RESULTS": str(tmp_path / "results")})
    page = (tmp_path / "_build" / "html" / "book" / "experiments_2d.html").read_text()
    text = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", "", page))
    assert "not executed in this build" in text and "musicrl book --chapters experiments_2d" in text
    assert 'id="fast-path"' in page  # the label rerun.md links to
    assert (tmp_path / "_build" / "html" / "book" / "environment.html").exists()


READER_DEFECTS = {
    "a raw Markdown table": re.compile(r"<p>\|[^<]*\|[^<]*\|"),
    "a build-machine path": re.compile(r"(/work/|/tmp/|/root/|/home/\w+/)"),
    "a nan cell": re.compile(r">\s*-?nan\s*<", re.I),
    "a -0.0": re.compile(r"(?<![\d.])-0\.0+(?!\d*[1-9])\b"),
    "a TensorFlow log line": re.compile(r"(I0000 |oneDNN custom operations|absl::InitializeLog|cpu_feature_guard)"),
}


@pytest.mark.book
def test_built_pages_have_no_raw_tables_machine_paths_nan_negative_zero_or_log_lines(built):
    _, html = built
    found = []
    for page in sorted((html / "book").glob("*.html")):
        text = re.sub(r"<script.*?</script>", "", page.read_text(), flags=re.S)
        found += [f"{page.name}: {label}: …{text[max(0, m.start() - 50):m.end() + 50]}…"
                  for label, pattern in READER_DEFECTS.items() for m in pattern.finditer(text)]
    assert not found, "\n".join(found[:20])


@pytest.mark.book
def test_every_chapter_has_exercises_whose_solutions_ran_and_render_collapsed(built):
    root, html = built
    for chapter in [c for c in book.CHAPTERS if c not in book.FRONT]:
        cells = json.loads((root / "book" / f"{chapter}.ipynb").read_text())["cells"]
        sources = ["".join(c["source"]) for c in cells]
        labels = re.findall(r"```\{exercise\}\n:label: ([\w-]+)", "\n".join(sources))
        assert 2 <= len(labels) <= 4, (chapter, labels)
        for label in labels:
            start = next(i for i, s in enumerate(sources) if s.startswith(f"````{{solution-start}} {label}"))
            end = next(i for i in range(start, len(cells)) if sources[i].startswith("````{solution-end}"))
            solution = [c for c in cells[start:end] if c["cell_type"] == "code"]
            assert solution and all(c["execution_count"] for c in solution), (chapter, label)
            assert all(c.get("outputs") for c in solution), (chapter, label)  # each shows its answer
        page = (html / "book" / f"{chapter}.html").read_text()
        for label in labels:
            assert re.search(rf'<div class="exercise admonition" id="{label}"', page), (chapter, label)
        assert len(re.findall(r'class="solution dropdown admonition[^"]*"', page)) == len(labels), chapter


@pytest.mark.book
def test_every_table_sits_in_a_container_that_scrolls(built):
    """Tables fit their column or scroll inside it: every table of a page is inside a
    notebook output (``div.cell_output``, which the book's stylesheet lets scroll) or the
    theme's scrollable table container, and every page links that stylesheet."""
    from html.parser import HTMLParser

    _, html = built
    css = (ROOT / "_static" / "musicrl.css").read_text()
    assert re.search(r"div\.cell_output[^{]*\{[^}]*overflow-x:\s*auto", css)

    class Tables(HTMLParser):
        def __init__(self):
            super().__init__()
            self.stack, self.loose = [], []

        def handle_starttag(self, tag, attrs):
            classes = (dict(attrs).get("class") or "").split()
            if tag == "table" and not any({"cell_output", "pst-scrollable-table-container"} & set(c) for c in self.stack):
                self.loose.append(self.getpos())
            if tag == "div":
                self.stack.append(classes)

        def handle_endtag(self, tag):
            if tag == "div" and self.stack:
                self.stack.pop()

    loose = []
    for page in sorted((html / "book").glob("*.html")):
        text = page.read_text()
        assert "_static/musicrl.css" in text, page.name
        parser = Tables()
        parser.feed(text)
        loose += [f"{page.name}: table at line {line}" for line, _ in parser.loose]
    assert not loose, loose


@pytest.mark.book
def test_teaching_page_pools_the_simulated_class_and_names_the_bad_files(built):
    root, _ = built
    text = outputs_text(root / "book" / "teaching.ipynb")
    for phrase in ("skipped <sessions>/notes.txt: not a saved session",  # computed: the pooling's own report
                   "skipped <sessions>/session-cut-off.json: not valid JSON, the file is damaged or cut off",
                   "pooled 24 sessions (the original folder: 24)"):
        assert phrase in text, phrase
    values = {k: literal(v) for k, v in glued(root / "book" / "teaching.ipynb").items()}
    assert values["class_sessions"] == 24 and 1 <= values["class_students"] <= 24


def test_a_chapter_kernel_runs_with_one_thread_and_leaves_the_environment_as_it_was(tmp_path, monkeypatch):
    import nbformat

    (tmp_path / "notebooks").mkdir()
    (tmp_path / "book").mkdir()
    cells = [nbformat.v4.new_code_cell("profile = 'smoke'", metadata={"tags": ["parameters"]}),
             nbformat.v4.new_code_cell("import os; print(os.environ['OMP_NUM_THREADS'], os.environ['MUSICRL_RESULTS'])")]
    notebook = nbformat.v4.new_notebook(cells=cells)
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    import jupytext

    jupytext.write(notebook, tmp_path / "notebooks" / "teaching.md", fmt="md:myst")
    monkeypatch.setenv("OMP_NUM_THREADS", "7")
    monkeypatch.delenv("MUSICRL_RESULTS", raising=False)
    out = book.execute_chapter("teaching", "smoke", root=tmp_path)
    printed = nbformat.read(out, as_version=4).cells[-1].outputs[0]["text"].split()
    assert printed == ["1", str(tmp_path / "results")]
    assert __import__("os").environ["OMP_NUM_THREADS"] == "7" and "MUSICRL_RESULTS" not in __import__("os").environ


def test_chapters_run_their_kernel_over_unix_sockets_without_the_tcp_warning(tmp_path, capfd):
    import nbformat
    import papermill

    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("print(6 * 7)")])
    nbformat.write(notebook, tmp_path / "in.ipynb")
    papermill.execute_notebook(str(tmp_path / "in.ipynb"), str(tmp_path / "out.ipynb"), kernel_name="python3",
                               progress_bar=False, kernel_manager_class=book.local_kernel_manager())
    assert nbformat.read(tmp_path / "out.ipynb", 4).cells[0].outputs[0]["text"] == "42\n"
    assert "TCP without encryption" not in capfd.readouterr().err
