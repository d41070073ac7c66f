"""Reading one PhysioNet record: WFDB (via ``wfdb``) and MATLAB v4 (via ``scipy.io.loadmat``).

:func:`read_header`, :func:`read_wfdb` and :func:`read_mat` turn bad input
(missing or truncated files, header/signal length mismatch, unreadable files)
into :class:`RecordError`, which the builders skip and count;
:func:`check_signal` rejects NaN and flat signals; :func:`order_leads` checks
and reorders leads by name.
"""

from __future__ import annotations

import math
import pathlib
from collections.abc import Sequence

import numpy as np


class RecordError(ValueError):
    """One record cannot be used (bad or missing file); builders skip and count it."""


# Bytes per sample of the WFDB storage formats (packed formats are fractional).
_BYTES_PER_SAMPLE = {"8": 1, "16": 2, "24": 3, "32": 4, "61": 2, "80": 1, "160": 2, "212": 1.5, "310": 4 / 3, "311": 4 / 3}


def _check_signal_files(record_path: pathlib.Path, header) -> None:
    """Missing, truncated or over-long signal files (size against the header's declaration)."""
    if not header.file_name or not header.sig_len:
        return
    by_file: dict[str, list[int]] = {}
    for index, file_name in enumerate(header.file_name):
        by_file.setdefault(file_name, []).append(index)
    for file_name, channels in by_file.items():
        path = record_path.parent / file_name
        if not path.is_file():
            raise RecordError(f"missing signal file {path} (named in {record_path.name}.hea)")
        fmt = str(header.fmt[channels[0]])
        bps = _BYTES_PER_SAMPLE.get(fmt)
        if bps is None:
            continue
        offset = int((header.byte_offset or [0] * header.n_sig)[channels[0]] or 0)
        frames = sum(int((header.samps_per_frame or [1] * header.n_sig)[c] or 1) for c in channels)
        expected = offset + math.ceil(frames * header.sig_len * bps)
        actual = path.stat().st_size
        slack = 0 if float(bps).is_integer() else 4
        if actual < expected:
            raise RecordError(
                f"truncated signal file {path}: {record_path.name}.hea declares {header.sig_len} samples x "
                f"{len(channels)} signals in format {fmt} ({expected} bytes), the file has {actual} bytes"
            )
        if actual > expected + slack:
            raise RecordError(
                f"header/signal length mismatch: {path} has {actual} bytes, {record_path.name}.hea declares "
                f"{header.sig_len} samples x {len(channels)} signals in format {fmt} ({expected} bytes)"
            )


def read_header(record_path: pathlib.Path):
    """``wfdb.rdheader`` of ``<record_path>.hea`` with :class:`RecordError` on a missing/unreadable header."""
    import wfdb

    hea = record_path.parent / (record_path.name + ".hea")
    if not hea.is_file():
        raise RecordError(f"missing header {hea}")
    try:
        return wfdb.rdheader(str(record_path))
    except Exception as err:  # wfdb raises many types on malformed headers
        raise RecordError(f"unreadable header {hea}: {type(err).__name__}: {err}") from err


def read_wfdb(record_path: pathlib.Path) -> tuple[np.ndarray, object]:
    """Reads a WFDB record with ``wfdb``: ``(signal float32 (time, leads) in physical units, record)``.

    The header is parsed once (``wfdb.rdrecord``); only when reading fails is
    it parsed again to say which file is missing or truncated.
    """
    import wfdb

    hea = record_path.parent / (record_path.name + ".hea")
    if not hea.is_file():
        raise RecordError(f"missing header {hea}")
    try:
        record = wfdb.rdrecord(str(record_path))
    except Exception as err:  # wfdb raises ValueError, IndexError, FileNotFoundError...
        header = read_header(record_path)
        _check_signal_files(record_path, header)
        raise RecordError(f"unreadable record {record_path}: {type(err).__name__}: {err}") from err
    _check_signal_files(record_path, record)
    if record.p_signal is None:
        raise RecordError(f"record {record_path} has no signal")
    return record.p_signal.astype(np.float32), record


