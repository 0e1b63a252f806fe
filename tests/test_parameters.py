"""Each chapter checks its papermill parameters in its first code cell."""

from pathlib import Path

import pytest

from musicrl import book, parameters

ROOT = Path(__file__).resolve().parent.parent


def _defaults(chapter: str) -> dict:
    notebook = book.read_chapter(chapter)
    cell = next(c for c in notebook.cells if "parameters" in c.metadata.get("tags", []))
    namespace: dict = {}
    exec(cell.source, namespace)
    return namespace


@pytest.mark.parametrize("chapter", book.CHAPTERS)
def test_every_chapter_checks_its_defaults_first(chapter):
    notebook = book.read_chapter(chapter)
    code = [c for c in notebook.cells if c.cell_type == "code"]
    assert f'parameters.check("{chapter}", globals())' in code[1].source  # right after the parameters cell
    namespace = _defaults(chapter)
    assert set(parameters.CHAPTER_PARAMETERS[chapter]) == {n for n in namespace if not n.startswith("_")}
    parameters.check(chapter, namespace)


@pytest.mark.parametrize("chapter, name, value, message", [
    ("environment", "target_seed", "abc", r"'target_seed' of the chapter 'environment' must be an integer >= 0, got 'abc' \(str\)"),
    ("environment", "profile", "fast", r"'profile' .* must be one of \['smoke', 'quick', 'full'\], got 'fast'"),
    ("environment", "workers", 0, r"-1 \(every core\) or an integer >= 1, got 0"),
    ("experiments_2d", "train_missing", "no", "True or False, got 'no'"),
    ("recommender", "noise", [0.2, 3], r"two probabilities \(p, q\)"),
    ("recommender", "layer", "fourth", "one of \\['second', 'third', 'last'\\]"),
    ("recommender", "agent", "fig24", "'agent' .* must be one of \\['fig25', 'fig25-gru'\\], got 'fig24'"),
])
def test_a_bad_parameter_is_named_with_what_is_accepted(chapter, name, value, message):
    namespace = {**_defaults(chapter), name: value}
    with pytest.raises(ValueError, match=message):
        parameters.check(chapter, namespace)


def test_papermill_with_a_wrongly_typed_parameter_stops_at_the_check(tmp_path):
    import papermill

    with pytest.raises(papermill.PapermillExecutionError, match="'target_seed' of the chapter 'environment' must be"):
        papermill.execute_notebook(book.read_chapter("environment"), str(tmp_path / "out.ipynb"),
                                   parameters={"target_seed": "abc", "profile": "smoke"}, kernel_name="python3",
                                   progress_bar=False, cwd=str(tmp_path))


def test_a_misspelt_parameter_is_rejected_with_the_accepted_names(tmp_path):
    import papermill

    with pytest.raises(papermill.PapermillExecutionError,
                       match="unknown parameter 'smothing' for the chapter 'conclusions'; accepted: profile, train_missing, smoothing"):
        papermill.execute_notebook(book.read_chapter("conclusions"), str(tmp_path / "out.ipynb"),
                                   parameters={"smothing": 0.9, "profile": "smoke"}, kernel_name="python3",
                                   progress_bar=False, cwd=str(tmp_path))
