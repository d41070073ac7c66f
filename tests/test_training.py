"""End-to-end runs of every mode on the tiny synthetic dataset: counts follow the rules."""

import csv
import json
import math

import numpy as np
import pytest
import run_helpers

from erts_tf.selection.policies import FOCUS_MODES, MODES
from erts_tf.training import model as model_lib
from erts_tf.training import run

N_TRAIN = 96


def _epochs(summary):
    return {e["epoch"]: e for e in summary["epochs"]}


def _from_flagfile(mode, tmp_path, tfds_dir):
    """The RunConfig of ``configs/synthetic/resnet1d_<mode>.cfg``, shrunk to the tiny dataset."""
    from erts_tf import flags as erts_flags

    erts_flags.FLAGS.unparse_flags()
    erts_flags.parse([
        "train", f"--flagfile=configs/synthetic/resnet1d_{mode}.cfg", f"--output_dir={tmp_path / 'run'}",
        "--dataset_config=tiny", f"--data_dir={tfds_dir}", "--model=tiny_cnn", "--epochs=5", "--batch_size=16",
        "--warm_up_epochs=1", "--cam_start_epoch=1", "--start_revision=4", "--rescore_every=2", "--tau=0.5",
        "--decay=0.8", "--verbose=0", "--noreport", "--tensorboard_images_every=0",
    ])
    config = erts_flags.run_config()
    erts_flags.FLAGS.unparse_flags()
    assert config.mode == mode and config.level == "epoch"
    return config


@pytest.mark.parametrize("mode", MODES)
def test_epoch_level_trains_on_exactly_the_kept_samples(mode, tiny_data, tmp_path, tfds_dir):
    config = _from_flagfile(mode, tmp_path, tfds_dir)
    summary = run.run(config, tiny_data)
    epochs = _epochs(summary)
    assert sorted(epochs) == [0, 1, 2, 3, 4]
    for e, entry in epochs.items():
        assert entry["backward"] == entry["forward_train"] == entry["kept"], (e, entry)
        assert entry["optimizer_steps"] == math.ceil(entry["kept"] / 16), (e, entry)  # batch 16: no extra step
        full_data = mode == "full" or e in (0, 4)  # warm-up 0, revision from 4
        if full_data:
            assert entry["kept"] == N_TRAIN, (e, entry)  # a full epoch after reduced ones is whole
        # every record read was either trained on or re-scored
        assert entry["samples_read"] == entry["kept"] + entry["forward_score"], (e, entry)
        if mode == "srd" and not full_data:
            assert entry["kept"] == math.floor(0.8**e * N_TRAIN)
        if mode in FOCUS_MODES and e in (1, 2) and (e - 1) % config.focus_every == 0:
            # focus computed in training from cam_epoch - 1 = 1, every focus_every epochs, while a later
            # decision needs it (plus the re-scored dropped samples, also with Grad-CAM)
            assert entry["gradcam"] == entry["kept"] + entry["forward_score"], (e, entry)
        if mode not in FOCUS_MODES or e == 4:  # no focus needed: none computed (epoch 4 is full data)
            assert entry["gradcam"] == 0, (e, entry)
        if mode in FOCUS_MODES and e == 3:  # no later decision needs focus: only the re-scored get Grad-CAM
            assert entry["gradcam"] == entry["forward_score"], (e, entry)
    cost = summary["cost"]
    assert cost["effective_epochs"] == pytest.approx(sum(e["backward"] for e in epochs.values()) / N_TRAIN)
    per_class = [v["f1"] for v in summary["test"]["per_class"].values()]
    assert summary["test"]["macro_f1"] == pytest.approx(np.mean(per_class))


