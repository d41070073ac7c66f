"""Shared machinery of the PhysioNet TFDS builders in ``datasets/``.

Used by ``ptbxl``, ``cpsc2018``, ``georgia``, ``mitbih_arrhythmia`` and
``cinc2017`` so that they do not duplicate code:

* **Manual download, zip or folder.** :func:`locate_root` and
  :func:`locate_records` find a database in ``dl_manager.manual_dir`` either as
  the extracted folder or as the archive exactly as PhysioNet distributes it
  (``.zip``, ``.tar.gz``). An archive is extracted once, only the members the
  config needs, into ``<download_dir>/erts_extracted/`` and reused by later
  builds. An archive whose name is listed in the builder's ``checksums.tsv`` is
  checked (size and sha256) before it is extracted. When nothing is found the
  error names the file that is missing and the PhysioNet page it comes from.
* **Reading records.** :func:`read_wfdb` (WFDB format, via ``wfdb``) and
  :func:`read_mat` (MATLAB v4, via ``scipy.io.loadmat``) turn bad input
  (missing or truncated files, header/signal length mismatch, unreadable
  files) into :class:`RecordError`; :func:`check_signal` rejects NaN and flat
  signals; :func:`order_leads` checks and reorders leads by name.
* **Skips.** :class:`PhysioNetBuilder` is the base of the builders: a record
  that raises :class:`RecordError` is skipped, counted and logged; at the end
  of the build the skips are reported (``"skipped 3 of 120 records: ..."``,
  log and ``info.metadata``) and the build fails, writing nothing, when more
  than ``max_skip_fraction`` of the records were skipped.
* **Labels and splits** shared by builders: :func:`fix_length` (the
  reference's crop from the start / zero-pad at the end) and
  :func:`reference_split` (its stratified 80/10/10 split with
  ``train_test_split``), plus the PhysioNet/CinC Challenge 2020 base builder
  :class:`Challenge2020Builder` used by ``cpsc2018`` and ``georgia``.

Only local paths are supported (``manual_dir`` on a local filesystem).
"""

from __future__ import annotations

import dataclasses
import fnmatch
import logging
import hashlib
import json
import math
import os
import pathlib
import re
import shutil
import tarfile
import zipfile
import zlib
from collections.abc import Callable, Iterable, Iterator, Sequence

import numpy as np
import tensorflow_datasets as tfds

ARCHIVE_SUFFIXES = (".zip", ".tar.gz", ".tgz", ".tar")
EXTRACT_DIR_NAME = "erts_extracted"
MAX_SEARCH_DEPTH = 3
DEFAULT_MAX_SKIP_FRACTION = 0.02

log = logging.getLogger(__name__)  # std logging: seen by pytest caplog and by absl's handler


class ManualDataError(FileNotFoundError):
    """The manual download is missing, incomplete or corrupt; nothing was written."""


class RecordError(ValueError):
    """One record cannot be used (bad or missing file); builders skip and count it."""


class TooManySkipsError(RuntimeError):
    """More records were skipped than ``max_skip_fraction`` allows; nothing was written."""


# ---------------------------------------------------------------------------
# Finding the manual download
# ---------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Source:
    """Where a database comes from and how to recognise it in ``manual_dir``.

    Attributes:
      dataset: builder name, used in messages.
      title: human name and version, e.g. ``"PTB-XL 1.0.3"``.
      url: the PhysioNet page to download it from.
      archive_name: the archive's name as PhysioNet distributes it.
      archive_patterns: ``fnmatch`` patterns (matched lower-case) of archive
        names accepted in ``manual_dir`` (subsets and mirrors included).
      markers: glob patterns relative to the database's root folder that must
        all match for a folder to be taken as that root.
    """

    dataset: str
    title: str
    url: str
    archive_name: str
    archive_patterns: tuple[str, ...]
    markers: tuple[str, ...] = ()

    def where(self) -> str:
        return f"{self.title} ({self.archive_name}) from {self.url}"


def manual_dir(dl_manager: tfds.download.DownloadManager, source: Source) -> pathlib.Path:
    """``dl_manager.manual_dir`` as a local path; a clear error when missing or empty."""
    try:
        path = dl_manager.manual_dir
    except AssertionError as err:  # TFDS: "does not exist or is empty"
        raise ManualDataError(
            f"{source.dataset}: the manual download directory is missing or empty ({err}). "
            f"Put {source.archive_name} there, or the folder extracted from it; get it from {source.url}."
        ) from err
    return pathlib.Path(os.fspath(path))


