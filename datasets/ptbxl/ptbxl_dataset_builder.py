"""ptbxl: PTB-XL 1.0.3, 12-lead 10 s ECGs with SCP-ECG statements (manual download).

Label: the ERTS reference's single label, the diagnostic superclass (NORM, MI,
STTC, CD, HYP) of the SCP statement with the highest likelihood among the
record's statements with ``diagnostic == 1`` in ``scp_statements.csv``
(likelihood 0 still counts, ties go to the first code in the record's
``scp_codes`` order, records with no diagnostic statement become NORM). Also
the multi-hot of all diagnostic superclasses, the signal-quality flags and
the official folds (1-8 train, 9 validation, 10 test). Signals are in
millivolts, as ``wfdb`` reads them (every PTB-XL header declares mV).

Multi-label targets, the label sets of the PTB-XL benchmark (Strodthoff et al.
2021, helme/ecg_ptbxl_benchmarking), each a multi-hot over the statements of
``scp_statements.csv`` that define it, whatever the likelihood:
``superclasses`` (5, superdiagnostic), ``diagnostic`` (44, ``diagnostic == 1``),
``rhythm`` (12, ``rhythm == 1``) and ``all_statements`` (71, every statement).
Their class names are in ``info.metadata["label_sets"]``. Nothing is dropped
here: a record with no statement of a set has an all-zero row, and the
benchmark's rules (a class is kept if it occurs; records without a kept class
are left out) are applied when a run loads the set (``--min_label_count``).
"""

from __future__ import annotations

import ast
import dataclasses
import pathlib

import numpy as np
import pandas as pd
import tensorflow_datasets as tfds

from erts_tf.data.physionet import builder_base, features, manual_download, readers

SUPERCLASSES = ("NORM", "MI", "STTC", "CD", "HYP")
# The statements of PTB-XL 1.0.3's scp_statements.csv, in its row order: diagnostic == 1 (44), rhythm == 1 (12),
# and all (71; the diagnostic ones, then form, then rhythm).
DIAGNOSTIC = (
    "NDT", "NST_", "DIG", "LNGQT", "NORM", "IMI", "ASMI", "LVH", "LAFB", "ISC_", "IRBBB", "1AVB", "IVCD", "ISCAL",
    "CRBBB", "CLBBB", "ILMI", "LAO/LAE", "AMI", "ALMI", "ISCIN", "INJAS", "LMI", "ISCIL", "LPFB", "ISCAS", "INJAL",
    "ISCLA", "RVH", "ANEUR", "RAO/RAE", "EL", "WPW", "ILBBB", "IPLMI", "ISCAN", "IPMI", "SEHYP", "INJIN", "INJLA",
    "PMI", "3AVB", "INJIL", "2AVB",
)  # fmt: skip
FORM_ONLY = ("ABQRS", "PVC", "STD_", "VCLVH", "QWAVE", "LOWT", "NT_", "PAC", "LPR", "INVT", "LVOLT", "HVOLT", "TAB_",
             "STE_", "PRC(S)")  # fmt: skip
RHYTHM = ("SR", "AFIB", "STACH", "SARRH", "SBRAD", "PACE", "SVARR", "BIGU", "AFLT", "SVTAC", "PSVT", "TRIGU")
ALL_STATEMENTS = DIAGNOSTIC + FORM_ONLY + RHYTHM
# feature name -> (class names, what defines the set; the benchmark's name)
LABEL_SETS = {
    "superclasses": (SUPERCLASSES, "diagnostic_class of the statements with diagnostic == 1 (superdiagnostic)"),
    "diagnostic": (DIAGNOSTIC, "statements with diagnostic == 1 (diagnostic)"),
    "rhythm": (RHYTHM, "statements with rhythm == 1 (rhythm)"),
    "all_statements": (ALL_STATEMENTS, "every statement of scp_statements.csv (all)"),
}
LEADS = ("I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6")
UNITS = "mV"  # physical units of the signal as wfdb reads it; records in other units are skipped
QUALITY_FLAGS = ("baseline_drift", "static_noise", "burst_noise", "electrodes_problems")
FOLD_TO_SPLIT = {**{f: "train" for f in range(1, 9)}, 9: "validation", 10: "test"}

