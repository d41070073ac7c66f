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

import tensorflow_datasets as tfds

from erts_tf.data.physionet import challenge2020

SOURCE = challenge2020.source("cpsc2018", "CPSC 2018 (cpsc_2018)", ("*cpsc*",))


class Builder(challenge2020.Challenge2020Builder):
    """DatasetBuilder for cpsc2018."""

    SOURCE = SOURCE
    RECORD_REGEX = r"A\d{4}"
    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "Initial release: 8 unified classes, multi_hot, 10 s and paper_crop (2 s) configs."}
    MANUAL_DOWNLOAD_INSTRUCTIONS = challenge2020.manual_download_instructions(
        "cpsc_2018", "CPSC tarball, e.g. PhysioNetChallenge2020_Training_CPSC.tar.gz", "A0001-A6877"
    )
    BUILDER_CONFIGS = [
        challenge2020.Challenge2020Config(
            name="10s", description="First 10 s (5000 samples), zero-padded.", length=5000
        ),
        challenge2020.Challenge2020Config(
            name="paper_crop",
            description="The reference's cut: first 1000 samples (2 s), zero-padded.",
            length=1000,
        ),
        challenge2020.Challenge2020Config(
            name="full", description="Whole recordings (6-60 s), unpadded: train on windows (--window_s).",
            length=None,
        ),
    ]
    DEFAULT_CONFIG_NAME = "10s"

