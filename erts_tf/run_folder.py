"""The layout of a run folder (``--output_dir``): what a run writes there, and only that.

A folder is an erts-tf run folder when it holds ``config.json``, ``progress.json``
or ``summary.json``. ``--overwrite`` removes only the entries listed here, never
anything else a user keeps in the folder.
"""

from __future__ import annotations

import glob
import os
import shutil

CONFIG = "config.json"
PROGRESS = "progress.json"
SUMMARY = "summary.json"
RESUMES = "resumes.json"
AUDIT = "audit.csv"
BEST_WEIGHTS = "best.weights.h5"
MODEL = "model.keras"
LOGS = "logs"
CHECKPOINTS = "checkpoints"
EXPORT = "export"
REPORT = "report.md"
REPORT_PLOTS = ("kept_fraction.png", "cost_vs_f1.png", "gradcam_validation.png")
EVAL_GLOB = "eval_*.json"

MARKERS = (CONFIG, PROGRESS, SUMMARY)
_FILES = (CONFIG, PROGRESS, PROGRESS + ".tmp", SUMMARY, RESUMES, AUDIT, BEST_WEIGHTS, MODEL, REPORT, *REPORT_PLOTS)
_FOLDERS = (LOGS, CHECKPOINTS, EXPORT)


def path(run_dir: str, name: str) -> str:
    return os.path.join(run_dir, name)


def is_run_folder(run_dir: str) -> bool:
    """Whether ``run_dir`` holds a marker file of an erts-tf run."""
    return any(os.path.isfile(path(run_dir, m)) for m in MARKERS)


def run_outputs(run_dir: str) -> list[str]:
    """The paths in ``run_dir`` that a run writes and that exist now."""
    names = [*_FILES, *_FOLDERS, *(os.path.basename(p) for p in glob.glob(path(run_dir, EVAL_GLOB)))]
    return [path(run_dir, n) for n in names if os.path.lexists(path(run_dir, n))]


def remove_run_outputs(run_dir: str) -> list[str]:
    """Removes what a run wrote into ``run_dir`` (nothing else); returns the removed paths.

    Raises ``ValueError`` if ``run_dir`` is not an erts-tf run folder.
    """
    if not is_run_folder(run_dir):
        raise ValueError(f"{run_dir} is not an erts-tf run folder (no {', '.join(MARKERS)}); refusing to remove anything")
    removed = run_outputs(run_dir)
    for p in removed:
        if os.path.isdir(p) and not os.path.islink(p):
            shutil.rmtree(p)
        else:
            os.remove(p)
    return removed