def _subdirs(folder: pathlib.Path) -> list[pathlib.Path]:
    try:
        children = sorted(folder.iterdir())
    except OSError:
        return []
    return [c for c in children if c.is_dir() and not c.name.startswith(".") and c.name != EXTRACT_DIR_NAME]


def _has_markers(folder: pathlib.Path, markers: Sequence[str]) -> bool:
    return all(next(iter(folder.glob(marker)), None) is not None for marker in markers)


def find_folders(base: pathlib.Path, markers: Sequence[str], max_depth: int = MAX_SEARCH_DEPTH) -> list[pathlib.Path]:
    """Folders at the shallowest depth (<= max_depth) under ``base`` holding all ``markers``."""
    level = [base]
    for _ in range(max_depth + 1):
        found = [folder for folder in level if _has_markers(folder, markers)]
        if found:
            return found
        level = [sub for folder in level for sub in _subdirs(folder)]
        if not level:
            break
    return []


def _is_archive(path: pathlib.Path) -> bool:
    return path.is_file() and path.name.lower().endswith(ARCHIVE_SUFFIXES)


def find_archives(base: pathlib.Path, patterns: Sequence[str]) -> list[pathlib.Path]:
    """Archives directly in ``base`` whose lower-case name matches one of ``patterns``."""
    try:
        children = sorted(base.iterdir())
    except OSError:
        return []
    return [
        c for c in children if _is_archive(c) and any(fnmatch.fnmatch(c.name.lower(), p.lower()) for p in patterns)
    ]


def extract_dir(dl_manager: tfds.download.DownloadManager) -> pathlib.Path:
    """Where archives are extracted: ``<download_dir>/erts_extracted``."""
    return pathlib.Path(os.fspath(dl_manager.download_dir)) / EXTRACT_DIR_NAME


def load_checksums(checksums_path: pathlib.Path | None) -> dict[str, tuple[int, str]]:
    """``{archive file name: (size, sha256)}`` from a TFDS ``checksums.tsv`` (comments allowed)."""
    if checksums_path is None or not pathlib.Path(checksums_path).is_file():
        return {}
    infos = tfds.core.download.checksums.load_url_infos(checksums_path)
    out = {}
    for key, info in infos.items():
        name = info.filename or key.rstrip("/").rsplit("/", 1)[-1]
        out[name] = (int(info.size), info.checksum)
    return out


