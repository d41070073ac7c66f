"""georgia: Georgia 12-lead ECG Challenge Database (PhysioNet/CinC Challenge 2020), 500 Hz (manual download).

Records ``E00001``-``E10344``: a WFDB header with a ``#Dx:`` line of SNOMED-CT
codes and a MATLAB v4 signal (``val``, int16, 12 x length). Label: the ERTS
reference's 8 unified classes (NORM, AF, LBBB, RBBB, ST, AVB, PVC, OTHER),
first mapped code in header order wins, unknown codes are OTHER; plus the
8-class ``multi_hot``. Stratified 80/10/10 split with seed 42 over the records
sorted by name (the reference's ``train_test_split`` calls). Signals are in
millivolts, cropped from the start or zero-padded at the end to the config's
length (the reference's Georgia loader keeps the first 5000 samples: config
``10s``); ``num_samples`` keeps the original length.
"""

from __future__ import annotations

from erts_tf.data import physionet
import tensorflow_datasets as tfds

SOURCE = physionet.Source(
    dataset="georgia",
    title="PhysioNet/CinC Challenge 2020 training data, Georgia 12-lead ECG Challenge Database (georgia)",
    url="https://physionet.org/content/challenge-2020/1.0.2/",
    archive_name="classification-of-12-lead-ecgs-the-physionetcomputing-in-cardiology-challenge-2020-1.0.2.zip",
    archive_patterns=(
        "*georgia*",
        "wfdb_ga*",
        "*training_e.*",
        "classification-of-12-lead-ecgs*",
        "*challenge-2020*",
        "*challenge-2021*",
    ),
)


class Builder(physionet.Challenge2020Builder):
    """DatasetBuilder for georgia."""

    SOURCE = SOURCE
    RECORD_REGEX = r"E\d{5}"
    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "Initial release: 8 unified classes, multi_hot, 10 s (reference) and 2 s configs."}
    MANUAL_DOWNLOAD_INSTRUCTIONS = f"""\
    Download the PhysioNet/CinC Challenge 2020 training data from {SOURCE.url}
    ({SOURCE.archive_name}, or only its training/georgia/ folder, or the
    Challenge's Georgia tarball, e.g. PhysioNetChallenge2020_Training_E.tar.gz)
    and put the archive, unchanged, or the extracted folder in manual_dir.
    Records E00001-E10344 (.hea + .mat) are found in any sub-folder (g1/, g2/ ...).
    """
    BUILDER_CONFIGS = [
        physionet.Challenge2020Config(
            name="10s", description="First 10 s (5000 samples), zero-padded: the reference's cut.", length=5000
        ),
        physionet.Challenge2020Config(
            name="2s", description="First 2 s (1000 samples), like the reference's CPSC cut.", length=1000
        ),
    ]
    DEFAULT_CONFIG_NAME = "10s"

