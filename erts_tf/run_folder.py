"""The layout of a run folder (``--output_dir``): what a run writes there, and only that, and how to read it back.

A folder is an erts-tf run folder when it holds ``config.json``, ``progress.json``
or ``summary.json``. ``--overwrite`` removes only the entries listed here, never
anything else a user keeps in the folder. A training holds ``run.lock`` in the
folder while it runs (``lock``), so a second training into the same folder is
refused instead of writing over the first; evaluate, export and report hold it
too while they read the run and write beside it (``lock_existing``), so none of
them reads a model a training is rewriting, and no training starts under them.
Every command that reads a run (evaluate, report, export, benchmarks) reads it
through the loaders here:
``read_config``, ``read_summary``, ``read_eval``, ``load_model``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import fcntl
import glob
import json
import os
import shutil
import socket
import time

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
KEPT_FRACTION_PLOT = "kept_fraction.png"
COST_PLOT = "cost_vs_f1.png"
GRADCAM_PLOT = "gradcam_validation.png"
REPORT_PLOTS = (KEPT_FRACTION_PLOT, COST_PLOT, GRADCAM_PLOT)
LOCK = "run.lock"


def eval_name(split: str) -> str:
    """The file ``erts_tf.evaluate`` writes for ``split``: ``eval_<split>.json``."""
    return f"eval_{split}.json"


EVAL_GLOB = eval_name("*")

MARKERS = (CONFIG, PROGRESS, SUMMARY)
_TMP = ".tmp"  # suffix of a JSON file while write_json writes it
_FILES = (CONFIG, PROGRESS, SUMMARY, RESUMES, *(name + _TMP for name in (CONFIG, PROGRESS, SUMMARY, RESUMES)),
          AUDIT, BEST_WEIGHTS, MODEL, REPORT, *REPORT_PLOTS)
_FOLDERS = (LOGS, CHECKPOINTS, EXPORT)


class RunFolderError(Exception):
    """A folder does not hold the part of a run that a command needs (message is for the user)."""


class RunFolderBusy(Exception):
    """Another process holds the folder's ``run.lock`` (message is for the user)."""


def path(run_dir: str, *names: str) -> str:
    """``run_dir/names...``: ``path(out, SUMMARY)``, ``path(out, LOGS, "validation")``."""
    return os.path.join(run_dir, *names)


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


def write_json(run_dir: str, name: str, value) -> str:
    """Writes ``value`` as ``run_dir/name`` (JSON, indent 1) through a temporary file, so that a run
    stopped mid-write leaves the previous version intact; returns the path."""
    target = path(run_dir, name)
    with open(target + _TMP, "w") as f:
        json.dump(value, f, indent=1)
    os.replace(target + _TMP, target)
    return target


def read_json(run_dir: str, name: str):
    """The JSON value of ``run_dir/name``; None if the file does not exist."""
    source = path(run_dir, name)
    if not os.path.isfile(source):
        return None
    with open(source) as f:
        return json.load(f)


def read_config_json(run_dir: str) -> dict:
    """The run's settings as saved in ``config.json`` (``RunFolderError`` without the folder or the file)."""
    if not os.path.isdir(run_dir):
        raise RunFolderError(f"--run_dir={run_dir}: no such folder")
    saved = read_json(run_dir, CONFIG)
    if saved is None:
        raise RunFolderError(f"{path(run_dir, CONFIG)} does not exist: {run_dir} is not a run folder")
    return saved


def read_config(run_dir: str, data_dir: str | None = None):
    """The ``RunConfig`` of ``config.json``: keys it does not know are ignored; ``data_dir`` replaces the saved one."""
    from erts_tf.training.config import RunConfig

    saved = read_config_json(run_dir)
    known = {f.name for f in dataclasses.fields(RunConfig)}
    config = RunConfig(**{k: v for k, v in saved.items() if k in known})
    return dataclasses.replace(config, data_dir=data_dir) if data_dir else config


def read_summary(run_dir: str) -> dict | None:
    """``summary.json`` of a finished run; None while the run has not finished."""
    return read_json(run_dir, SUMMARY)


def read_eval(run_dir: str, split: str) -> dict | None:
    """``eval_<split>.json`` (``erts_tf.evaluate``'s result); None if the split was not evaluated."""
    return read_json(run_dir, eval_name(split))


def load_model(run_dir: str):
    """The backbone saved as ``model.keras`` (best validation weights): z-scored ``(batch, time, leads)`` -> logits
    ``(batch, n_classes)``. ``RunFolderError`` if the run did not finish."""
    source = path(run_dir, MODEL)
    if not os.path.isfile(source):
        raise RunFolderError(f"{source} does not exist: the run did not finish (no {MODEL})")
    import keras

    from erts_tf import models  # noqa: F401  (registers the custom layers of every backbone)

    return keras.models.load_model(source, compile=False)


@contextlib.contextmanager
def lock(run_dir: str, holder: str = "a training"):
    """Holds ``run_dir/run.lock`` while the block runs; ``RunFolderBusy`` if another process holds it.

    The lock is an exclusive ``flock`` on the file, which the kernel releases when its process ends,
    however it ends: a killed run leaves no lock behind. The file names the holder (``holder``, e.g.
    "a training", then pid, host and start time) for the error message and is removed on release.
    ``run_dir`` is created if missing, and removed again on release if the block left it empty.
    """
    created = not os.path.isdir(run_dir)
    os.makedirs(run_dir, exist_ok=True)
    lock_path = path(run_dir, LOCK)
    fd = _acquire(lock_path, run_dir)
    try:
        os.ftruncate(fd, 0)
        os.write(fd, f"{holder}, pid {os.getpid()} on {socket.gethostname()} since "
                     f"{time.strftime('%Y-%m-%dT%H:%M:%S%z')}\n".encode())
        yield
    finally:  # the folder may be gone by now (removed by hand); the block's own error is the one to raise
        with contextlib.suppress(FileNotFoundError):
            os.unlink(lock_path)  # while still holding it: a process that opened this file retries on a new one
        os.close(fd)
        if created and os.path.isdir(run_dir) and not os.listdir(run_dir):
            os.rmdir(run_dir)


@contextlib.contextmanager
def lock_existing(run_dirs: list[str], holder: str):
    """Holds the lock (``lock``) of each of ``run_dirs`` that exists, while a command reads the runs.

    ``RunFolderBusy`` if a training (or another reader) holds one. A folder that does not exist is left
    to the command's own error, not created. A folder where the lock file cannot be written (read-only
    files or filesystem) is read without the lock: no training can write there either.
    """
    with contextlib.ExitStack() as held:
        for run_dir in dict.fromkeys(os.path.realpath(d) for d in run_dirs):
            if not os.path.isdir(run_dir):
                continue
            try:
                held.enter_context(lock(run_dir, holder))
            except OSError as error:
                if error.errno not in (errno.EACCES, errno.EPERM, errno.EROFS):
                    raise
        yield


def _acquire(lock_path: str, run_dir: str) -> int:
    """An open descriptor of ``lock_path`` holding its exclusive lock. Retries when the file it locked was
    removed or replaced meanwhile (its holder released it), so two processes never hold different files."""
    while True:
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 200).decode(errors="replace").strip() or "a process that has not named itself yet"
            os.close(fd)
            raise RunFolderBusy(f"{run_dir} is in use by {holder}; wait for it to end") from None
        try:
            current = os.stat(lock_path).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            current = False
        if current:
            return fd
        os.close(fd)