def sha256sum(path: pathlib.Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def verify_archive(archive: pathlib.Path, source: Source, checksums_path: pathlib.Path | None) -> None:
    """Checks size and sha256 of ``archive`` when its name is listed in ``checksums_path``."""
    known = load_checksums(checksums_path).get(archive.name)
    if known is None:
        log.info("%s: %s is not listed in %s; not checksummed.", source.dataset, archive.name, checksums_path)
        return
    size, expected = known
    actual_size = archive.stat().st_size
    if actual_size != size:
        # Another file under a listed name (e.g. PhysioNet's own archive where the list records a
        # repackaged copy): not verifiable here. Truncated archives still fail when they are read.
        log.warning(
            "%s: %s has %d bytes, %s lists %d bytes for that name: another archive, not checksummed.",
            source.dataset, archive, actual_size, checksums_path, size,
        )
        return
    actual = sha256sum(archive)
    if actual != expected:
        raise ManualDataError(
            f"{source.dataset}: {archive} has sha256 {actual} but {checksums_path} lists {expected} for "
            f"{archive.name}: the file is corrupt or another version. Download it again from {source.url}, "
            "or put the extracted folder in manual_dir instead."
        )


def _archive_members(archive: pathlib.Path) -> tuple[list[str], Callable[[list[str], pathlib.Path], None]]:
    """Member file names of a zip or tar archive, and a function extracting a selection of them."""
    if archive.name.lower().endswith(".zip"):
        zf = zipfile.ZipFile(archive)
        names = [info.filename for info in zf.infolist() if not info.is_dir()]

        def extract(selected, dest):
            with zf:
                for name in selected:
                    zf.extract(name, dest)

        return names, extract
    tf_ = tarfile.open(archive)
    members = [m for m in tf_.getmembers() if m.isfile()]

    def extract_tar(selected, dest):
        wanted = set(selected)
        with tf_:
            tf_.extractall(dest, members=[m for m in members if m.name in wanted], filter="data")

    return [m.name for m in members], extract_tar


def extract(
    archive: pathlib.Path,
    dest_root: pathlib.Path,
    source: Source,
    *,
    members: Callable[[str], bool] | None = None,
    cache_key: str = "all",
    checksums_path: pathlib.Path | None = None,
) -> pathlib.Path:
    """Extracts the members of ``archive`` selected by ``members`` once; returns the folder.

    The folder ``<dest_root>/<archive name>.<cache_key>`` is reused while the
    archive's size and modification time are unchanged. Extraction goes to a
    temporary folder that is renamed when complete, so an interrupted
    extraction is never reused.
    """
    stat = archive.stat()
    stamp = {"archive": archive.name, "size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "key": cache_key}
    dest = dest_root / f"{archive.name}.{cache_key}"
    stamp_file = dest / ".erts_extracted.json"
    if stamp_file.is_file():
        try:
            if json.loads(stamp_file.read_text()) == stamp:
                log.info("%s: reusing %s extracted in %s", source.dataset, archive.name, dest)
                return dest
        except (OSError, ValueError):
            pass
    verify_archive(archive, source, checksums_path)
    dest_root.mkdir(parents=True, exist_ok=True)
    tmp = dest_root / f".{archive.name}.{cache_key}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    log.info("%s: extracting %s (%s) into %s", source.dataset, archive, cache_key, dest)
    try:
        names, do_extract = _archive_members(archive)
        selected = [n for n in names if members is None or members(n)]
        do_extract(selected, tmp)
    except (zipfile.BadZipFile, tarfile.TarError, EOFError, zlib.error) as err:
        shutil.rmtree(tmp, ignore_errors=True)
        raise ManualDataError(
            f"{source.dataset}: cannot read archive {archive} ({type(err).__name__}: {err}); it is truncated or "
            f"corrupt. Download {source.archive_name} again from {source.url}."
        ) from err
    tmp.mkdir(parents=True, exist_ok=True)
    (tmp / ".erts_extracted.json").write_text(json.dumps(stamp))
    shutil.rmtree(dest, ignore_errors=True)
    try:
        tmp.rename(dest)
    except OSError:  # another process finished first
        shutil.rmtree(tmp, ignore_errors=True)
    return dest


def _missing_message(source: Source, base: pathlib.Path, what: str) -> str:
    return (
        f"{source.dataset}: {what} not found in manual_dir {base} (searched {MAX_SEARCH_DEPTH} folder levels "
        f"deep). Download {source.title}, the file {source.archive_name}, from {source.url} and put the archive "
        "(unchanged) or the folder extracted from it in manual_dir."
    )


def _one(found: list[pathlib.Path], source: Source, what: str) -> pathlib.Path:
    if len(found) > 1:
        listing = ", ".join(str(f) for f in found)
        raise ManualDataError(
            f"{source.dataset}: found {len(found)} candidate {what}: {listing}. Keep only one in manual_dir "
            "or point manual_dir at the one to use."
        )
    return found[0]


def locate_root(
    dl_manager: tfds.download.DownloadManager,
    source: Source,
    *,
    members: Callable[[str], bool] | None = None,
    cache_key: str = "all",
    checksums_path: pathlib.Path | None = None,
) -> pathlib.Path:
    """The root folder of the database (the folder holding ``source.markers``).

    Looks in ``manual_dir`` for an extracted folder first (``manual_dir``
    itself or up to ``MAX_SEARCH_DEPTH`` levels below), then for an archive
    matching ``source.archive_patterns`` directly in ``manual_dir``, which is
    extracted (only ``members``) and searched the same way.
    """
    base = manual_dir(dl_manager, source)
    markers_text = " + ".join(source.markers)
    folders = find_folders(base, source.markers)
    if folders:
        root = _one(folders, source, f"folders holding {markers_text}")
        log.info("%s: reading the extracted folder %s", source.dataset, root)
        return root
    archives = find_archives(base, source.archive_patterns)
    if not archives:
        raise ManualDataError(
            _missing_message(source, base, f"the archive {source.archive_name} or a folder holding {markers_text}")
        )
    archive = _one(archives, source, "archives")
    extracted = extract(
        archive, extract_dir(dl_manager), source, members=members, cache_key=cache_key, checksums_path=checksums_path
    )
    folders = find_folders(extracted, source.markers)
    if not folders:
        raise ManualDataError(
            f"{source.dataset}: the archive {archive} holds no folder with {markers_text}; it is not "
            f"{source.title}. Download {source.archive_name} from {source.url}."
        )
    return _one(folders, source, f"folders holding {markers_text} in {archive.name}")


def _walk_files(base: pathlib.Path) -> Iterator[pathlib.Path]:
    for dirpath, dirnames, filenames in os.walk(base):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".") and d != EXTRACT_DIR_NAME)
        for name in filenames:
            yield pathlib.Path(dirpath) / name


