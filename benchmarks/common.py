"""Helpers shared by the benchmarks: machine description, JSON output, tables, memory and CPU time.

Every benchmark script puts its own folder on ``sys.path`` and imports this
module as ``common``. Nothing here imports TensorFlow at module level, so a
``--help`` stays fast.
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import pathlib
import platform
import resource
import statistics
import threading
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

RESULTS_DIR = pathlib.Path(__file__).resolve().parent / "results"
REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
DEFAULT_WORK_DIR = os.path.join(os.environ.get("TMPDIR", "/tmp"), "erts_tf_benchmarks")
DEFAULT_MANUAL_DIR = str(REPO_ROOT.parent / "shared" / "data")


# -- machine -----------------------------------------------------------------------------------
def cpu_model() -> str:
    try:
        for line in pathlib.Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def total_memory_bytes() -> int | None:
    try:
        import psutil

        return int(psutil.virtual_memory().total)
    except ImportError:
        try:
            return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
        except (ValueError, OSError):
            return None


def machine() -> dict:
    """CPU model, cores, memory, Python/TF/Keras versions, GPUs, date and load average."""
    import keras
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    return {
        "date_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "cpus_available": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "memory_bytes": total_memory_bytes(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "gpus": [g.name for g in gpus],
        "tf_intra_op_threads": tf.config.threading.get_intra_op_parallelism_threads(),
        "tf_inter_op_threads": tf.config.threading.get_inter_op_parallelism_threads(),
        "loadavg": list(os.getloadavg()),
    }


# -- output ------------------------------------------------------------------------------------
def _jsonable(value):
    """Converts NumPy scalars/arrays and paths for ``json.dump``; NaN/inf become None."""
    try:
        import numpy as np
    except ImportError:  # pragma: no cover
        np = None
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if np is not None and isinstance(value, np.ndarray):
        return _jsonable(value.tolist())
    if np is not None and isinstance(value, np.generic):
        return _jsonable(value.item())
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, pathlib.Path):
        return str(value)
    return value


def write_json(path, payload: dict) -> pathlib.Path:
    """Writes ``payload`` (made JSON-safe) to ``path``, creating folders; returns the path."""
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(_jsonable(payload), indent=1) + "\n")
    os.replace(tmp, path)
    return path


def log_linear_fit(points, size_factor: float) -> dict | None:
    """Least-squares fit of ``value = a + b * ln(n)`` over ``points`` ``[(n, value), ...]`` (a learning curve over
    training-set sizes ``n``) and its value at ``size_factor`` times the largest ``n``; None with < 2 sizes."""
    import numpy as np

    points = sorted((float(n), float(v)) for n, v in points)
    if len({n for n, _ in points}) < 2:
        return None
    n, y = np.array(points).T
    slope, intercept = np.polyfit(np.log(n), y, 1)
    target = n.max() * size_factor
    return {"points": [{"n_train": int(a), "value": b} for a, b in points], "slope_per_ln_records": float(slope),
            "size_factor": size_factor, "extrapolated_n_train": int(target),
            "extrapolated_value": float(intercept + slope * np.log(target))}


def markdown_table(headers: list[str], rows: list[list], align: str | None = None) -> str:
    """A Markdown table; ``align`` one char per column (``l`` or ``r``; default: first l, rest r)."""
    align = align or "l" + "r" * (len(headers) - 1)
    cells = [[str(c) for c in row] for row in rows]
    lines = ["| " + " | ".join(headers) + " |",
             "|" + "|".join("---" if a == "l" else "---:" for a in align) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in cells]
    return "\n".join(lines)


def fmt(value, spec: str = ".3f", missing: str = "–") -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return missing
    return format(value, spec)


def fmt_ci(ci: dict | None, spec: str = ".3f") -> str:
    """``point [low, high]`` of a bootstrap interval dict."""
    if not ci or ci.get("point") is None:
        return "–"
    return f"{format(ci['point'], spec)} [{fmt(ci.get('low'), spec)}, {fmt(ci.get('high'), spec)}]"


# -- statistics --------------------------------------------------------------------------------
def spread(values) -> dict:
    """Median, quartiles, min, max and count of ``values``."""
    values = sorted(float(v) for v in values)
    if not values:
        return {"n": 0}
    q = statistics.quantiles(values, n=4, method="inclusive") if len(values) > 1 else [values[0]] * 3
    return {"n": len(values), "median": statistics.median(values), "p25": q[0], "p75": q[2],
            "min": values[0], "max": values[-1], "mean": statistics.fmean(values)}


# -- resources ---------------------------------------------------------------------------------
def cpu_seconds() -> float:
    """User + system CPU time of this process so far (all threads)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def max_rss_bytes() -> int:
    """Peak resident set size of this process since it started (``getrusage``; Linux reports KiB)."""
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024


