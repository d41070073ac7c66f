"""mitbih_arrhythmia: MIT-BIH Arrhythmia Database heartbeats in AAMI classes (manual download).

One example per reference beat annotation (``.atr``) whose symbol maps to an
AAMI class (N: N L R e j; S: A a J S; V: V E; F: F; Q: / f Q): a window of the
signal around the annotated R peak (``before`` samples before it, ``after``
from it on, 360 Hz, millivolts), from lead MLII (config ``mlii``) or MLII and
the record's second lead (``two_leads``). Beats whose window would leave the
record are dropped and counted in ``info.metadata``.

Config ``mlii_rhythm`` adds a rhythm channel (``rhythm_channel``): the
annotated R peaks within 5 s each side of the beat, one bump each, on a 10 s
axis squeezed into the beat window's 256 samples (39 ms per sample). An S beat
is told apart by its timing against the patient's own rhythm (de Chazal et al.
2004 classify S beats mostly on RR intervals), which a 0.71 s beat window does
not hold; the bumps keep that timing through the per-lead z-score, which would
erase a constant RR value. Config ``mlii_rhythm_relative`` adds a second,
relative rhythm channel: the same bumps on an axis of 8 of the patient's mean
RR intervals (``mean_rr`` over 5 minutes each side), so that prematurity reads
the same at any heart rate. Config ``mlii_rhythm_intervals`` adds two interval
channels (``interval_channel``) to those: the previous and the next RR interval,
each a box from one R peak to the other on an axis of 4 mean RR intervals, so
that the ratio to the patient's mean RR is the box's width, which a z-score
keeps and a pooled ReLU reads, where a bump's place must be told to a point.

Splits are inter-patient (de Chazal et al. 2004): DS1 trains, DS2 tests, the
paced records 102, 104, 107, 217 are excluded, and the validation split is the
whole DS1 records 114, 124, 207, 223 (chosen to hold N, S, V and F beats in
roughly DS1's proportions, about 16 % of DS1's beats).
"""

from __future__ import annotations

import dataclasses
import pathlib

import numpy as np
import tensorflow_datasets as tfds

from erts_tf.data.physionet import builder_base, features, manual_download, readers

CLASSES = ("N", "S", "V", "F", "Q")
AAMI = {
    **dict.fromkeys("NLRej", "N"),
    **dict.fromkeys("AaJS", "S"),
    **dict.fromkeys("VE", "V"),
    "F": "F",
    **dict.fromkeys("/fQ", "Q"),
}
SAMPLING_RATE = 360
RELATIVE_RR_SPAN_S = 300.0  # the relative rhythm channel's mean RR: over 5 minutes each side (de Chazal et al.)
UNITS = "mV"  # physical units of the signal as wfdb reads it; records in other units are an error
DS1 = (
    "101", "106", "108", "109", "112", "114", "115", "116", "118", "119", "122",
    "124", "201", "203", "205", "207", "208", "209", "215", "220", "223", "230",
)  # fmt: skip
DS2 = (
    "100", "103", "105", "111", "113", "117", "121", "123", "200", "202", "210",
    "212", "213", "214", "219", "221", "222", "228", "231", "232", "233", "234",
)  # fmt: skip
PACED = ("102", "104", "107", "217")
VALIDATION = ("114", "124", "207", "223")

SOURCE = manual_download.Source(
    dataset="mitbih_arrhythmia",
    title="MIT-BIH Arrhythmia Database 1.0.0",
    url="https://physionet.org/content/mitdb/1.0.0/",
    archive_name="mit-bih-arrhythmia-database-1.0.0.zip",
    archive_patterns=("mit-bih-arrhythmia-database*.zip", "mitdb*.zip"),
    markers=("[0-9][0-9][0-9].atr",),
)