def _collect(base: pathlib.Path, name_regex: re.Pattern, extensions: Sequence[str]) -> dict[str, dict[str, list]]:
    """``{record name: {extension: [paths]}}`` for files named ``<record><extension>`` under base."""
    found: dict[str, dict[str, list]] = {}
    for path in _walk_files(base):
        for ext in extensions:
            if path.name.endswith(ext) and name_regex.fullmatch(path.name[: -len(ext)]):
                found.setdefault(path.name[: -len(ext)], {}).setdefault(ext, []).append(path)
    return found


def locate_records(
    dl_manager: tfds.download.DownloadManager,
    source: Source,
    name_regex: str,
    *,
    extensions: Sequence[str] = (".hea", ".mat"),
    checksums_path: pathlib.Path | None = None,
) -> dict[str, dict[str, pathlib.Path]]:
    """Records named by ``name_regex`` anywhere under ``manual_dir`` or in one matching archive.

    For databases shipped as many sub-folders (the Challenge 2020 ``g1/``,
    ``g2/``, ...). Returns ``{record: {extension: path}}`` (an extension is
    absent when that file is missing); a record found twice is an error.
    """
    base = manual_dir(dl_manager, source)
    pattern = re.compile(name_regex)
    found = _collect(base, pattern, extensions)
    origin = f"manual_dir {base}"
    if not found:
        archives = find_archives(base, source.archive_patterns)
        if not archives:
            raise ManualDataError(
                f"{source.dataset}: no records ({name_regex} + {'/'.join(extensions)}) and no archive matching "
                f"{', '.join(source.archive_patterns)} in manual_dir {base}. Download {source.title}, "
                f"{source.archive_name}, from {source.url} and put the archive (unchanged) or the folder "
                "extracted from it in manual_dir."
            )
        archive = _one(archives, source, "archives")

        def wanted(member: str) -> bool:
            name = member.rsplit("/", 1)[-1]
            return any(name.endswith(e) and pattern.fullmatch(name[: -len(e)]) for e in extensions)

        extracted = extract(
            archive, extract_dir(dl_manager), source, members=wanted, cache_key="records", checksums_path=checksums_path
        )
        found = _collect(extracted, pattern, extensions)
        origin = f"archive {archive}"
        if not found:
            raise ManualDataError(
                f"{source.dataset}: the archive {archive} holds no records named {name_regex}; it is not "
                f"{source.title}. Download {source.archive_name} from {source.url}."
            )
    out = {}
    for name in sorted(found):
        for ext, paths in found[name].items():
            if len(paths) > 1:
                raise ManualDataError(
                    f"{source.dataset}: record {name} found {len(paths)} times in {origin}: "
                    f"{', '.join(str(p) for p in paths)}. Keep one copy."
                )
        out[name] = {ext: paths[0] for ext, paths in found[name].items()}
    log.info("%s: %d records found in %s", source.dataset, len(out), origin)
    return out


# ---------------------------------------------------------------------------
# Reading records
# ---------------------------------------------------------------------------

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


def signal_feature(shape: tuple[int, int]) -> tfds.features.Tensor:
    """The ``signal`` feature: float32 ``(time, leads)``, stored as raw bytes.

    Bytes encoding only changes the storage (serialising a float list is
    several times slower for 12 x 5000 samples); the feature reads back as a
    float32 tensor of ``shape``.
    """
    return tfds.features.Tensor(shape=shape, dtype=np.float32, encoding=tfds.features.Encoding.BYTES)


