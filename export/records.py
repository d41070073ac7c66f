"""ECG records from files, and what turns one into a model's input.

Two layouts, both with a WFDB header (``<record>.hea``) that gives the
sampling rate, the lead names and, per lead, gain and baseline:

* WFDB signal files (``.dat`` ...), read with ``wfdb`` (``readers.read_wfdb``);
* the MATLAB v4 files of the PhysioNet/CinC challenges (the header names
  ``<record>.mat``), read with ``scipy.io.loadmat`` (``readers.read_mat``)
  and converted to physical units as ``(value - baseline) / gain`` per lead.

``conform`` maps the leads by name (case-insensitive), replaces NaN/inf by 0
(what the model does itself, done first so that resampling does not spread
them), resamples with ``scipy.signal.resample_poly`` and crops or zero-pads
to the model's length (``features.fix_length``, the builders' rule).
Problems raise ``PredictError`` with a message that names the file, the
leads or the rates.
"""

from __future__ import annotations

import dataclasses
import fractions
import pathlib

import numpy as np

from erts_tf.data.physionet import features, readers
from export.errors import PredictError

RECORD_SUFFIXES = (".hea", ".dat", ".mat")
MAX_RESAMPLE_FACTOR = 10_000  # largest up or down factor resample_poly is asked for (333.3 Hz -> 100 Hz: 1000/3333)


@dataclasses.dataclass
class Record:
    """One record as read from disk.

    Attributes:
      name: the record's path without extension.
      signal: ``(time, leads)`` float32 in physical units.
      sampling_rate_hz: the header's sampling frequency.
      lead_names: the header's signal names, in file order.
    """

    name: str
    signal: np.ndarray
    sampling_rate_hz: float
    lead_names: list[str]


def find_records(path: str) -> list[pathlib.Path]:
    """The records at ``path`` (their paths without extension): one record, or every header under a folder.

    ``path`` is a record with or without its extension (``.hea``, ``.dat``, ``.mat``),
    or a folder, searched recursively for ``.hea`` files. A ``.mat`` file without a
    header beside it is an error: its sampling rate and lead names would be unknown.
    """
    given = pathlib.Path(path)
    if given.is_dir():
        stems = sorted(h.with_suffix("") for h in given.rglob("*.hea"))
        orphans = sorted(m for m in given.rglob("*.mat") if not m.with_suffix(".hea").is_file())
        if orphans:
            raise PredictError(f"{orphans[0]}: no header {orphans[0].with_suffix('.hea').name} beside it "
                               "(the sampling rate and lead names would be unknown)")
        if not stems:
            raise PredictError(f"{given}: no record (no .hea file) in this folder")
        return stems
    stem = given.with_suffix("") if given.suffix in RECORD_SUFFIXES else given
    header = stem.parent / (stem.name + ".hea")
    if not header.is_file():
        if not given.exists() and not any((stem.parent / (stem.name + s)).exists() for s in RECORD_SUFFIXES):
            raise PredictError(f"{given}: no such record or folder")
        raise PredictError(f"{given}: no header {header} (the sampling rate and lead names would be unknown)")
    return [stem]


def _read_mat(stem: pathlib.Path, header) -> np.ndarray:
    """The ``(time, leads)`` physical signal of a challenge record whose header names a ``.mat`` file."""
    files = sorted(set(header.file_name))
    if len(files) != 1:
        raise readers.RecordError(f"{stem}.hea names {len(files)} MATLAB files ({', '.join(files)}), expected one")
    return readers.read_mat_signal(stem.parent / files[0], header, str(stem))