@pytest.mark.parametrize("mode", ["dbpd", "erts", "srd"])
def test_batch_level_scores_every_sample_and_trains_on_the_kept(mode, tiny_config, tiny_data):
    summary = run.run(tiny_config(mode=mode, level="batch", decay=0.8, min_keep_frac=0.0), tiny_data)  # the reference rules
    for e, entry in _epochs(summary).items():
        assert entry["samples_read"] == N_TRAIN
        if e in (0, 4):
            assert entry["forward_score"] == 0 and entry["backward"] == N_TRAIN
        else:
            assert entry["forward_score"] == N_TRAIN
            assert entry["backward"] == entry["forward_train"] == entry["kept"] <= N_TRAIN
            if mode == "erts" and e >= 2:
                assert entry["gradcam"] == N_TRAIN
            if mode == "srd":  # int(decay**epoch * batch) per batch of 16
                assert entry["kept"] == (N_TRAIN // 16) * math.floor(0.8**e * 16)


def _read(path):
    with open(path) as f:
        return f.read()


def test_same_flags_and_seed_give_identical_decisions(tiny_config, tiny_data, tmp_path):
    a = run.run(tiny_config(mode="erts_smrd", output_dir=str(tmp_path / "a")), tiny_data)
    b = run.run(tiny_config(mode="erts_smrd", output_dir=str(tmp_path / "b")), tiny_data)
    audit_a, audit_b = _read(tmp_path / "a" / "audit.csv"), _read(tmp_path / "b" / "audit.csv")
    assert audit_a == audit_b and audit_a.count("\n") > 1
    assert [e["kept"] for e in a["epochs"]] == [e["kept"] for e in b["epochs"]]


def test_a_run_that_builds_its_dataset_trains_as_one_that_finds_it_built(tiny_config, tmp_path):
    """The first run on a data dir builds the dataset (drawing from the global random generators); it must
    train, select and score exactly as a later run that finds the dataset built."""
    data_dir = str(tmp_path / "tfds")
    building = run.run(tiny_config(mode="erts_smrd", data_dir=data_dir, output_dir=str(tmp_path / "a")))
    built = run.run(tiny_config(mode="erts_smrd", data_dir=data_dir, output_dir=str(tmp_path / "b")))
    assert run_helpers.decisions(building) == run_helpers.decisions(built)  # keep-masks, counters, losses
    assert _read(tmp_path / "a" / "audit.csv") == _read(tmp_path / "b" / "audit.csv")


def test_one_step_with_grad_cam_behind_a_switch_decides_as_one_step_per_setting(tiny_config, tiny_data, tmp_path,
                                                                               monkeypatch):
    """Focus refreshed every 2nd epoch: the one compiled step with Grad-CAM behind ``cam_switch`` gives the
    same scores, focus epochs, decisions and counters as compiling a step for focus on and one for off."""
    settings = dict(mode="erts_infobatch", focus_every=2, epochs=6, cam_start_epoch=1, start_revision=5)
    switched = run.run(tiny_config(**settings, output_dir=str(tmp_path / "switched")), tiny_data)
    monkeypatch.setattr(model_lib, "switches_cam", lambda selection, replicas: False)
    per_setting = run.run(tiny_config(**settings, output_dir=str(tmp_path / "per_setting")), tiny_data)
    gradcam = [e["gradcam"] for e in switched["epochs"]]
    assert 0 in gradcam and max(gradcam) > 0  # focus was on in some epochs and off in others
    assert run_helpers.decisions(switched) == run_helpers.decisions(per_setting)
    audit_switched, audit_per_setting = _read(tmp_path / "switched" / "audit.csv"), _read(tmp_path / "per_setting" / "audit.csv")
    assert audit_switched == audit_per_setting and "low_focus" in audit_switched


def test_run_writes_its_files_and_refuses_to_overwrite(tiny_config, tiny_data, tmp_path):
    config = tiny_config(mode="erts", epochs=3, output_dir=str(tmp_path / "r"))
    summary = run.run(config, tiny_data)
    out = tmp_path / "r"
    for name in ("config.json", "summary.json", "audit.csv", "progress.json", "best.weights.h5", "model.keras"):
        assert (out / name).exists(), name
    assert (out / "logs").is_dir() and (out / "checkpoints").is_dir()
    assert json.loads((out / "summary.json").read_text())["test"]["macro_f1"] == summary["test"]["macro_f1"]
    rows = list(csv.DictReader(open(out / "audit.csv")))
    assert rows, "erts dropped nothing in its selection epochs"
    assert {r["corruption"] for r in rows} <= {"none", "baseline_wander", "burst_noise", "flat_lead", "electrode_swap", "label_flip"}
    assert "dropped" in {r["decision"] for r in rows} <= {"kept", "dropped"}
    for r in rows:  # the label is the sample's own, text is text, a dropped sample has weight 0
        assert r["label"] == tiny_data.train.class_names[tiny_data.train.label[int(r["sample_id"])]]
        assert (float(r["weight"]) == 0) == (r["decision"] == "dropped") and not r["label"].startswith("b'")
        assert r["score_forward"] in ("training", "inference") and int(r["scored_epoch"]) >= 0
    with pytest.raises(run.RunError, match="--overwrite"):
        run.run(config, tiny_data)


def test_resume_with_other_settings_is_refused(tiny_config, tiny_data, tmp_path):
    config = tiny_config(epochs=2, output_dir=str(tmp_path / "r"))
    run.run(config, tiny_data)
    (tmp_path / "r" / "summary.json").unlink()  # pretend it was interrupted
    import dataclasses

    with pytest.raises(run.RunError, match="--model=resnet1d"):
        run.run(dataclasses.replace(config, resume=True, model="resnet1d"), tiny_data)
    with pytest.raises(run.RunError, match="--resume: .* no unfinished run"):
        run.run(dataclasses.replace(config, resume=True, output_dir=str(tmp_path / "empty")), tiny_data)


def test_dataset_that_does_not_fit_the_model_is_a_clear_error(tiny_data):
    with pytest.raises(run.RunError, match="does not match the model's input"):
        run.check_data_fits_model(tiny_data, (500, 12), 5)
    with pytest.raises(run.RunError, match="the dataset has 5 classes, the model expects 4"):
        run.check_data_fits_model(tiny_data, (1000, 12), 4)


def test_rescoring_before_a_focus_decision_computes_focus(tiny_config, tiny_data):
    """Epoch 3 re-scores the dropped samples and then decides with the focus filter: even though
    no later epoch needs focus (revision from 4), the re-scoring must compute Grad-CAM."""
    summary = run.run(tiny_config(mode="erts", rescore_every=2, start_revision=4), tiny_data)
    entry = _epochs(summary)[3]
    assert entry["forward_score"] > 0 and entry["gradcam"] >= entry["forward_score"]


def test_overwrite_refuses_a_folder_that_is_not_a_run_and_keeps_the_users_files(tmp_path):
    import subprocess
    import sys

    folder = tmp_path / "home"
    folder.mkdir()
    (folder / "thesis.tex").write_text("years of work")
    result = subprocess.run(
        [sys.executable, "-m", "erts_tf.train", "--dataset_config=tiny", f"--output_dir={folder}", "--overwrite",
         "--epochs=1"], capture_output=True, text=True, timeout=300)
    assert result.returncode == 2
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("error: --overwrite:") and "not an erts-tf run folder" in last
    assert (folder / "thesis.tex").read_text() == "years of work"


def test_overwrite_of_a_run_folder_removes_only_what_a_run_writes(tiny_config, tiny_data, tmp_path):
    run.run(tiny_config(mode="full", epochs=1), tiny_data)
    out = tmp_path / "run"
    (out / "notes.txt").write_text("mine")
    (out / "mine").mkdir()
    run.run(tiny_config(mode="full", epochs=1, overwrite=True), tiny_data)
    assert (out / "notes.txt").read_text() == "mine" and (out / "mine").is_dir()
    assert (out / "summary.json").exists()


def test_a_run_into_a_folder_another_run_holds_is_refused_and_touches_nothing(tiny_config, tiny_data, tmp_path):
    import dataclasses

    from erts_tf import run_folder

    config = tiny_config(mode="full", epochs=1)
    run.run(config, tiny_data)
    out = tmp_path / "run"
    before = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    assert "run.lock" not in before  # a finished run leaves no lock
    with run_folder.lock(str(out)):  # another training in this folder, as far as this process can tell
        with pytest.raises(run.RunError,
                           match="run is in use by a training, pid .*; wait for it to end, or choose another --output_dir"):
            run.run(dataclasses.replace(config, overwrite=True), tiny_data)
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir()} == before