SOURCE = manual_download.Source(
    dataset="ptbxl",
    title="PTB-XL 1.0.3",
    url="https://physionet.org/content/ptb-xl/1.0.3/",
    archive_name="ptb-xl-a-large-publicly-available-electrocardiography-dataset-1.0.3.zip",
    archive_patterns=("ptb-xl*.zip", "ptb-xl*.tar.gz", "ptbxl*.zip"),
    markers=("ptbxl_database.csv",),
)


def reference_label(scp_codes: dict, diagnostic_class: dict) -> str:
    """The reference's single label (see the module docstring)."""
    best, best_likelihood = None, -1.0
    for code, likelihood in scp_codes.items():
        superclass = diagnostic_class.get(code)
        if superclass in SUPERCLASSES and likelihood > best_likelihood:
            best, best_likelihood = superclass, likelihood
    return best if best is not None else "NORM"


def superclass_multi_hot(scp_codes: dict, diagnostic_class: dict) -> np.ndarray:
    """Multi-hot (NORM, MI, STTC, CD, HYP) of every diagnostic statement of the record, any likelihood."""
    hot = np.zeros(len(SUPERCLASSES), dtype=np.int8)
    for code in scp_codes:
        superclass = diagnostic_class.get(code)
        if superclass in SUPERCLASSES:
            hot[SUPERCLASSES.index(superclass)] = 1
    return hot


def statement_multi_hot(scp_codes: dict, statements: tuple, defined: set) -> np.ndarray:
    """Multi-hot over ``statements`` of the record's codes that ``scp_statements.csv`` puts in the set
    (``defined``), any likelihood."""
    hot = np.zeros(len(statements), dtype=np.int8)
    for code in scp_codes:
        if code in defined:
            hot[statements.index(code)] = 1
    return hot


def read_statement_sets(path: pathlib.Path) -> dict:
    """``{"diagnostic", "rhythm", "all_statements": set of codes}`` as ``scp_statements.csv`` defines them;
    ``ManualDataError`` for a statement the label sets of this builder do not know (another PTB-XL release)."""
    table = pd.read_csv(path, index_col=0)
    missing = {"diagnostic", "rhythm"} - set(table.columns)
    if missing:
        raise manual_download.ManualDataError(f"ptbxl: {path} lacks the column(s) {', '.join(sorted(missing))}")
    sets = {
        "diagnostic": {str(c) for c in table.index[table["diagnostic"] == 1]},
        "rhythm": {str(c) for c in table.index[table["rhythm"] == 1]},
        "all_statements": {str(c) for c in table.index},
    }
    for name, codes in sets.items():
        unknown = sorted(codes - set(LABEL_SETS[name][0]))
        if unknown:
            raise manual_download.ManualDataError(
                f"ptbxl: {path} puts {', '.join(unknown)} in the {name} statements, which PTB-XL 1.0.3 does not "
                f"({len(LABEL_SETS[name][0])} statements); this builder reads PTB-XL 1.0.3")
    return sets


def read_diagnostic_classes(path: pathlib.Path) -> dict:
    """``{scp code: diagnostic superclass}`` for the statements with ``diagnostic == 1``."""
    table = pd.read_csv(path, index_col=0)
    missing = {"diagnostic", "diagnostic_class"} - set(table.columns)
    if missing:
        raise manual_download.ManualDataError(f"ptbxl: {path} lacks the column(s) {', '.join(sorted(missing))}")
    table = table[table["diagnostic"] == 1]
    return {str(code): str(cls) for code, cls in table["diagnostic_class"].items()}