def rhythm_channel(peak: int, beat_samples: np.ndarray, length: int, half_width: int,
                   sigma: float = 1.0) -> np.ndarray:
    """``(length,)`` float32: the R peaks ``beat_samples`` (record samples) within ``half_width`` samples of
    ``peak``, each a Gaussian bump of ``sigma`` points at its place on an axis of ``length`` points spanning
    ``[peak - half_width, peak + half_width]``. The beat itself is the bump at the middle; the spacing of the
    others is the RR intervals, in a fixed number of seconds per point."""
    axis = np.arange(length, dtype=np.float64)
    near = beat_samples[np.abs(beat_samples - peak) <= half_width]
    points = (near - (peak - half_width)) / (2 * half_width) * (length - 1)
    return np.exp(-0.5 * ((axis[:, None] - points[None, :]) / sigma) ** 2).sum(axis=1).astype(np.float32)


def interval_channel(start: int | None, stop: int | None, peak: int, length: int, half_width: int) -> np.ndarray:
    """``(length,)`` float32: 1 on the points of an axis of ``length`` points spanning
    ``[peak - half_width, peak + half_width]`` (record samples) that fall within ``[start, stop]``, 0 on the
    others; all 0 when ``start`` or ``stop`` is None (a record's first or last beat). The interval's length
    is the box's width, in a fixed number of samples per point; an interval longer than the half width fills
    that half of the axis."""
    if start is None or stop is None:
        return np.zeros(length, np.float32)
    axis = peak - half_width + np.arange(length, dtype=np.float64) * (2 * half_width) / (length - 1)
    return ((axis >= start) & (axis <= stop)).astype(np.float32)


def mean_rr(peak: int, beat_samples: np.ndarray, half_width: int) -> float:
    """The mean RR interval, in samples, of the R peaks ``beat_samples`` (sorted, record samples) within
    ``half_width`` samples of ``peak`` (de Chazal et al.'s "average RR" with a 5-minute half width):
    ``(last - first) / (count - 1)``. Fewer than two peaks there: ``half_width`` (an RR no record reaches)."""
    near = beat_samples[np.abs(beat_samples - peak) <= half_width]
    return float(near[-1] - near[0]) / (len(near) - 1) if len(near) > 1 else float(half_width)


@dataclasses.dataclass
class MitbihConfig(tfds.core.BuilderConfig):
    """Leads, beat window and the records of each split (all change what is written)."""

    two_leads: bool = False
    before: int = 128
    after: int = 128
    rhythm_s: float = 0.0  # > 0: a rhythm channel of the R peaks within this many seconds each side
    # > 0: a relative rhythm channel of the R peaks within this many of the patient's mean RR intervals
    # (over RELATIVE_RR_SPAN_S each side of the beat) each side
    relative_rhythm_beats: float = 0.0
    # > 0: two interval channels, the previous and the next RR interval as boxes on an axis of this many of the
    # patient's mean RR intervals each side
    interval_beats: float = 0.0
    train_records: tuple[str, ...] = tuple(r for r in DS1 if r not in VALIDATION)
    validation_records: tuple[str, ...] = VALIDATION
    test_records: tuple[str, ...] = DS2