def rss_bytes() -> int | None:
    try:
        import psutil

        return int(psutil.Process().memory_info().rss)
    except ImportError:
        try:
            with open("/proc/self/statm") as f:
                return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
        except OSError:
            return None


RSS_PARTS = ("RssAnon", "RssFile", "RssShmem")


def rss_part_key(part: str, what: str) -> str:
    """The result key of RSS part ``part`` (one of ``RSS_PARTS``) measured as ``what``: ``rss_anon_peak_bytes``."""
    return f"rss_{part[3:].lower()}_{what}_bytes"


def rss_parts() -> dict[str, int] | None:
    """This process's resident memory by kind (``/proc/self/status``, Linux): ``RssAnon`` (heap, what the
    process allocated), ``RssFile`` (pages of mapped files: libraries and memory-mapped data, which the kernel
    can drop and re-read) and ``RssShmem``, in bytes; None where the kernel does not report them."""
    try:
        with open("/proc/self/status") as f:
            fields = dict(line.split(":", 1) for line in f if line.startswith(RSS_PARTS))
    except OSError:
        return None
    if set(fields) != set(RSS_PARTS):
        return None
    return {k: int(v.split()[0]) * 1024 for k, v in fields.items()}  # reported in kB


class Meter:
    """Measures a block: wall time, process CPU time, RSS at start and peak RSS during it.

    Peak RSS is sampled every ``interval`` seconds by a background thread
    (psutil if installed, else /proc/self/statm); ``getrusage``'s lifetime
    peak is recorded too, and (where Linux reports them, ``rss_parts``) the
    peaks of its anonymous and file-backed parts, each sampled on its own.
    In one process that runs several measured blocks, memory the allocator
    kept from an earlier block counts in a later one: ``rss_start`` says how
    much was resident when the block began.
    """

    def __init__(self, interval: float = 0.05):
        self.interval = interval
        self.result: dict = {}

    def _sample_parts(self):
        parts = rss_parts()
        if parts is not None:
            for k, v in parts.items():
                self._part_peaks[k] = max(self._part_peaks.get(k, 0), v)

    def __enter__(self):
        self._stop = threading.Event()
        self._start_rss = rss_bytes()
        self._peak = self._start_rss or 0
        self._part_peaks: dict[str, int] = {}
        self._sample_parts()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        self._cpu = cpu_seconds()
        self._wall = time.perf_counter()
        self._load = os.getloadavg()
        return self

    def _sample(self):
        while not self._stop.wait(self.interval):
            current = rss_bytes()
            if current is not None and current > self._peak:
                self._peak = current
            self._sample_parts()

    def __exit__(self, *exc):
        wall = time.perf_counter() - self._wall
        cpu = cpu_seconds() - self._cpu
        self._stop.set()
        self._thread.join()
        end = rss_bytes()
        self._sample_parts()
        self.result = {
            "wall_s": wall,
            "cpu_s": cpu,
            "rss_start_bytes": self._start_rss,
            "rss_peak_bytes": max(self._peak, end or 0),
            "rss_end_bytes": end,
            "maxrss_lifetime_bytes": max_rss_bytes(),
            "loadavg_start": list(self._load),
            "loadavg_end": list(os.getloadavg()),
            **{rss_part_key(k, "peak"): v for k, v in self._part_peaks.items()},
        }
        return False


def mib(n) -> str:
    return "–" if n is None else f"{n / 2**20:.0f}"


# -- command line ------------------------------------------------------------------------------
def base_parser(description: str, name: str) -> argparse.ArgumentParser:
    """Arguments every benchmark takes: --smoke, --output, --work_dir, --data_dir, --manual_dir."""
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true",
                        help="a tiny version (synthetic_ecg/tiny, few epochs, 1 seed) that only checks it runs")
    parser.add_argument("--output", default=None,
                        help=f"JSON result path (default benchmarks/results/{name}.json, {name}_smoke.json with --smoke)")
    parser.add_argument("--work_dir", default=DEFAULT_WORK_DIR, help="scratch folder for run directories")
    parser.add_argument("--data_dir", default=None, help="TFDS data dir (default: TFDS's ~/tensorflow_datasets)")
    parser.add_argument("--manual_dir", default=DEFAULT_MANUAL_DIR, help="folder with the PhysioNet archives")
    return parser