def read_database(path: pathlib.Path) -> pd.DataFrame:
    """``ptbxl_database.csv`` with ``scp_codes`` parsed and flags as raw strings ('' when empty)."""
    table = pd.read_csv(path, keep_default_na=False, dtype=str)
    needed = {"ecg_id", "patient_id", "scp_codes", "strat_fold", "filename_lr", "filename_hr", *QUALITY_FLAGS}
    missing = needed - set(table.columns)
    if missing:
        raise manual_download.ManualDataError(f"ptbxl: {path} lacks the column(s) {', '.join(sorted(missing))}")
    table["ecg_id"] = table["ecg_id"].astype(float).astype(np.int64)
    table["patient_id"] = pd.to_numeric(table["patient_id"]).fillna(-1).astype(np.int64)
    table["strat_fold"] = table["strat_fold"].astype(float).astype(np.int64)
    table["scp_codes_dict"] = table["scp_codes"].map(ast.literal_eval)
    return table.sort_values("ecg_id").reset_index(drop=True)


@dataclasses.dataclass
class PtbxlConfig(tfds.core.BuilderConfig):
    """Sampling rate (selects records100/ or records500/ and the signal length)."""

    sampling_rate: int = 100
    records_dir: str = "records100"
    filename_column: str = "filename_lr"
    length: int = 1000


