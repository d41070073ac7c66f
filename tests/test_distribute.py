"""tf.distribute: MirroredStrategy over 2 logical CPUs and MultiWorkerMirroredStrategy with 2
localhost workers select exactly what one device selects, and every worker holds the same mask;
under both, ``--ema_momentum`` averages the weights as one device does.

Each run is a subprocess (``distributed_worker.py``): logical devices can only be configured
before TensorFlow initialises.
"""

import csv
import json
import os
import re
import socket
import subprocess
import sys

import numpy as np
import pytest

WORKER = os.path.join(os.path.dirname(__file__), "distributed_worker.py")
ARGS = [
    "--dataset=synthetic_ecg", "--dataset_config=tiny", "--model=tiny_cnn", "--mode=erts",
    "--epochs=5", "--batch_size=16", "--warm_up_epochs=1", "--cam_start_epoch=1", "--start_revision=-1",
    "--rescore_every=1", "--tau=0.5", "--verbose=0", "--seed=5", "--noreport", "--tensorboard_images_every=0",
]
READS = re.compile(r"epoch (\d+): this worker read (\d+) records, all workers (\d+)")
CRC = re.compile(r"epoch (\d+): kept (\d+) of \d+ \([^)]*\), keep-mask crc32 ([0-9a-f]{8})")


def _command(out, tfds_dir, *extra):
    return [sys.executable, WORKER, *ARGS, f"--data_dir={tfds_dir}", f"--output_dir={out}", *extra]