def test_an_output_dir_that_is_a_file_is_a_clear_error_and_the_file_stays(tiny_config, tiny_data, tmp_path):
    (tmp_path / "run").write_text("not a folder")
    with pytest.raises(run.RunError, match="--output_dir=.*run is a file, not a folder"):
        run.run(tiny_config(mode="full", epochs=1), tiny_data)
    assert (tmp_path / "run").read_text() == "not a folder"


def test_a_run_writes_the_run_folder_and_no_evaluation_or_report(tiny_config, tiny_data, tmp_path):
    """``run.run`` as a library call trains and writes the run folder only, whatever ``report`` says."""
    run.run(tiny_config(mode="full", epochs=1, report=True), tiny_data)
    written = {p.name for p in (tmp_path / "run").iterdir()}
    assert {"config.json", "summary.json", "model.keras", "audit.csv"} <= written
    assert not {"eval_test.json", "report.md"} & written


def test_the_train_command_evaluates_and_reports_after_the_run_with_report(tmp_path, tfds_dir, capsys):
    from erts_tf import flags as erts_flags
    from erts_tf import train

    out = tmp_path / "run"
    flags = ["train", "--dataset_config=tiny", f"--data_dir={tfds_dir}", f"--output_dir={out}", "--model=tiny_cnn",
             "--epochs=1", "--batch_size=16", "--seed=4", "--verbose=0", "--verbosity=1",
             "--tensorboard_images_every=0"]
    try:
        for extra in ([], ["--noreport", "--overwrite"]):
            erts_flags.FLAGS.unparse_flags()
            erts_flags.parse(flags + extra)
            train.main(["train"])
            assert "macro-F1 test" in capsys.readouterr().out
            if not extra:
                evaluation = json.loads((out / "eval_test.json").read_text())
                assert (evaluation["bootstrap"]["rounds"], evaluation["bootstrap"]["seed"]) == (1000, 4)
                assert "| test macro-F1 |" in (out / "report.md").read_text()
        assert (out / "summary.json").exists()
        assert not (out / "eval_test.json").exists() and not (out / "report.md").exists()  # --noreport
    finally:
        erts_flags.FLAGS.unparse_flags()