def read_record(stem: pathlib.Path) -> Record:
    """Reads the record ``stem`` (path without extension); ``PredictError`` naming the file if it cannot."""
    stem = pathlib.Path(stem)
    try:
        header = readers.read_header(stem)
        if header.file_name and all(str(f).lower().endswith(".mat") for f in header.file_name):
            signal = _read_mat(stem, header)
        else:
            signal, header = readers.read_wfdb(stem)
    except readers.RecordError as error:
        raise PredictError(str(error).splitlines()[0]) from error
    if signal.shape[0] == 0:
        raise PredictError(f"record {stem}: empty signal")
    return Record(str(stem), signal, header.fs, [str(n) for n in header.sig_name])


def select_leads(record: Record, lead_names) -> np.ndarray:
    """The columns of ``record.signal`` in the order of ``lead_names`` (case-insensitive), ``(time, len(lead_names))``."""
    found = [n.strip().upper() for n in record.lead_names]
    duplicated = sorted({n for n in found if found.count(n) > 1})
    missing = [w for w in lead_names if w.upper() not in found]
    if missing:
        raise PredictError(f"record {record.name} lacks the lead(s) {', '.join(missing)} that the model needs "
                           f"(it has {', '.join(record.lead_names)})")
    needed_duplicates = [d for d in duplicated if d in (w.upper() for w in lead_names)]
    if needed_duplicates:
        raise PredictError(f"record {record.name} has lead(s) {', '.join(needed_duplicates)} more than once")
    return record.signal[:, [found.index(w.upper()) for w in lead_names]]


def resample_factors(from_hz: float, to_hz: float, record: str) -> tuple[int, int]:
    """``(up, down)`` with ``to_hz / from_hz == up / down`` exactly (decimal rates); ``PredictError`` if unusable."""
    if not (np.isfinite(from_hz) and from_hz > 0):
        raise PredictError(f"record {record}: sampling rate {from_hz} Hz cannot be converted to {to_hz:g} Hz")
    ratio = fractions.Fraction(str(to_hz)) / fractions.Fraction(str(from_hz))
    if max(ratio.numerator, ratio.denominator) > MAX_RESAMPLE_FACTOR:
        raise PredictError(f"record {record}: sampling rate {from_hz:g} Hz cannot be converted to {to_hz:g} Hz "
                           f"(ratio {ratio.numerator}/{ratio.denominator} needs a polyphase factor above "
                           f"{MAX_RESAMPLE_FACTOR})")
    return ratio.numerator, ratio.denominator


def resample(signal: np.ndarray, from_hz: float, to_hz: float, record: str = "signal") -> np.ndarray:
    """``signal`` ``(time, leads)`` resampled from ``from_hz`` to ``to_hz`` (``scipy.signal.resample_poly``)."""
    import scipy.signal

    up, down = resample_factors(from_hz, to_hz, record)
    if up == down:
        return np.asarray(signal, np.float32)
    return scipy.signal.resample_poly(signal, up, down, axis=0).astype(np.float32)


def conform(record: Record, model_input: dict, fixed_length: bool = True) -> np.ndarray:
    """``record`` as the model's input ``(length_samples, leads)`` float32: its leads in the model's order,
    at the model's rate, cropped or zero-padded to the model's length (``fixed_length=False``: the whole
    recording, ``(time, leads)``, for a model scored on windows of it).

    Args:
      record: ``read_record``'s result.
      model_input: the ``input`` section of the model's metadata (``export.metadata``).
    """
    rate, names = model_input["sampling_rate_hz"], model_input["lead_names"]
    if names is None:
        raise PredictError(f"the model's lead names are unknown (its training dataset declares none): "
                           f"the leads of record {record.name} cannot be mapped by name")
    if rate is None:
        raise PredictError(f"the model's sampling rate is unknown (its training dataset declares none): "
                           f"record {record.name} at {record.sampling_rate_hz:g} Hz cannot be converted")
    signal = np.nan_to_num(select_leads(record, names), nan=0.0, posinf=0.0, neginf=0.0)
    signal = resample(signal, record.sampling_rate_hz, rate, record.name)
    return features.fix_length(signal, model_input["length_samples"]) if fixed_length else signal