def fix_length(signal: np.ndarray, length: int) -> np.ndarray:
    """The first ``length`` samples of ``signal`` (time, leads), zero-padded at the end if shorter.

    This is the reference's crop/pad: it keeps the start of the record.
    """
    out = np.zeros((length, signal.shape[1]), dtype=np.float32)
    n = min(length, signal.shape[0])
    out[:n] = signal[:n]
    return out


def reference_split(labels: Sequence[int], seed: int = 42) -> np.ndarray:
    """Split name per record: the reference's stratified 80/10/10 split.

    ``train_test_split(test_size=0.2, stratify=labels, random_state=seed)`` and
    then the held-out 20 % halved the same way into validation and test, as
    the reference implementation does on its record table; the table must be
    in the same order (records sorted by name) for the same split.
    """
    from sklearn.model_selection import train_test_split

    labels = np.asarray(labels)
    index = np.arange(len(labels))
    try:
        train, rest = train_test_split(index, test_size=0.2, random_state=seed, stratify=labels)
        validation, test = train_test_split(rest, test_size=0.5, random_state=seed, stratify=labels[rest])
    except ValueError as err:
        values, counts = np.unique(labels, return_counts=True)
        raise ValueError(
            f"cannot make a stratified 80/10/10 split of {len(labels)} records with class counts "
            f"{dict(zip(values.tolist(), counts.tolist()))}: {err}"
        ) from err
    out = np.empty(len(labels), dtype=object)
    out[train], out[validation], out[test] = "train", "validation", "test"
    return out


# ---------------------------------------------------------------------------
# Builders: skip counting and reporting
# ---------------------------------------------------------------------------


@dataclasses.dataclass
class Skip:
    record: str
    reason: str
    split: str | None = None


class SkipLog:
    """Skipped records of one build, with the number of records considered."""

    def __init__(self, name: str):
        self.name = name
        self.skips: list[Skip] = []
        self.considered = 0

    def skip(self, record: str, reason: str, split: str | None = None, *, count: bool = True) -> None:
        log.warning("%s: skipping record %s%s: %s", self.name, record, f" ({split})" if split else "", reason)
        self.skips.append(Skip(record, reason, split))
        if count:
            self.considered += 1

    def summary(self, limit: int = 20) -> str:
        head = f"{self.name}: skipped {len(self.skips)} of {self.considered} records"
        if not self.skips:
            return head
        listed = "; ".join(
            f"{s.record}{f' ({s.split})' if s.split else ''}: {s.reason}" for s in self.skips[:limit]
        )
        more = f"; ... and {len(self.skips) - limit} more" if len(self.skips) > limit else ""
        return f"{head}: {listed}{more}"

    def as_metadata(self) -> dict:
        return {
            "num_considered": self.considered,
            "num_skipped": len(self.skips),
            "skipped": [dataclasses.asdict(s) for s in self.skips],
        }