class Builder(builder_base.PhysioNetBuilder):
    """DatasetBuilder for mitbih_arrhythmia."""

    SOURCE = SOURCE
    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {
        "1.0.0": "Initial release: AAMI N/S/V/F/Q beats, de Chazal DS1/DS2 split, validation 114/124/207/223.",
    }
    MANUAL_DOWNLOAD_INSTRUCTIONS = f"""\
    Download {SOURCE.archive_name} from {SOURCE.url} ("Download the ZIP
    file") and put it, unchanged, or the folder extracted from it (NNN.hea,
    NNN.dat, NNN.atr for the 48 records) in manual_dir.
    """
    BUILDER_CONFIGS = [
        MitbihConfig(name="mlii", description="Lead MLII, 256-sample (0.71 s) window centred on the R peak."),
        MitbihConfig(
            name="two_leads",
            description="MLII and the record's second lead (V1, V2, V4 or V5), 256-sample window.",
            two_leads=True,
        ),
        MitbihConfig(
            name="mlii_rhythm",
            description="Lead MLII, 256-sample window centred on the R peak, and a rhythm channel: the annotated "
                        "R peaks within 5 s each side, one bump each, on a 10 s axis squeezed into the 256 samples.",
            rhythm_s=5.0,
        ),
        MitbihConfig(
            name="mlii_rhythm_relative",
            description="Config mlii_rhythm and a relative rhythm channel: the annotated R peaks within 4 of the "
                        "patient's mean RR intervals (over 5 min each side) each side, one bump each, on an axis "
                        "of 8 mean RR intervals squeezed into the 256 samples.",
            rhythm_s=5.0,
            relative_rhythm_beats=4.0,
        ),
        MitbihConfig(
            name="mlii_rhythm_intervals",
            description="Config mlii_rhythm_relative and two interval channels: the previous and the next RR "
                        "interval, each a box from R peak to R peak, on an axis of 4 of the patient's mean RR "
                        "intervals (2 each side) squeezed into the 256 samples; a box's width is the interval "
                        "over the mean RR.",
            rhythm_s=5.0,
            relative_rhythm_beats=4.0,
            interval_beats=2.0,
        ),
        MitbihConfig(
            name="two_leads_rhythm_relative",
            description="Config two_leads (MLII and the record's second lead) and the two rhythm channels of "
                        "config mlii_rhythm_relative.",
            two_leads=True,
            rhythm_s=5.0,
            relative_rhythm_beats=4.0,
        ),
        MitbihConfig(
            name="mlii_context",
            description="Lead MLII, 720-sample (2 s) window centred on the R peak: at usual heart rates it holds "
                        "the previous and the next beat, so a model sees the RR intervals that tell S beats apart.",
            before=360,
            after=360,
        ),
    ]
    DEFAULT_CONFIG_NAME = "mlii"

    def _example_features(self) -> dict:
        config = self.builder_config
        return {
            "signal": features.signal_feature(
                (config.before + config.after, (2 if config.two_leads else 1) + len(self._rhythm_channels()))),
            "label": tfds.features.ClassLabel(names=CLASSES),
            "record": tfds.features.Text(),
            "leads": tfds.features.Text(),
            "beat_index": np.int64,
            "sample": np.int64,
            "symbol": tfds.features.Text(),
            "rr_previous": np.float32,
            "rr_next": np.float32,
        }

    def _rhythm_channels(self) -> list[str]:
        """The names of the config's rhythm channels, the signal's columns after the leads."""
        config = self.builder_config
        return ((["rhythm"] if config.rhythm_s > 0 else [])
                + (["rhythm_relative"] if config.relative_rhythm_beats > 0 else [])
                + (["rr_before", "rr_after"] if config.interval_beats > 0 else []))

    def _split_generators(self, dl_manager: tfds.download.DownloadManager):
        config = self.builder_config
        root = self._locate_root(
            dl_manager, members=lambda name: name.rsplit("/", 1)[-1].split(".")[-1] in ("hea", "dat", "atr")
        )
        splits = {"train": config.train_records, "validation": config.validation_records, "test": config.test_records}
        records = [r for rs in splits.values() for r in rs]
        overlap = sorted({r for r in records if records.count(r) > 1})
        if overlap:
            raise ValueError(f"mitbih_arrhythmia/{config.name}: records {overlap} are in more than one split")
        missing = [root / f"{r}.{ext}" for r in records for ext in ("hea", "dat", "atr") if not (root / f"{r}.{ext}").is_file()]
        if missing:
            raise manual_download.ManualDataError(
                f"mitbih_arrhythmia: missing file(s) {', '.join(str(m) for m in missing[:5])}"
                f"{f' and {len(missing) - 5} more' if len(missing) > 5 else ''}: the split needs every record "
                f"of it. Download {SOURCE.archive_name} from {SOURCE.url}."
            )
        self._dropped = {}
        return {split: self._generate_examples(split, root, names) for split, names in splits.items()}

    def _read(self, root: pathlib.Path, name: str):
        """Signal (time, leads) with MLII first, lead names, and the reference annotation of one record."""
        import wfdb

        try:
            signal, record = readers.read_wfdb(root / name)
            readers.check_units(record.units, UNITS, name)
            readers.check_signal(signal, name)
        except readers.RecordError as err:
            # A de Chazal split is defined by its records: a bad record is an error, not a skip.
            raise ValueError(f"mitbih_arrhythmia: record {name} cannot be used: {err}") from err
        names = [str(n) for n in record.sig_name]
        if "MLII" not in names:
            raise ValueError(f"mitbih_arrhythmia: record {name} has no MLII lead (leads: {', '.join(names)})")
        if record.fs != SAMPLING_RATE:
            raise ValueError(f"mitbih_arrhythmia: record {name} is sampled at {record.fs} Hz, expected {SAMPLING_RATE}")
        order = [names.index("MLII")] + [i for i in range(len(names)) if names[i] != "MLII"]
        if self.builder_config.two_leads:
            if len(order) < 2:
                raise ValueError(f"mitbih_arrhythmia: record {name} has a single lead, config two_leads needs two")
            order = order[:2]
        else:
            order = order[:1]
        try:
            annotation = wfdb.rdann(str(root / name), "atr")
        except Exception as err:
            raise ValueError(f"mitbih_arrhythmia: unreadable annotation file {root / name}.atr: {err}") from err
        return signal[:, order], [names[i] for i in order], annotation

    def _generate_examples(self, split: str, root: pathlib.Path, names: tuple[str, ...]):
        config = self.builder_config
        sample_id = 0
        dropped = 0
        for name in sorted(names):
            signal, leads, annotation = self._read(root, name)
            self.skip_log.considered += 1
            samples = np.asarray(annotation.sample, dtype=np.int64)
            beats = [i for i, s in enumerate(annotation.symbol) if s in AAMI]
            beat_samples = samples[beats]
            for position, index in enumerate(beats):
                peak = int(samples[index])
                start, stop = peak - config.before, peak + config.after
                if start < 0 or stop > signal.shape[0]:
                    dropped += 1
                    continue
                before_peak = int(beat_samples[position - 1]) if position > 0 else None  # the neighbouring R peaks
                after_peak = int(beat_samples[position + 1]) if position + 1 < len(beats) else None
                previous = (peak - before_peak) / SAMPLING_RATE if before_peak is not None else 0.0
                following = (after_peak - peak) / SAMPLING_RATE if after_peak is not None else 0.0
                window = signal[start:stop]
                rhythms = []
                if config.rhythm_s > 0:
                    rhythms.append(rhythm_channel(peak, beat_samples, len(window), round(config.rhythm_s * SAMPLING_RATE)))
                if config.relative_rhythm_beats > 0 or config.interval_beats > 0:
                    rr = mean_rr(peak, beat_samples, round(RELATIVE_RR_SPAN_S * SAMPLING_RATE))
                if config.relative_rhythm_beats > 0:
                    rhythms.append(rhythm_channel(peak, beat_samples, len(window), round(config.relative_rhythm_beats * rr)))
                if config.interval_beats > 0:
                    half_width = round(config.interval_beats * rr)
                    rhythms.append(interval_channel(before_peak, peak, peak, len(window), half_width))
                    rhythms.append(interval_channel(peak, after_peak, peak, len(window), half_width))
                if rhythms:
                    window = np.concatenate([window, np.stack(rhythms, axis=1)], axis=1)
                yield f"{name}_{index}", {
                    "sample_id": sample_id,
                    "signal": window,
                    "label": AAMI[annotation.symbol[index]],
                    "record": name,
                    "leads": ",".join(leads + self._rhythm_channels()),
                    "beat_index": index,
                    "sample": peak,
                    "symbol": annotation.symbol[index],
                    "rr_previous": np.float32(previous),
                    "rr_next": np.float32(following),
                }
                sample_id += 1
        self._dropped[split] = dropped

    def _finish_skips(self) -> None:
        super()._finish_skips()
        if isinstance(self.info.metadata, dict):
            self.info.metadata["dropped_edge_beats"] = dict(self._dropped)
