"""The reproduction summary atop the introduction: its sentences from the other pages' numbers."""

from __future__ import annotations

import pandas as pd

NOT_RUN = "not run in this build"


def music_verdict(stored: list[dict] | None) -> str:
    """The thesis's last conclusion as the chapter "A stronger tagger" stored it (its verdicts for the
    greedy player, then the trained agent): the agent's verdict, or :data:`NOT_RUN`."""
    return stored[-1]["verdict"] if stored else NOT_RUN


def code_check_sentence(table: pd.DataFrame | None, thesis_budget: bool) -> str:
    """The code check's result in one sentence (``table``: :func:`musicrl.codecheck.check_table`, None
    where the build has none)."""
    if thesis_budget:
        return "this build is at the thesis's budgets, so its runs are the published ones"
    if table is None or table.empty:
        return f"the exact code check was {NOT_RUN}"
    exact = int((table["reproduced"] == "exactly").sum())
    said = (f"{exact} of {len(table)} experiments reproduce their published curves exactly over their first "
            f"{int(table['updates'].max()):,} updates ({int(table['seeds'].sum())} runs trained again)")
    if exact < len(table):
        first = table.loc[table["reproduced"] != "exactly"].iloc[0]
        said += f"; {first['experiment']} first differs at update {int(first['first differing update']):,}"
    return said
