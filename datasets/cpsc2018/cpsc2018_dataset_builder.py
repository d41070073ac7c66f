"""cpsc2018: CPSC 2018, 12-lead 500 Hz ECGs, as released in the PhysioNet/CinC Challenge 2020 (manual download).

Records ``A0001``-``A6877``: a WFDB header with a ``#Dx:`` line of SNOMED-CT
codes and a MATLAB v4 signal (``val``, int16, 12 x length). Label: the ERTS
reference's 8 unified classes (NORM, AF, LBBB, RBBB, ST, AVB, PVC, OTHER),
first mapped code in header order wins, unknown codes are OTHER; plus the
8-class ``multi_hot``. Stratified 80/10/10 split with seed 42 over the records
sorted by name (the reference's ``train_test_split`` calls). Signals are in
millivolts, cropped from the start or zero-padded at the end to the config's
length; ``num_samples`` keeps the original length.
"""

from __future__ import annotations

from erts_tf.data import physionet
import tensorflow_datasets as tfds

SOURCE = physionet.Source(
    dataset="cpsc2018",
    title="PhysioNet/CinC Challenge 2020 training data, CPSC 2018 (cpsc_2018)",
    url="https://physionet.org/content/challenge-2020/1.0.2/",
    archive_name="classification-of-12-lead-ecgs-the-physionetcomputing-in-cardiology-challenge-2020-1.0.2.zip",
    archive_patterns=(
        "*cpsc*",
        "classification-of-12-lead-ecgs*",
        "*challenge-2020*",
        "*challenge-2021*",
    ),
)


class Builder(physionet.Challenge2020Builder):
    """DatasetBuilder for cpsc2018."""

    SOURCE = SOURCE
    RECORD_REGEX = r"A\d{4}"
    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "Initial release: 8 unified classes, multi_hot, 10 s and paper_crop (2 s) configs."}
    MANUAL_DOWNLOAD_INSTRUCTIONS = f"""\
    Download the PhysioNet/CinC Challenge 2020 training data from {SOURCE.url}
    ({SOURCE.archive_name}, or only its training/cpsc_2018/ folder, or the
    Challenge's CPSC tarball, e.g. PhysioNetChallenge2020_Training_CPSC.tar.gz)
    and put the archive, unchanged, or the extracted folder in manual_dir.
    Records A0001-A6877 (.hea + .mat) are found in any sub-folder (g1/, g2/ ...).
    """
    BUILDER_CONFIGS = [
        physionet.Challenge2020Config(name="10s", description="First 10 s (5000 samples), zero-padded.", length=5000),
        physionet.Challenge2020Config(
            name="paper_crop",
            description="The reference's cut: first 1000 samples (2 s), zero-padded.",
            length=1000,
        ),
    ]
    DEFAULT_CONFIG_NAME = "10s"