class Builder(builder_base.PhysioNetBuilder):
    """DatasetBuilder for ptbxl."""

    SOURCE = SOURCE
    VERSION = tfds.core.Version("1.1.0")
    RELEASE_NOTES = {
        "1.0.0": "Initial release: reference single label, superclass multi-hot, quality flags, folds 1-8/9/10.",
        "1.1.0": "The PTB-XL benchmark's label sets as multi-hot features: diagnostic (44 statements), rhythm (12), "
                 "all_statements (71), beside superclasses (5); their class names in info.metadata['label_sets'].",
    }
    MANUAL_DOWNLOAD_INSTRUCTIONS = f"""\
    Download PTB-XL 1.0.3 from {SOURCE.url}
    ("Download the ZIP file": {SOURCE.archive_name}) and put the zip, unchanged,
    or the folder extracted from it (holding ptbxl_database.csv,
    scp_statements.csv, records100/ and records500/) in manual_dir.
    Config 100hz reads only records100/, config 500hz only records500/.
    """
    BUILDER_CONFIGS = [
        PtbxlConfig(name="100hz", description="100 Hz records (records100/): signal (1000, 12)."),
        PtbxlConfig(
            name="500hz",
            description="500 Hz records (records500/): signal (5000, 12).",
            sampling_rate=500,
            records_dir="records500",
            filename_column="filename_hr",
            length=5000,
        ),
    ]
    DEFAULT_CONFIG_NAME = "100hz"

    def _example_features(self) -> dict:
        return {
            "ecg_id": np.int64,
            "patient_id": np.int64,
            "strat_fold": np.int64,
            "signal": features.signal_feature((self.builder_config.length, 12)),
            "label": tfds.features.ClassLabel(names=SUPERCLASSES),
            **{name: tfds.features.Tensor(shape=(len(names),), dtype=np.int8) for name, (names, _) in LABEL_SETS.items()},
            "has_diagnostic_label": np.bool_,
            "scp_codes": tfds.features.Text(),
            **{flag: np.bool_ for flag in QUALITY_FLAGS},
        }

    def _info(self) -> tfds.core.DatasetInfo:
        info = super()._info()
        info.metadata["label_sets"] = {name: {"names": list(names), "definition": definition}
                                       for name, (names, definition) in LABEL_SETS.items()}
        return info

    def _split_generators(self, dl_manager: tfds.download.DownloadManager):
        config = self.builder_config
        skip_dir = "records500" if config.records_dir == "records100" else "records100"
        root = self._locate_root(
            dl_manager, members=lambda name: f"/{skip_dir}/" not in f"/{name}", cache_key=config.records_dir
        )
        for name in ("ptbxl_database.csv", "scp_statements.csv"):
            if not (root / name).is_file():
                raise manual_download.ManualDataError(
                    f"ptbxl: missing file {root / name}, part of {SOURCE.title}; download "
                    f"{SOURCE.archive_name} from {SOURCE.url}."
                )
        records_dir = root / config.records_dir
        if not records_dir.is_dir():
            raise manual_download.ManualDataError(
                f"ptbxl/{config.name}: missing folder {records_dir}: the {config.sampling_rate} Hz records "
                f"({config.records_dir}/NNNNN/NNNNN_{'lr' if config.sampling_rate == 100 else 'hr'}.hea/.dat) are not "
                f"in {root}. Download the complete {SOURCE.title}, {SOURCE.archive_name}, from {SOURCE.url} "
                "(subsets such as ptb-xl-1.0.3-every5th.zip hold only records100/)."
            )
        diagnostic_class = read_diagnostic_classes(root / "scp_statements.csv")
        statement_sets = read_statement_sets(root / "scp_statements.csv")
        table = read_database(root / "ptbxl_database.csv")
        self._check_files(root, table)
        self._total_records = len(table)
        unknown_folds = sorted(set(table["strat_fold"]) - set(FOLD_TO_SPLIT))
        if unknown_folds:
            raise manual_download.ManualDataError(f"ptbxl: strat_fold values {unknown_folds} in ptbxl_database.csv")
        split_of = table["strat_fold"].map(FOLD_TO_SPLIT)
        return {
            split: self._generate_examples(split, root, table[split_of == split], diagnostic_class, statement_sets)
            for split in ("train", "validation", "test")
        }

    def _check_files(self, root: pathlib.Path, table: pd.DataFrame) -> None:
        """Fails before writing anything when too many records' files are missing."""
        column = self.builder_config.filename_column
        missing = [
            f"{root / stem}{ext}"
            for stem in table[column]
            for ext in (".hea", ".dat")
            if not (root / f"{stem}{ext}").is_file()
        ]
        records = {m.rsplit(".", 1)[0] for m in missing}
        if len(records) > self.max_skip_fraction * len(table):
            raise manual_download.ManualDataError(
                f"ptbxl/{self.builder_config.name}: the files of {len(records)} of the {len(table)} records listed in "
                f"ptbxl_database.csv are missing (more than max_skip_fraction={self.max_skip_fraction:g}), e.g. "
                f"{', '.join(missing[:3])}. Nothing was written. Download the complete {SOURCE.title}, "
                f"{SOURCE.archive_name}, from {SOURCE.url}."
            )

    def _generate_examples(self, split: str, root: pathlib.Path, rows: pd.DataFrame, diagnostic_class: dict,
                           statement_sets: dict):
        config = self.builder_config

        def make_example(row) -> dict:
            record = row[config.filename_column]
            signal, header = readers.read_wfdb(root / record)
            if header.fs != config.sampling_rate:
                raise readers.RecordError(f"{record}.hea declares {header.fs} Hz, expected {config.sampling_rate}")
            readers.check_units(header.units, UNITS, record)
            signal = readers.order_leads(signal, header.sig_name, LEADS, record)
            if signal.shape[0] != config.length:
                raise readers.RecordError(
                    f"record {record}: {signal.shape[0]} samples, expected {config.length}"
                )
            readers.check_signal(signal, record)
            scp_codes = row["scp_codes_dict"]
            hot = superclass_multi_hot(scp_codes, diagnostic_class)
            return {
                "ecg_id": row["ecg_id"],
                "patient_id": row["patient_id"],
                "strat_fold": row["strat_fold"],
                "signal": signal,
                "label": reference_label(scp_codes, diagnostic_class),
                "superclasses": hot,
                **{name: statement_multi_hot(scp_codes, LABEL_SETS[name][0], codes)
                   for name, codes in statement_sets.items()},
                "has_diagnostic_label": bool(hot.any()),
                "scp_codes": row["scp_codes"],
                **{flag: row[flag] != "" for flag in QUALITY_FLAGS},
            }

        records = [row for _, row in rows.iterrows()]
        yield from self._iterate_records(split, records, make_example, name_of=lambda row: str(row["ecg_id"]))