class PhysioNetBuilder(tfds.core.GeneratorBasedBuilder, skip_registration=True):
    """Base of the PhysioNet builders: counts skipped records and reports them at the end.

    Subclasses yield examples through :meth:`_iterate_records`; a record whose
    ``make_example`` raises :class:`RecordError` is skipped. At the end of the
    build the skips are logged (``"<name>: skipped 3 of 120 records: ..."``)
    and stored in ``info.metadata["skips"]``; the build fails (nothing is
    written) when more than ``max_skip_fraction`` of the records were skipped.
    """

    MAX_SKIP_FRACTION = DEFAULT_MAX_SKIP_FRACTION

    def __init__(self, *, max_skip_fraction: float | None = None, **kwargs):
        self.max_skip_fraction = self.MAX_SKIP_FRACTION if max_skip_fraction is None else float(max_skip_fraction)
        super().__init__(**kwargs)
        self._original_state["max_skip_fraction"] = max_skip_fraction
        self.skip_log = SkipLog(self.name)

    @property
    def _log_name(self) -> str:
        config = self.builder_config
        return f"{self.name}/{config.name}" if config else self.name

    def _checksums_file(self) -> pathlib.Path:
        return pathlib.Path(os.fspath(self.code_path)).parent / "checksums.tsv"

    def _download_and_prepare(self, dl_manager, download_config):  # pylint: disable=arguments-differ
        self.skip_log = SkipLog(self._log_name)
        super()._download_and_prepare(dl_manager, download_config)
        self._finish_skips()

    def _raise_if_too_many(self, total: int) -> None:
        skips = self.skip_log
        if total and len(skips.skips) > self.max_skip_fraction * total:
            skips.considered = max(skips.considered, total)
            raise TooManySkipsError(
                f"{skips.summary()}. That is more than max_skip_fraction={self.max_skip_fraction:g} of the records: "
                "the build was aborted and nothing was written. Fix or replace the files named above (or pass "
                "a larger max_skip_fraction to the builder to accept the loss)."
            )

    def _finish_skips(self) -> None:
        skips = self.skip_log
        self._raise_if_too_many(skips.considered)
        if skips.skips:
            log.warning("%s", skips.summary())
        else:
            log.info("%s", skips.summary())
        if isinstance(self.info.metadata, dict):
            self.info.metadata["skips"] = skips.as_metadata()

    def _iterate_records(
        self,
        split: str,
        records: Iterable,
        make_example: Callable[[object], dict],
        name_of: Callable[[object], str] = str,
    ) -> Iterator[tuple[str, dict]]:
        """Yields ``(key, example)`` with ``sample_id`` 0..N-1 in record order; skips bad records."""
        sample_id = 0
        for record in records:
            name = name_of(record)
            try:
                example = make_example(record)
            except RecordError as err:
                self.skip_log.skip(name, str(err), split)
                continue
            self.skip_log.considered += 1
            example["sample_id"] = sample_id
            sample_id += 1
            yield name, example
        self._check_skips_so_far()

    def _check_skips_so_far(self) -> None:
        """Fails early (before the next split) when the skips exceed the allowed fraction of all records."""
        self._raise_if_too_many(getattr(self, "_total_records", 0))


# ---------------------------------------------------------------------------
# PhysioNet/CinC Challenge 2020 (CPSC 2018, Georgia): shared builder
# ---------------------------------------------------------------------------

UNIFIED_CLASSES = ("NORM", "AF", "LBBB", "RBBB", "ST", "AVB", "PVC", "OTHER")
SNOMED_TO_UNIFIED = {
    "426783006": "NORM",
    "164889003": "AF",
    "164890007": "AF",
    "270492004": "AVB",
    "195042002": "AVB",
    "27885002": "AVB",
    "164909002": "LBBB",
    "59118001": "RBBB",
    "713427006": "RBBB",
    "284470004": "PVC",
    "63593006": "PVC",
    "427172004": "PVC",
    "17338001": "PVC",
    "429622005": "ST",
    "164931005": "ST",
}
TWELVE_LEADS = ("I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6")
_DX_LINE = re.compile(r"^\s*#?\s*dx\s*:\s*(.*)$", re.IGNORECASE)


def dx_codes(comments: Sequence[str]) -> list[str]:
    """SNOMED-CT codes of the header's ``#Dx:`` line, in header order (empty if none)."""
    for comment in comments:
        match = _DX_LINE.match(comment)
        if match:
            return [c.strip() for c in match.group(1).split(",") if c.strip()]
    return []


def unified_label(codes: Sequence[str]) -> str:
    """The reference's single label: the class of the first code (header order) in the map, else OTHER."""
    for code in codes:
        if code in SNOMED_TO_UNIFIED:
            return SNOMED_TO_UNIFIED[code]
    return "OTHER"


def unified_multi_hot(codes: Sequence[str]) -> np.ndarray:
    """8-class multi-hot: every code's class, unknown codes -> OTHER (OTHER alone when no code)."""
    hot = np.zeros(len(UNIFIED_CLASSES), dtype=np.int8)
    for code in codes:
        hot[UNIFIED_CLASSES.index(SNOMED_TO_UNIFIED.get(code, "OTHER"))] = 1
    if not codes:
        hot[UNIFIED_CLASSES.index("OTHER")] = 1
    return hot


@dataclasses.dataclass
class Challenge2020Config(tfds.core.BuilderConfig):
    """Fixed length (samples at 500 Hz) after the reference's crop/pad."""

    length: int = 5000


