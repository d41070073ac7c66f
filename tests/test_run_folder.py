"""``run_folder``: the names a run writes and the loaders every command reads a run with."""

import errno
import functools
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from erts_tf import run_folder
from erts_tf.run_folder import RunFolderBusy, RunFolderError


def test_eval_files_are_named_by_split_and_removed_with_the_run(tmp_path):
    assert run_folder.eval_name("test") == "eval_test.json"
    run_folder.write_json(str(tmp_path), run_folder.CONFIG, {"output_dir": str(tmp_path)})
    run_folder.write_json(str(tmp_path), run_folder.eval_name("validation"), {"split": "validation"})
    (tmp_path / "notes.txt").write_text("mine")
    removed = run_folder.remove_run_outputs(str(tmp_path))
    assert sorted(p.split("/")[-1] for p in removed) == ["config.json", "eval_validation.json"]
    assert (tmp_path / "notes.txt").exists()


def test_json_files_round_trip_and_absent_ones_read_as_none(tmp_path):
    out = str(tmp_path)
    assert run_folder.read_summary(out) is None and run_folder.read_eval(out, "test") is None
    path = run_folder.write_json(out, run_folder.SUMMARY, {"best_epoch": 3})
    assert path == str(tmp_path / "summary.json") and json.loads((tmp_path / "summary.json").read_text()) == {
        "best_epoch": 3}
    run_folder.write_json(out, run_folder.eval_name("test"), {"split": "test"})
    assert run_folder.read_summary(out) == {"best_epoch": 3}
    assert run_folder.read_eval(out, "test") == {"split": "test"} and run_folder.read_eval(out, "train") is None


def test_read_config_builds_the_run_config(tmp_path):
    with pytest.raises(RunFolderError, match="no such folder"):
        run_folder.read_config(str(tmp_path / "missing"))
    with pytest.raises(RunFolderError, match="config.json does not exist: .* is not a run folder"):
        run_folder.read_config(str(tmp_path))
    saved = {"output_dir": str(tmp_path), "model": "tiny_cnn", "data_dir": "/saved", "exclude_classes": "af",
             "a_setting_of_a_newer_version": 1}
    (tmp_path / "config.json").write_text(json.dumps(saved))
    assert run_folder.read_config_json(str(tmp_path)) == saved
    config = run_folder.read_config(str(tmp_path))
    assert (config.model, config.data_dir, config.exclude_classes) == ("tiny_cnn", "/saved", "af")
    assert run_folder.read_config(str(tmp_path), data_dir="/elsewhere").data_dir == "/elsewhere"


def test_load_model_gives_the_saved_backbone(tmp_path):
    import keras

    from erts_tf import models

    with pytest.raises(RunFolderError, match="the run did not finish .*model.keras"):
        run_folder.load_model(str(tmp_path))
    keras.utils.set_random_seed(0)
    backbone = models.build("tiny_cnn", (1000, 12), 5)
    backbone.save(tmp_path / "model.keras")
    signal = np.random.default_rng(0).standard_normal((2, 1000, 12)).astype(np.float32)
    loaded = run_folder.load_model(str(tmp_path))
    np.testing.assert_allclose(loaded(signal, training=False), backbone(signal, training=False), atol=1e-6)


def test_a_held_folder_refuses_a_second_lock_that_names_the_holder(tmp_path):
    out = str(tmp_path / "run")
    with run_folder.lock(out):
        assert (tmp_path / "run" / "run.lock").read_text().startswith(f"a training, pid {os.getpid()} on ")
        with pytest.raises(RunFolderBusy, match=rf"run is in use by a training, pid {os.getpid()} on .* since "
                                                r".*; wait for it to end$"):
            with run_folder.lock(out):
                pass
    assert not (tmp_path / "run").exists()  # the lock made the folder, and nothing else was written there
    with run_folder.lock(out):  # free again
        (tmp_path / "run" / "notes.txt").write_text("mine")
    assert os.listdir(out) == ["notes.txt"]  # the lock file goes, the folder and what is in it stay
    with pytest.raises(KeyError):  # the folder removed while held: the block's own error comes out, not the lock's
        with run_folder.lock(out):
            shutil.rmtree(out)
            raise KeyError("the block's")


def test_a_killed_holder_leaves_no_lock_behind(tmp_path):
    out = str(tmp_path)
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time\nfrom erts_tf import run_folder\nwith run_folder.lock(sys.argv[1]):\n"
                               "    print('held', flush=True)\n    time.sleep(600)\n", out],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(RunFolderBusy, match=f"pid {holder.pid} on "):
            with run_folder.lock(out):
                pass
    finally:
        holder.kill()
        holder.wait()
    assert (tmp_path / "run.lock").exists()  # SIGKILL: the holder could not remove its file ...
    with run_folder.lock(out):  # ... but the kernel released its lock with the process
        assert (tmp_path / "run.lock").read_text().startswith(f"a training, pid {os.getpid()} on ")


def test_lock_existing_locks_the_folders_there_are_and_creates_none(tmp_path, monkeypatch):
    run, other, missing = (str(tmp_path / name) for name in ("run", "other", "missing"))
    os.makedirs(run)
    os.makedirs(other)
    with run_folder.lock_existing([run, other, missing, run + "/"], "an evaluation"):  # one folder named twice
        assert (tmp_path / "run" / "run.lock").read_text().startswith(f"an evaluation, pid {os.getpid()} on ")
        assert (tmp_path / "other" / "run.lock").exists()
        with pytest.raises(RunFolderBusy, match="run is in use by an evaluation, pid"):
            with run_folder.lock(run):  # a training cannot start under a reader
                pass
    assert not os.path.exists(missing) and os.listdir(run) == [] and os.listdir(other) == []
    with run_folder.lock(run):
        with pytest.raises(RunFolderBusy, match="run is in use by a training, pid"):
            with run_folder.lock_existing([run], "a report"):
                pass
    real_open = os.open

    def open_refusing_lock_files(path, *args, error=errno.EROFS):
        if str(path).endswith(run_folder.LOCK):
            raise OSError(error, os.strerror(error), path)
        return real_open(path, *args)

    monkeypatch.setattr(os, "open", open_refusing_lock_files)  # a read-only folder or filesystem: read unlocked
    with run_folder.lock_existing([run], "an export"):
        assert os.listdir(run) == []
    monkeypatch.setattr(os, "open", functools.partial(open_refusing_lock_files, error=errno.ENOSPC))
    with pytest.raises(OSError, match="No space left"):  # any other failure to lock is an error
        with run_folder.lock_existing([run], "an export"):
            pass


@pytest.mark.parametrize("command", [["erts_tf.evaluate", "--run_dir={}"], ["export", "--run_dir={}"],
                                     ["erts_tf.report", "{}"]], ids=["evaluate", "export", "report"])
def test_commands_that_read_a_run_refuse_a_folder_a_training_holds(tmp_path, command):
    run = str(tmp_path / "run")
    with run_folder.lock(run):
        (tmp_path / "run" / "config.json").write_text("{}")
        done = subprocess.run([sys.executable, "-m", command[0], *(a.format(run) for a in command[1:])],
                              capture_output=True, text=True, timeout=120,
                              env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert done.returncode == 2, done.stderr
    assert f"{run} is in use by a training, pid {os.getpid()} on " in done.stderr
    assert sorted(os.listdir(run)) == ["config.json"]  # nothing written, and the reader left no lock of its own
