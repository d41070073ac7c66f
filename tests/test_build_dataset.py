"""``python -m erts_tf.build_dataset``: ``tfds build`` for the datasets of ``datasets/``.

The command runs in a subprocess, as a user runs it (its flags are defined only
when it runs). Every build goes to a temporary ``--data_dir``.
"""

import os
import pathlib
import shutil
import subprocess
import sys

import pytest
import tensorflow_datasets as tfds

REPO = pathlib.Path(__file__).resolve().parents[1]


def _build(*args, cwd=REPO):
    env = {k: v for k, v in os.environ.items() if k != "ERTS_TF_DATASETS"}
    return subprocess.run([sys.executable, "-m", "erts_tf.build_dataset", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=600)


def test_builds_by_folder_or_name_and_plain_tfds_loads_it(tmp_path):
    data_dir = tmp_path / "data"
    first = _build("datasets/synthetic_ecg", "--config=tiny", f"--data_dir={data_dir}")
    assert first.returncode == 0, first.stderr
    where = data_dir / "synthetic_ecg" / "tiny" / "1.0.0"
    assert f"synthetic_ecg/tiny/1.0.0 prepared in {where}: train 96, validation 32, test 32" in first.stdout

    assert tfds.builder("synthetic_ecg/tiny", data_dir=str(data_dir)).info.splits["train"].num_examples == 96
    test_split = tfds.load("synthetic_ecg/tiny", split="test", data_dir=str(data_dir), download=False)
    assert sum(1 for _ in test_split) == 32

    again = _build("synthetic_ecg", "-c", "tiny", f"--data_dir={data_dir}")
    assert again.returncode == 0, again.stderr
    assert f"synthetic_ecg/tiny/1.0.0 already prepared in {where}" in again.stdout

    rebuilt = _build("synthetic_ecg", "--config=tiny", f"--data_dir={data_dir}", "--overwrite")
    assert rebuilt.returncode == 0, rebuilt.stderr
    assert f"synthetic_ecg/tiny/1.0.0 prepared in {where}" in rebuilt.stdout


def test_a_folder_outside_datasets_builds_that_folders_builder(tmp_path):
    folder = tmp_path / "elsewhere" / "synthetic_ecg"
    shutil.copytree(REPO / "datasets" / "synthetic_ecg", folder, ignore=shutil.ignore_patterns("__pycache__"))
    (folder / "README.md").write_text("A copy of synthetic_ecg outside datasets/.\n")
    data_dir = tmp_path / "data"

    result = _build(str(folder), "--config=tiny", f"--data_dir={data_dir}", cwd=tmp_path)

    assert result.returncode == 0, result.stderr
    builder = tfds.builder_from_directory(str(data_dir / "synthetic_ecg" / "tiny" / "1.0.0"))
    assert builder.info.description.strip() == "A copy of synthetic_ecg outside datasets/."


@pytest.mark.parametrize("args, message", [
    (["no_such_dataset"], "error: unknown dataset 'no_such_dataset'"),
    (["synthetic_ecg", "--config=no_such_config"],
     "error: dataset 'synthetic_ecg' has no config 'no_such_config'; choose one of tiny, quickstart, benchmark"),
    (["datasets"], "error: unknown dataset 'datasets'"),
    (["./datasets"], "error: ./datasets is not a dataset folder: it holds no datasets_dataset_builder.py"),
    ([], "error: give one dataset: its folder (datasets/ptbxl) or its name (ptbxl)"),
    (["synthetic_ecg", "--no_such_flag"], "error: Unknown command line flag 'no_such_flag'"),
])
def test_bad_input_exits_2_with_one_line(args, message, tmp_path):
    result = _build(*args, f"--data_dir={tmp_path / 'data'}")

    assert result.returncode == 2
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and errors[0].startswith(message), result.stderr


def test_missing_manual_download_shows_the_builders_instructions(tmp_path):
    data_dir = tmp_path / "data"
    result = _build("ptbxl", "--config=100hz", f"--data_dir={data_dir}")

    assert result.returncode == 2
    error = [line for line in result.stderr.splitlines() if line.startswith("error: ")][0]
    assert error.startswith("error: ptbxl: the manual download directory is missing or empty")
    assert str(data_dir / "downloads" / "manual") in error  # tfds build's default manual_dir
    assert "with --manual_dir" in error  # the shipped configs name no archive folder
    assert "Download PTB-XL 1.0.3 from https://physionet.org/content/ptb-xl/1.0.3/" in error
    assert not (data_dir / "ptbxl" / "100hz" / "1.0.0" / "dataset_info.json").exists()


def test_too_many_bad_records_exit_2_with_one_line_and_write_nothing(tmp_path):
    sys.path.insert(0, str(REPO / "tests"))
    import physionet_dummy_data as dummy

    root = tmp_path / "manual" / "ptb-xl-dummy"
    dummy.write_ptbxl(root, per_fold=2, rates=(100,))
    for i in (1, 2, 3):  # truncated signal files: found while generating, 3 of 20 records > 2 %
        dat = pathlib.Path(f"{dummy.ptbxl_record(root, i)}.dat")
        dat.write_bytes(dat.read_bytes()[:10000])
    data_dir = tmp_path / "data"
    result = _build("ptbxl", "--config=100hz", f"--manual_dir={root.parent}", f"--data_dir={data_dir}")

    assert result.returncode == 2, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "skipped 3 of 20 records" in errors[0] and "nothing was written" in errors[0]
    assert "Traceback" not in result.stderr
    assert not (data_dir / "ptbxl" / "100hz" / "1.0.0" / "dataset_info.json").exists()


PREPARE_AT_ONCE = """
import pathlib, sys, time
from erts_tf.data import pipeline
me, other = pathlib.Path(sys.argv[2]), pathlib.Path(sys.argv[3])
me.touch()
while not other.exists():  # both processes are imported and ready: they call prepare within milliseconds
    time.sleep(0.01)
builder = pipeline.prepare("synthetic_ecg", "tiny", sys.argv[1])
print(builder.info.splits["train"].num_examples)
"""


def test_two_trainings_preparing_one_dataset_at_once_both_get_it(tmp_path):
    """Without a lock both build it, and the second fails to rename its copy into place (FileExistsError)."""
    env = {k: v for k, v in os.environ.items() if k != "ERTS_TF_DATASETS"}
    ready = [tmp_path / "ready0", tmp_path / "ready1"]
    processes = [subprocess.Popen([sys.executable, "-c", PREPARE_AT_ONCE, str(tmp_path / "tfds"),
                                   str(ready[i]), str(ready[1 - i])], cwd=REPO, env=env, text=True,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE) for i in range(2)]
    outputs = [p.communicate(timeout=300) for p in processes]
    for process, (out, err) in zip(processes, outputs):
        assert process.returncode == 0, err[-2000:]
        assert int(out.strip().splitlines()[-1]) > 0
    config_dir = tmp_path / "tfds" / "synthetic_ecg" / "tiny"
    assert sorted(p.name for p in config_dir.iterdir()) == [".erts_prepare.lock", "1.0.0"]  # one copy, no leftovers
