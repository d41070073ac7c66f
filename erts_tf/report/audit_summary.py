"""Per-sample audit summary from ``audit.csv``: the records dropped as unreliable.

``audit.csv`` has one row per (epoch, sample) whose kept/dropped status
changed: ``epoch, sample_id, label, decision, reason, p_true, focus,
scored_epoch`` and then the dataset's extras (``corruption``, ``true_label``,
PTB-XL quality flags, ...). A row with ``decision == dropped`` and ``reason ==
low_focus`` is a drop by the Grad-CAM focus filter: the model was not
confident and its explanation was diffuse. Records that the filter drops again
and again are the ones a clinician should look at first (noise, electrode
problems, doubtful labels); with a dataset that records the corruption, the
summary also shows how often those drops hit a corrupted record compared with
drops for confidence.

Example:
  >>> audit = read_audit("runs/quick/audit.csv")
  >>> low_focus_records(audit, n_epochs=12).head()
"""

from __future__ import annotations

import numpy as np
import pandas as pd

BASE_COLUMNS = ("epoch", "sample_id", "label", "decision", "reason", "weight", "p_true", "focus", "scored_epoch",
                "focus_epoch", "score_forward")
UNRELIABLE = "low_focus"


def read_audit(path: str) -> pd.DataFrame:
    """``audit.csv`` as a DataFrame (``ValueError`` naming the file if a base column is missing)."""
    audit = pd.read_csv(path)
    missing = [c for c in BASE_COLUMNS if c not in audit.columns]
    if missing:
        raise ValueError(f"{path}: missing columns {missing}; expected {', '.join(BASE_COLUMNS)} first")
    return audit


def extra_columns(audit: pd.DataFrame) -> list[str]:
    """The dataset's extra columns (everything after the base columns)."""
    return [c for c in audit.columns if c not in BASE_COLUMNS]


def _dropped_epochs(rows: pd.DataFrame, n_epochs: int) -> int:
    """Epochs a sample spent dropped after its low-focus drops (until the next kept row or the run's end)."""
    rows = rows.sort_values("epoch")
    total = 0
    start = None
    for epoch, decision, reason in zip(rows["epoch"], rows["decision"], rows["reason"]):
        if decision == "dropped" and reason == UNRELIABLE and start is None:
            start = epoch
        elif decision == "kept" and start is not None:
            total += epoch - start
            start = None
    if start is not None:
        total += n_epochs - start
    return int(total)


def low_focus_records(audit: pd.DataFrame, n_epochs: int, top: int | None = 20) -> pd.DataFrame:
    """The records dropped as unreliable (``low_focus``) most often.

    Args:
      audit: ``read_audit`` output.
      n_epochs: epochs of the run (to count how long the last drop lasted).
      top: keep this many records (None: all).

    Returns:
      One row per sample id, most low-focus drops first (then most epochs
      dropped, then lowest mean focus): ``sample_id, label, low_focus_drops,
      epochs_dropped, first_epoch, last_epoch, mean_p_true, mean_focus`` and the
      extra columns (their value on the last low-focus row).
    """
    extras = extra_columns(audit)
    drops = audit[(audit["decision"] == "dropped") & (audit["reason"] == UNRELIABLE)]
    columns = ["sample_id", "label", "low_focus_drops", "epochs_dropped", "first_epoch", "last_epoch",
               "mean_p_true", "mean_focus", *extras]
    if drops.empty:
        return pd.DataFrame(columns=columns)
    grouped = drops.sort_values("epoch").groupby("sample_id")
    table = pd.DataFrame({
        "label": grouped["label"].last(),
        "low_focus_drops": grouped.size(),
        "first_epoch": grouped["epoch"].min(),
        "last_epoch": grouped["epoch"].max(),
        "mean_p_true": grouped["p_true"].mean(),
        "mean_focus": grouped["focus"].mean(),
        **{c: grouped[c].last() for c in extras},
    })
    by_sample = audit[audit["sample_id"].isin(table.index)].groupby("sample_id")
    table["epochs_dropped"] = by_sample.apply(lambda rows: _dropped_epochs(rows, n_epochs), include_groups=False)
    table = table.reset_index()[columns]
    table = table.sort_values(["low_focus_drops", "epochs_dropped", "mean_focus", "sample_id"],
                              ascending=[False, False, True, True], kind="stable")
    return table.head(top) if top else table


def extras_breakdown(audit: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """For each extra column with few values: its share among the distinct records in each drop reason.

    Columns of each table: the reasons of the dropped rows (``low_focus``,
    ``confident``, ...) and ``all audited`` (every record with a row); rows:
    the extra's values; cells: share of the distinct sample ids. Extras with more
    than 20 distinct values (continuous ones) are skipped.
    """
    result = {}
    dropped = audit[audit["decision"] == "dropped"]
    for column in extra_columns(audit):
        if audit[column].nunique() > 20:
            continue
        groups = {reason: rows.drop_duplicates("sample_id") for reason, rows in dropped.groupby("reason")}
        groups["all audited"] = audit.drop_duplicates("sample_id")
        shares = {name: rows[column].value_counts(normalize=True) for name, rows in groups.items()}
        counts = {name: len(rows) for name, rows in groups.items()}
        table = pd.DataFrame(shares).fillna(0.0)
        table.columns = [f"{name} (n={counts[name]})" for name in table.columns]
        result[column] = table.sort_index()
    return result


def markdown_table(frame: pd.DataFrame, floatfmt: str = ".3f", index: bool = False) -> str:
    """A GitHub-flavoured Markdown table of ``frame`` (no ``tabulate`` needed)."""
    frame = frame.reset_index() if index else frame

    def cell(value):
        if isinstance(value, (float, np.floating)):
            return format(float(value), floatfmt)
        return str(value)

    header = "| " + " | ".join(map(str, frame.columns)) + " |"
    rule = "|" + "|".join("---" for _ in frame.columns) + "|"
    rows = ["| " + " | ".join(cell(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join([header, rule, *rows])