class Challenge2020Builder(PhysioNetBuilder, skip_registration=True):
    """PhysioNet/CinC Challenge 2020 release of a 12-lead database (WFDB header + MATLAB v4 ``val``).

    Subclasses set ``SOURCE``, ``RECORD_REGEX``, ``VERSION``, ``RELEASE_NOTES``,
    ``MANUAL_DOWNLOAD_INSTRUCTIONS``, ``BUILDER_CONFIGS``.
    """

    SOURCE: Source
    RECORD_REGEX: str
    SAMPLING_RATE = 500
    SPLIT_SEED = 42

    def _info(self) -> tfds.core.DatasetInfo:
        return self.dataset_info_from_configs(
            features=tfds.features.FeaturesDict(
                {
                    "sample_id": np.int64,
                    "record": tfds.features.Text(),
                    "signal": signal_feature((self.builder_config.length, 12)),
                    "label": tfds.features.ClassLabel(names=UNIFIED_CLASSES),
                    "multi_hot": tfds.features.Tensor(shape=(len(UNIFIED_CLASSES),), dtype=np.int8),
                    "dx": tfds.features.Text(),
                    "num_samples": np.int64,
                }
            ),
            supervised_keys=("signal", "label"),
            homepage=self.SOURCE.url,
            metadata=tfds.core.MetadataDict(),
        )

    def _split_generators(self, dl_manager: tfds.download.DownloadManager):
        found = locate_records(dl_manager, self.SOURCE, self.RECORD_REGEX, checksums_path=self._checksums_file())
        self._total_records = len(found)
        names, labels, headers = [], [], {}
        for name, files in found.items():
            if ".hea" not in files:
                self.skip_log.skip(name, f"missing header {name}.hea beside {files['.mat']}")
                continue
            if ".mat" not in files:
                self.skip_log.skip(name, f"missing signal file {name}.mat beside {files['.hea']}")
                continue
            record_path = files[".hea"].with_suffix("")
            try:
                header = read_header(record_path)
                if header.n_sig != 12:
                    raise RecordError(f"wrong lead count: {files['.hea']} declares {header.n_sig} leads, expected 12")
                if header.fs != self.SAMPLING_RATE:
                    raise RecordError(f"{files['.hea']} declares {header.fs} Hz, expected {self.SAMPLING_RATE} Hz")
            except RecordError as err:
                self.skip_log.skip(name, str(err))
                continue
            codes = dx_codes(header.comments or [])
            headers[name] = (files[".mat"], header, codes)
            names.append(name)
            labels.append(UNIFIED_CLASSES.index(unified_label(codes)))
        if not names:
            raise ManualDataError(f"{self._log_name}: no usable record: {self.skip_log.summary()}")
        splits = reference_split(labels, seed=self.SPLIT_SEED)
        return {
            split: self._generate_examples(split, [n for n, s in zip(names, splits) if s == split], headers)
            for split in ("train", "validation", "test")
        }

    def _generate_examples(self, split: str, names: list[str], headers: dict):
        def make_example(name: str) -> dict:
            mat_path, header, codes = headers[name]
            matrix = read_mat(mat_path)
            if matrix.shape != (header.n_sig, header.sig_len):
                raise RecordError(
                    f"header/signal length mismatch: {name}.hea declares {header.n_sig} leads x {header.sig_len} "
                    f"samples, {mat_path.name} holds {matrix.shape[0]} x {matrix.shape[1]}"
                )
            gain = np.asarray(header.adc_gain, dtype=np.float64)
            if np.any(gain <= 0):
                raise RecordError(f"{name}.hea has a non-positive ADC gain: {header.adc_gain}")
            baseline = np.asarray(header.baseline, dtype=np.float64)
            signal = ((matrix.astype(np.float64) - baseline[:, None]) / gain[:, None]).T.astype(np.float32)
            check_signal(signal, name)
            signal = order_leads(signal, header.sig_name, TWELVE_LEADS, name)
            return {
                "record": name,
                "signal": fix_length(signal, self.builder_config.length),
                "label": unified_label(codes),
                "multi_hot": unified_multi_hot(codes),
                "dx": ",".join(codes),
                "num_samples": signal.shape[0],
            }

        yield from self._iterate_records(split, names, make_example)