def test_a_worker_that_is_not_the_chief_neither_evaluates_nor_reports(tmp_path, tfds_dir, capsys, monkeypatch):
    """Under a multi-worker strategy only the chief writes the run folder, so only the chief evaluates it."""
    from erts_tf import flags as erts_flags
    from erts_tf import train
    from erts_tf.training import distribute

    monkeypatch.setattr(distribute, "is_chief", lambda strategy: False)  # this process trains into a scratch folder
    out = tmp_path / "run"
    try:
        erts_flags.FLAGS.unparse_flags()
        erts_flags.parse(["train", "--dataset_config=tiny", f"--data_dir={tfds_dir}", f"--output_dir={out}",
                          "--model=tiny_cnn", "--epochs=1", "--batch_size=16", "--verbose=0", "--verbosity=1",
                          "--tensorboard_images_every=0", "--report"])
        train.main(["train"])
    finally:
        erts_flags.FLAGS.unparse_flags()
    assert "macro-F1 test" in capsys.readouterr().out and not out.exists()


@pytest.mark.parametrize("setting", [{"tau": 0.4}, {"lr": 1e-3}, {"prune_ratio": 0.3}, {"lr_schedule": "cosine"},
                                     {"min_keep_frac": 0.5}, {"augment": "noise"}])