def read_mat(mat_path: pathlib.Path, variable: str = "val") -> np.ndarray:
    """The 2-D matrix ``variable`` of a MATLAB (v4) file, read with ``scipy.io.loadmat``."""
    import scipy.io

    if not mat_path.is_file():
        raise RecordError(f"missing signal file {mat_path}")
    try:
        content = scipy.io.loadmat(str(mat_path))
    except Exception as err:  # scipy raises ValueError, TypeError, OSError... on bad files
        raise RecordError(f"unreadable MATLAB file {mat_path}: {type(err).__name__}: {err}") from err
    if variable not in content:
        found = ", ".join(k for k in content if not k.startswith("__")) or "none"
        raise RecordError(f"MATLAB file {mat_path} has no variable {variable!r} (variables: {found})")
    matrix = np.asarray(content[variable])
    if matrix.ndim != 2 or matrix.size == 0:
        raise RecordError(f"MATLAB file {mat_path}: {variable!r} has shape {matrix.shape}, expected a 2-D matrix")
    return matrix



def read_mat_signal(mat_path: pathlib.Path, header, record: str) -> np.ndarray:
    """The ``(time, leads)`` float32 signal, in the header's units, of a record stored as a MATLAB ``val``.

    The Challenge layout: ``header`` (``wfdb.rdheader`` of ``<record>.hea``)
    describes the leads x samples matrix of ``mat_path``; each lead becomes
    ``(value - baseline) / gain``.
    """
    matrix = read_mat(mat_path)
    if matrix.shape != (header.n_sig, header.sig_len):
        raise RecordError(
            f"header/signal length mismatch: {record}.hea declares {header.n_sig} leads x {header.sig_len} "
            f"samples, {mat_path.name} holds {matrix.shape[0]} x {matrix.shape[1]}"
        )
    gain = np.asarray(header.adc_gain, dtype=np.float64)
    if np.any(gain <= 0):
        raise RecordError(f"{record}.hea has a non-positive ADC gain: {header.adc_gain}")
    baseline = np.asarray(header.baseline, dtype=np.float64)
    return ((matrix.astype(np.float64) - baseline[:, None]) / gain[:, None]).T.astype(np.float32)


def check_units(units: Sequence[str], expected: str, record: str) -> None:
    """Leads whose header declares physical units other than ``expected`` -> :class:`RecordError`."""
    other = sorted({str(u) for u in units} - {expected})
    if other:
        raise RecordError(f"record {record}: leads in {', '.join(other)}, expected {expected}")

def check_signal(signal: np.ndarray, record: str) -> None:
    """NaN/inf samples or a completely flat record (every lead constant) -> :class:`RecordError`."""
    bad = int(np.size(signal) - np.count_nonzero(np.isfinite(signal)))
    if bad:
        raise RecordError(f"record {record}: {bad} NaN/inf samples (missing-value samples in the signal file)")
    if signal.shape[0] == 0:
        raise RecordError(f"record {record}: empty signal")
    if np.all(np.ptp(signal, axis=0) == 0):
        raise RecordError(f"record {record}: constant signal (every lead flat)")


def order_leads(signal: np.ndarray, names: Sequence[str], wanted: Sequence[str], record: str) -> np.ndarray:
    """Columns of ``signal`` in the order of ``wanted`` (lead names, case-insensitive)."""
    index = {str(n).strip().upper(): i for i, n in enumerate(names)}
    if signal.shape[1] != len(names):
        raise RecordError(f"record {record}: {signal.shape[1]} signal columns but {len(names)} lead names")
    missing = [w for w in wanted if w.upper() not in index]
    if missing or len(names) != len(wanted):
        raise RecordError(
            f"record {record}: wrong leads: expected {len(wanted)} leads {', '.join(wanted)}, found {len(names)} "
            f"leads {', '.join(map(str, names))}"
        )
    return signal[:, [index[w.upper()] for w in wanted]]

