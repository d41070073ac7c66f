"""The base of the PhysioNet builders: records that cannot be used are skipped, counted and reported.

A record that raises :class:`~erts_tf.data.physionet.readers.RecordError` is
skipped, counted and logged; at the end of the build the skips are reported
(``"skipped 3 of 120 records: ..."``, log and ``info.metadata``) and the build
fails, writing nothing, when more than ``max_skip_fraction`` of the records
were skipped (:class:`TooManySkipsError`).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import pathlib
from collections.abc import Callable, Iterable, Iterator

import numpy as np
import tensorflow_datasets as tfds

from erts_tf.data.physionet import manual_download
from erts_tf.data.physionet.readers import RecordError

DEFAULT_MAX_SKIP_FRACTION = 0.02

log = logging.getLogger(__name__)  # std logging: seen by pytest caplog and by absl's handler


class TooManySkipsError(ValueError):
    """More records were skipped than ``max_skip_fraction`` allows; nothing was written.

    A ``ValueError`` (the input data are bad), so that the build command and training report it as one
    line with exit code 2, as they do for a missing or corrupt download."""


@dataclasses.dataclass
class Skip:
    """One skipped record: its name, why, and the split it was in (None: skipped before the split)."""

    record: str
    reason: str
    split: str | None = None


class SkipLog:
    """Skipped records of one build, with the number of records considered."""

    def __init__(self, name: str):
        self.name = name
        self.skips: list[Skip] = []
        self.considered = 0

    def skip(self, record: str, reason: str, split: str | None = None) -> None:
        """Logs and records that ``record`` is skipped; it counts as considered."""
        log.warning("%s: skipping record %s%s: %s", self.name, record, f" ({split})" if split else "", reason)
        self.skips.append(Skip(record, reason, split))
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

    Subclasses set ``SOURCE`` (where the database comes from), return their
    features from :meth:`_example_features` and yield examples through
    :meth:`_iterate_records`; a record whose ``make_example`` raises
    :class:`RecordError` is skipped. At the end of the build the skips are
    logged (``"<name>: skipped 3 of 120 records: ..."``) and stored in
    ``info.metadata["skips"]``; the build fails (nothing is written) when more
    than ``max_skip_fraction`` of the records were skipped.
    """

    SOURCE: manual_download.Source
    MAX_SKIP_FRACTION = DEFAULT_MAX_SKIP_FRACTION

    def __init__(self, *, max_skip_fraction: float | None = None, **kwargs):
        self.max_skip_fraction = self.MAX_SKIP_FRACTION if max_skip_fraction is None else float(max_skip_fraction)
        super().__init__(**kwargs)
        self._original_state["max_skip_fraction"] = max_skip_fraction
        self.skip_log = SkipLog(self.name)

    def _example_features(self) -> dict:
        """The features of an example besides ``sample_id``, which :meth:`_iterate_records` numbers."""
        raise NotImplementedError

    def _info(self) -> tfds.core.DatasetInfo:
        return self.dataset_info_from_configs(
            features=tfds.features.FeaturesDict({"sample_id": np.int64, **self._example_features()}),
            supervised_keys=("signal", "label"),
            homepage=self.SOURCE.url,
            metadata=tfds.core.MetadataDict(),  # receives the skip report
        )

    @property
    def _log_name(self) -> str:
        config = self.builder_config
        return f"{self.name}/{config.name}" if config else self.name

    def _checksums_file(self) -> pathlib.Path:
        return pathlib.Path(os.fspath(self.code_path)).parent / "checksums.tsv"

    def _locate_root(self, dl_manager: tfds.download.DownloadManager, **kwargs) -> pathlib.Path:
        """:func:`manual_download.locate_root` of ``SOURCE``, archives checked against the builder's checksums."""
        return manual_download.locate_root(dl_manager, self.SOURCE, checksums_path=self._checksums_file(), **kwargs)

    def _locate_records(self, dl_manager: tfds.download.DownloadManager, name_regex: str) -> dict:
        """:func:`manual_download.locate_records` of ``SOURCE``, archives checked against the builder's checksums."""
        return manual_download.locate_records(
            dl_manager, self.SOURCE, name_regex, checksums_path=self._checksums_file()
        )

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