def test_resume_refuses_any_setting_that_changes_a_decision(setting, tiny_config, tiny_data, tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    config = tiny_config(mode="erts")
    (out / "config.json").write_text(json.dumps(config.to_json()))
    (out / "progress.json").write_text("{}")
    name = next(iter(setting))
    with pytest.raises(run.RunError, match=f"--{name}="):
        run.run(tiny_config(mode="erts", resume=True, **setting), tiny_data)
    assert json.loads((out / "config.json").read_text()) == config.to_json()  # the original is kept


def test_class_floor_keeps_erts_from_collapsing_where_the_reference_collapses(tmp_path, tfds_dir):
    """Regression: epoch-level erts used to train whole epochs on the hardest few percent and lose the model.

    On the synthetic quickstart data (1500 train), 4 warm-up epochs, then erts's reference rule: with the
    floor at 0 the kept count falls to ~10 % and validation macro-F1 drops far below the warm-up's; with
    ``min_keep_frac=0.3`` no class falls under 30 % and validation macro-F1 stays within the margin.
    """
    from erts_tf.training.config import RunConfig

    data = run.load_data(RunConfig(output_dir="unused", dataset_config="quickstart", data_dir=tfds_dir))
    n_classes = len(data.train.class_names)
    floor = sum(math.ceil(0.3 * np.sum(data.train.label == c)) for c in range(n_classes))
    margin = 0.2
    drops = {}
    for min_keep_frac in (0.0, 0.3):
        config = RunConfig(output_dir=str(tmp_path / f"floor{min_keep_frac}"), dataset_config="quickstart",
                           data_dir=tfds_dir, model="tiny_cnn", epochs=8, batch_size=32, lr=3e-3, warm_up_epochs=4,
                           cam_start_epoch=1, start_revision=-1, rescore_every=2, tau=0.5, mode="erts",
                           min_keep_frac=min_keep_frac, verbose=0, report=False, tensorboard_images_every=0)
        epochs = _epochs(run.run(config, data))
        warm = epochs[3]["val_macro_f1"]
        selection = [epochs[e] for e in range(4, 8)]
        drops[min_keep_frac] = warm - min(e["val_macro_f1"] for e in selection)
        if min_keep_frac > 0:
            assert all(e["kept"] >= floor for e in selection), [e["kept"] for e in selection]
    assert drops[0.3] <= margin, drops
    assert drops[0.0] > margin, drops  # the reference rule does collapse here, so the guard is what holds it


def _twelve_records():
    """A tiny ERTSModel and its 12 records ``(signal (12, 64, 1), label, sample_id)`` as an unbatched dataset."""
    import keras
    import tensorflow as tf

    from erts_tf import models

    keras.utils.set_random_seed(0)
    backbone = models.build("tiny_cnn", (64, 1), 2)
    model = model_lib.ERTSModel(backbone, "block2", n_train=12, class_weights=np.ones(2))
    model.compile(optimizer=keras.optimizers.AdamW(1e-3))
    model.optimizer.build(backbone.trainable_variables)
    x = np.random.default_rng(0).normal(size=(12, 64, 1)).astype(np.float32)
    return model, tf.data.Dataset.from_tensor_slices((x, np.arange(12) % 2, np.arange(12, dtype=np.int64)))


def test_fit_starts_one_iterator_per_epoch_and_steps_exactly_the_batches(monkeypatch):
    """Keras, given a dataset of known length, starts the next epoch's iterator when one ends; with one
    ``fit`` call per epoch that iterator is never used (a fixed cost of every epoch)."""
    import tensorflow as tf

    model, data = _twelve_records()
    train, validation = data.batch(5), data.take(8).batch(4)  # 3 training batches, the last partial; 2 validation
    started = []
    iterate = tf.data.Dataset.__iter__
    monkeypatch.setattr(tf.data.Dataset, "__iter__", lambda self: started.append(self) or iterate(self))
    model.fit(lambda epoch: train, epochs=2, validation_data=validation, verbose=0)
    assert len(started) == 4  # per epoch: one for training, one for validation
    assert model.state.counters["optimizer_steps"].numpy() == 6 and model.state.counters["backward"].numpy() == 24


def test_a_dataset_of_unknown_length_counts_only_the_steps_taken():
    """Keras calls the step once more on the exhausted iterator of a dataset of unknown length; that failed
    call must not count an optimizer step nor advance the optimizer's iterations (its learning rate)."""
    model, data = _twelve_records()
    unknown = data.batch(5).filter(lambda *batch: True)
    model.fit(unknown, epochs=2, verbose=0)
    assert model.state.counters["optimizer_steps"].numpy() == 6 and int(model.optimizer.iterations.numpy()) == 6


@pytest.mark.parametrize("keep", ["best", "last"])
def test_the_run_keeps_the_weights_it_is_told_to(keep, tiny_config, tiny_data, tmp_path):
    """``--keep_weights``: the saved model scores validation as the kept epoch did (best: the best validation
    epoch, last: the last epoch); the best epoch is reported either way."""
    summary = run.run(tiny_config(mode="full", epochs=4, lr=3e-3, keep_weights=keep, output_dir=str(tmp_path / keep)),
                      tiny_data)
    val = [e["val_macro_f1"] for e in summary["epochs"]]
    assert summary["best_epoch"] == int(np.argmax(val)) != 3  # the two choices are different epochs here
    assert summary["weights_epoch"] == (3 if keep == "last" else summary["best_epoch"])
    assert summary["validation"]["macro_f1"] == pytest.approx(val[summary["weights_epoch"]], abs=1e-6)


def test_class_weights_given_per_class_replace_the_class_balanced_ones(tiny_config, tiny_data):
    spec = "normal:1,st_elevation:2,wide_qrs:3,premature:4,af:10"
    model = run.build_model(tiny_config(mode="full", class_weights=spec), tiny_data)
    np.testing.assert_allclose(model.class_weights.numpy(), np.array([1, 2, 3, 4, 10]) * 5 / 20, rtol=1e-6)
    balanced = run.build_model(tiny_config(mode="full"), tiny_data).class_weights.numpy()
    assert not np.allclose(balanced, model.class_weights.numpy())
    with pytest.raises(run.RunError, match="missing af"):
        run.build_model(tiny_config(mode="full", class_weights="normal:1,st_elevation:2,wide_qrs:3,premature:4"),
                        tiny_data)
    with pytest.raises(run.RunError, match="needs --loss=class_balanced"):
        run.build_model(tiny_config(mode="full", class_weights=spec, loss="plain"), tiny_data)
