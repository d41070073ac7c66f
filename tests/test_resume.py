"""A run killed after an epoch resumes with exactly the decisions of an uninterrupted run."""

import csv
import json
import signal
import subprocess
import sys
import time

ARGS = [
    "--dataset=synthetic_ecg", "--dataset_config=tiny", "--model=resnet1d", "--mode=erts_smrd",
    "--epochs=6", "--batch_size=16", "--warm_up_epochs=1", "--cam_start_epoch=1", "--start_revision=5",
    "--rescore_every=2", "--tau=0.5", "--verbose=0", "--seed=3",
]


def _train(out, data_dir, *extra):
    return [sys.executable, "-m", "erts_tf.train", *ARGS, f"--data_dir={data_dir}", f"--output_dir={out}", *extra]


def _finished_epoch(out):
    try:
        return json.loads((out / "progress.json").read_text())["finished_epoch"]
    except (FileNotFoundError, json.JSONDecodeError):
        return -1


def _audit(out):
    with open(out / "audit.csv") as f:
        return [tuple(r) for r in csv.reader(f)]


def test_killed_run_resumes_with_identical_keep_masks(tmp_path, tiny_data, tfds_dir):
    reference = tmp_path / "reference"
    subprocess.run(_train(reference, tfds_dir), check=True, capture_output=True, timeout=600)

    killed = tmp_path / "killed"
    process = subprocess.Popen(_train(killed, tfds_dir), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 600
    while _finished_epoch(killed) < 2 and process.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    stopped_after = _finished_epoch(killed)
    assert 2 <= stopped_after < 5, "the run was not interrupted in the middle"
    assert not (killed / "summary.json").exists()

    config_before = (killed / "config.json").read_text()
    subprocess.run(_train(killed, tfds_dir, "--resume"), check=True, capture_output=True, timeout=600)
    assert (killed / "config.json").read_text() == config_before  # the original settings are kept
    (resume,) = json.loads((killed / "resumes.json").read_text())  # each resume is recorded
    assert resume["from_epoch"] == stopped_after + 1 and resume["time"] and resume["changed"]["resume"] is True

    rows_ref, rows_resumed = _audit(reference), _audit(killed)
    assert len(rows_resumed) == len(set(rows_resumed)), "audit.csv has duplicate rows"
    assert rows_resumed == rows_ref  # every decision (and its scores) equal, epoch by epoch
    ref = json.loads((reference / "summary.json").read_text())
    resumed = json.loads((killed / "summary.json").read_text())
    masks = [(e["kept"], e["keep_crc32"]) for e in ref["epochs"]]
    assert [(e["kept"], e["keep_crc32"]) for e in resumed["epochs"]] == masks  # the whole keep-mask, epoch by epoch
    assert len(set(masks)) > 2
    assert [e["epoch"] for e in resumed["epochs"]] == list(range(6))
    assert resumed["test"]["macro_f1"] == ref["test"]["macro_f1"]