def output_path(args, name: str, suffix: str = ".json") -> pathlib.Path:
    if args.output:
        path = pathlib.Path(args.output)
        return path if suffix == ".json" else path.with_suffix(suffix)
    return RESULTS_DIR / f"{name}{'_smoke' if args.smoke else ''}{suffix}"


def flagfile_config(argv: list[str]):
    """The ``RunConfig`` that ``python -m erts_tf.train`` would run for ``argv`` (flags and
    ``--flagfile=`` arguments, later ones winning), parsed with erts-tf's own flag definitions from
    the repository root (the shipped flagfiles name each other relative to it)."""
    from erts_tf import flags as erts_flags

    cwd = os.getcwd()
    os.chdir(REPO_ROOT)
    try:
        erts_flags.FLAGS.unparse_flags()
        erts_flags.FLAGS(["benchmark", *argv])
        return erts_flags.run_config()
    finally:
        erts_flags.FLAGS.unparse_flags()
        os.chdir(cwd)


def runs_dir(args, name: str) -> pathlib.Path:
    """The folder of a benchmark's per-run records (``--runs_dir``, default ``<output stem>_runs`` beside the
    output), created if missing."""
    stem = output_path(args, name).with_suffix("")
    path = pathlib.Path(args.runs_dir) if args.runs_dir else stem.parent / f"{stem.name}_runs"
    path.mkdir(parents=True, exist_ok=True)
    return path


def pyplot():
    """matplotlib's pyplot on the file-only Agg backend (benchmarks run without a display)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def measure_backbones(args, measure, line) -> tuple[list[dict], dict, float]:
    """``(rows, machine, started)``: ``measure(name, args)`` of each backbone of ``--backbones``
    (default every registered one), printing ``line(name, row)`` as each finishes; ``machine``
    and ``started`` (a ``perf_counter``) are taken before the first."""
    from erts_tf import models

    started = time.perf_counter()
    machine_before = machine()
    rows = []
    for name in args.backbones or models.names():
        rows.append(measure(name, args))
        print(line(name, rows[-1]), flush=True)
    return rows, machine_before, started


def save_figure(fig, path) -> pathlib.Path:
    """Lays ``fig`` out, writes it to ``path`` (110 dpi) and closes it; returns the path."""
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    pyplot().close(fig)
    return pathlib.Path(path)


def naming_records(result: dict, out: pathlib.Path, runs_dir: pathlib.Path, files: list[str], headlines) -> dict:
    """``result`` as a benchmark writes it to ``out``: each of its ``runs`` is named by its record's file in
    ``runs_dir`` (which already holds the whole record) and keeps only its ``headlines`` fields; ``runs_dir``
    is stored relative to ``out``'s folder. ``read_records`` reads the records back."""
    runs = [{"file": f, **{k: r[k] for k in headlines if k in r}} for f, r in zip(files, result["runs"], strict=True)]
    return {**result, "runs_dir": os.path.relpath(runs_dir, out.parent), "runs": runs}


def read_records(result: dict, path) -> list[dict]:
    """The whole records of the result written to ``path``: read from its runs folder when it names them
    (``naming_records``), or as held in results written before they were named."""
    folder = pathlib.Path(path).parent / result.get("runs_dir", "")
    return [json.loads((folder / r["file"]).read_text()) if "file" in r else r for r in result["runs"]]


def publish(args, name: str, result: dict, text: str, plot=None, written: dict | None = None) -> dict:
    """Prints a benchmark's ``text``, writes ``written`` (default ``result``) as JSON (and
    ``plot(result, png_path)`` beside it); returns ``result`` with the text under ``"table"``."""
    print(text)
    out = write_json(output_path(args, name), result if written is None else written)
    png = plot(result, output_path(args, name, ".png")) if plot else None
    print(f"wrote {out}" + (f" and {png}" if png else ""))
    result["table"] = text
    return result


def quiet_tensorflow() -> None:
    """Less log noise from TF/absl in benchmark output."""
    import logging

    logging.getLogger("tensorflow").setLevel(logging.ERROR)
    try:
        from absl import logging as absl_logging

        absl_logging.set_verbosity(absl_logging.ERROR)
    except ImportError:  # pragma: no cover
        pass