def _run(out, tfds_dir, *extra):
    done = subprocess.run(_command(out, tfds_dir, *extra), capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads((out / "summary.json").read_text())


def _masks(summary):
    """Per epoch: (kept count, crc32 of the keep-mask)."""
    return [(e["epoch"], e["kept"], e["keep_crc32"]) for e in summary["epochs"]]


def _decisions(out):
    with open(out / "audit.csv") as f:
        rows = list(csv.DictReader(f))
    return [(r["epoch"], r["sample_id"], r["decision"], r["reason"]) for r in rows], [float(r["p_true"]) for r in rows]


@pytest.fixture(scope="module")
def single_device(tmp_path_factory, tfds_dir, tiny_data):
    out = tmp_path_factory.mktemp("dist") / "single"
    return out, _run(out, tfds_dir, "--logical_cpus=2")


def test_mirrored_two_replicas_select_what_one_device_selects(single_device, tmp_path, tfds_dir):
    single_out, single = single_device
    out = tmp_path / "mirrored"
    mirrored = _run(out, tfds_dir, "--logical_cpus=2", "--strategy=mirrored")
    assert mirrored["distribution"]["replicas"] == 2
    assert single["distribution"]["replicas"] == 1
    assert _masks(mirrored) == _masks(single)
    assert len({m[2] for m in _masks(single)}) > 2  # the mask did change over the epochs
    decisions, p_true = _decisions(out)
    single_decisions, single_p_true = _decisions(single_out)
    assert decisions == single_decisions
    assert max(abs(a - b) for a, b in zip(p_true, single_p_true)) < 1e-3
    for key in ("samples_read", "forward_train", "forward_score", "gradcam", "backward", "optimizer_steps"):
        assert mirrored["cost"][key] == single["cost"][key], key


EMA = ["--mode=full", "--epochs=3", "--lr=3e-3", "--keep_weights=last", "--ema_momentum=0.8"]


@pytest.fixture(scope="module")
def single_device_average(tmp_path_factory, tfds_dir, tiny_data):
    """One device's ``--ema_momentum`` run, and a mirrored run of the same flags without the average."""
    root = tmp_path_factory.mktemp("average")
    single = _run(root / "single", tfds_dir, "--logical_cpus=2", *EMA)
    _run(root / "raw", tfds_dir, "--logical_cpus=2", "--strategy=mirrored", *EMA[:-1])
    return root, single


def _check_averaged_as_one_device(out, single_device_average, signal):
    """The run in ``out`` saved the moving average one device keeps and validated it every epoch
    (test_weight_average checks that one device's is the true average)."""
    from erts_tf import run_folder

    root, single = single_device_average
    summary = json.loads((out / "summary.json").read_text())
    averaged, one_device, trained = (run_folder.load_model(str(folder)).predict(signal, verbose=0)
                                     for folder in (out, root / "single", root / "raw"))
    # weights match to float summation order, except a bias under batch norm that has no gradient and no
    # effect: compare what the models compute
    np.testing.assert_allclose(averaged, one_device, atol=1e-3)  # measured: 1.5e-4 in the logits (mirrored)
    assert np.abs(averaged - trained).max() > 0.05  # the average is not the raw weights (measured: 0.22)
    val = [e["val_macro_f1"] for e in summary["epochs"]]
    assert val == pytest.approx([e["val_macro_f1"] for e in single["epochs"]], abs=1e-6)
    assert summary["validation"]["macro_f1"] == pytest.approx(val[-1], abs=1e-6)


def test_mirrored_two_replicas_average_the_weights_as_one_device_does(single_device_average, tmp_path, tfds_dir,
                                                                      tiny_data):
    """``--ema_momentum`` under MirroredStrategy."""
    mirrored = _run(tmp_path / "mirrored", tfds_dir, "--logical_cpus=2", "--strategy=mirrored", *EMA)
    assert mirrored["distribution"]["replicas"] == 2
    _check_averaged_as_one_device(tmp_path / "mirrored", single_device_average, tiny_data.test.signal)


def _free_ports(n):
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("localhost", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def _multiworker(out, tmp_path, tfds_dir, *extra):
    """Two localhost workers training into ``out`` (the chief's folder); their stderr logs."""
    cluster = {"worker": [f"localhost:{p}" for p in _free_ports(2)]}
    processes = []
    for index in range(2):
        env = dict(os.environ, TF_CONFIG=json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}}))
        output_dir = out if index == 0 else tmp_path / "worker1"
        processes.append(subprocess.Popen(_command(output_dir, tfds_dir, "--strategy=multiworker", *extra), env=env,
                                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    stderrs = []
    for process in processes:
        _, stderr = process.communicate(timeout=900)
        assert process.returncode == 0, stderr[-3000:]
        stderrs.append(stderr)
    assert not (tmp_path / "worker1").exists()  # a worker that is not the chief writes no run folder
    chief = json.loads((out / "summary.json").read_text())
    assert chief["distribution"] == {"strategy": "multiworker", "replicas": 2, "workers": 2}
    return stderrs


def test_multiworker_two_processes_select_what_one_device_selects(single_device, tmp_path, tfds_dir):
    _, single = single_device
    out = tmp_path / "multiworker"
    stderrs = _multiworker(out, tmp_path, tfds_dir)
    logs = [CRC.findall(stderr) for stderr in stderrs]
    chief = json.loads((out / "summary.json").read_text())
    expected = [(str(e), str(k), f"{c:08x}") for e, k, c in _masks(single)]
    assert logs[0] == logs[1] == expected  # both workers hold the single-device mask in every epoch
    assert _masks(chief) == _masks(single)
    assert sorted(os.listdir(out)) == sorted(os.listdir(single_device[0]))
    # each worker reads only its share of the kept records; re-scoring (every selection epoch here) on both
    reads = [[(int(e), int(mine), int(every)) for e, mine, every in READS.findall(log)] for log in stderrs]
    for (epoch, mine0, every), (_, mine1, every1), single_epoch in zip(*reads, single["epochs"], strict=True):
        trained = single_epoch["forward_train"]  # the kept records, read once by one of the workers
        rescored = single_epoch["samples_read"] - trained
        assert every == every1 == mine0 + mine1 == trained + 2 * rescored, epoch
        assert mine0 - rescored < trained and mine1 - rescored < trained  # neither worker read every kept record
        assert chief["epochs"][epoch]["samples_read"] == every


def test_multiworker_two_processes_average_the_weights_as_one_device_does(single_device_average, tmp_path, tfds_dir,
                                                                           tiny_data):
    """``--ema_momentum`` under MultiWorkerMirroredStrategy: the chief saves the average one device keeps."""
    _multiworker(tmp_path / "multiworker", tmp_path, tfds_dir, *EMA)
    _check_averaged_as_one_device(tmp_path / "multiworker", single_device_average, tiny_data.test.signal)


def test_multiworker_without_tf_config_is_a_clear_error(tiny_config, tiny_data, monkeypatch):
    from erts_tf.training import run

    monkeypatch.delenv("TF_CONFIG", raising=False)
    with pytest.raises(run.RunError, match="TF_CONFIG"):
        run.run(tiny_config(strategy="multiworker"), tiny_data)
