"""Finding a PhysioNet database's manual download: the extracted folder or the archive as distributed.

:func:`locate_root` and :func:`locate_records` find a database in
``dl_manager.manual_dir`` either as the extracted folder or as the archive
exactly as PhysioNet distributes it (``.zip``, ``.tar.gz``). An archive is
extracted once, only the members the config needs, into
``<download_dir>/erts_extracted/`` and reused by later builds. An archive whose
name is listed in the builder's ``checksums.tsv`` is checked (size and sha256)
before it is extracted. When nothing is found the error
(:class:`ManualDataError`) names the file that is missing and the PhysioNet
page it comes from.

Only local paths are supported (``manual_dir`` on a local filesystem).
"""

from __future__ import annotations

import dataclasses
import fnmatch
import hashlib
import json
import logging
import os
import pathlib
import re
import shutil
import tarfile
import zipfile
import zlib
from collections.abc import Callable, Iterator, Sequence

import tensorflow_datasets as tfds

from erts_tf.data import file_lock

ARCHIVE_SUFFIXES = (".zip", ".tar.gz", ".tgz", ".tar")
EXTRACT_DIR_NAME = "erts_extracted"
MAX_SEARCH_DEPTH = 3

log = logging.getLogger(__name__)  # std logging: seen by pytest caplog and by absl's handler


class ManualDataError(FileNotFoundError):
    """The manual download is missing, incomplete or corrupt; nothing was written."""


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
            f"{source.dataset}: the manual download directory is missing or empty. Name the folder holding "
            f"{source.archive_name}, or the folder extracted from it, with --manual_dir (or put it there); get it "
            f"from {source.url}. TFDS: {' '.join(str(err).split())}"
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
    extraction is never reused. Processes extracting the same folder at once
    (two trainings preparing one dataset) take turns on an exclusive lock of
    ``<dest_root>/.<archive name>.<cache_key>.lock``: the second waits and then
    reuses the first's folder, which is never replaced while another build
    reads it.
    """
    with file_lock.exclusive(dest_root / f".{archive.name}.{cache_key}.lock"):
        return _extract_locked(archive, dest_root, source, members, cache_key, checksums_path)


def _extract_locked(
    archive: pathlib.Path,
    dest_root: pathlib.Path,
    source: Source,
    members: Callable[[str], bool] | None,
    cache_key: str,
    checksums_path: pathlib.Path | None,
) -> pathlib.Path:
    """:func:`extract`'s work, done while holding its lock."""
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
    shutil.rmtree(dest, ignore_errors=True)  # an extraction of an older archive of that name
    tmp.rename(dest)
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

