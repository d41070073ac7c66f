"""Bad flags and flagfiles: one line on stderr, exit code 2, no traceback."""

import subprocess
import sys

import pytest

from erts_tf import flags as erts_flags


def _parse(args, tmp_path):
    erts_flags.FLAGS.unparse_flags()
    return erts_flags.parse(["train", f"--output_dir={tmp_path / 'run'}", *args])


@pytest.mark.parametrize(
    "args, message",
    [
        (["--epochs=0"], "--epochs must be > 0"),
        (["--epochs=abc"], "epochs"),
        (["--tau=1.5"], "--tau must be in [0, 1]"),
        (["--mode=nope"], "mode"),
        (["--model=nope"], "unknown model 'nope'"),
        (["--dataset=nope"], "unknown dataset 'nope'"),
        (["--no_such_flag=1"], "no_such_flag"),
        (["--resume", "--overwrite"], "exclude each other"),
        (["--strategy=mirrored", "--level=batch"], "supports --level=epoch"),
        (["--strategy=multiworker", "--skip_nonfinite"], "supports --level=epoch"),
        (["--strategy=tpu"], "strategy"),
        (["--window_s=-1"], "--window_s must be >= 0"),
        (["--window_s=2.5", "--eval_window_stride_s=3"], "must be in [0, --window_s=2.5]"),
        (["--eval_window_stride_s=1"], "needs --window_s"),
        (["--window_s=2.5", "--window_aggregate=median"], "window_aggregate"),
        (["--class_weights=N:1,S"], "'S' is not CLASS:WEIGHT"),
        (["--class_weights=N:1,S:-2"], "with a weight > 0"),
        (["--class_weights=N:1,S:2", "--loss=plain"], "needs --loss=class_balanced"),
        (["--ema_momentum=1"], "--ema_momentum must be in [0, 1)"),
    ],
)
def test_bad_flag_exits_2_with_one_line(args, message, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        _parse(args, tmp_path)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err and "Traceback" not in err


def test_unknown_key_in_flagfile_and_missing_output_parent(tmp_path, capsys):
    flagfile = tmp_path / "bad.cfg"
    flagfile.write_text("--flagfile=configs/base.cfg\n--learning_rate=0.1\n")
    with pytest.raises(SystemExit) as exit_info:
        _parse([f"--flagfile={flagfile}"], tmp_path)
    assert exit_info.value.code == 2 and "learning_rate" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        erts_flags.FLAGS.unparse_flags()
        erts_flags.parse(["train", f"--output_dir={tmp_path / 'missing' / 'run'}"])
    assert exit_info.value.code == 2 and "parent folder" in capsys.readouterr().err


def test_good_flagfile_parses_into_a_run_config(tmp_path):
    _parse(["--flagfile=configs/quickstart.cfg", "--epochs=3"], tmp_path)
    config = erts_flags.run_config()
    assert config.mode == "erts_infobatch" and config.epochs == 3 and config.dataset_config == "quickstart"
    assert config.lr_schedule == "cosine" and config.min_keep_frac == 0.2 and config.prune_ratio == 0.7
    erts_flags.FLAGS.unparse_flags()


@pytest.mark.parametrize("flag, message", [("--prune_ratio=1", "--prune_ratio must be in [0, 1)"),
                                           ("--augment=shift,blur", "unknown augmentation"),
                                           ("--focus_every=0", "--focus_every must be >= 1"),
                                           ("--cb_max_ratio=0.5", "--cb_max_ratio must be 0 or >= 1"),
                                           ("--min_keep_frac=1.5", "--min_keep_frac must be in [0, 1]")])
def test_bad_selection_and_recipe_flags_exit_2(flag, message, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        _parse(["--flagfile=configs/quickstart.cfg", flag], tmp_path)
    assert exit_info.value.code == 2 and message in capsys.readouterr().err


def test_cli_exits_2_for_a_bad_flag(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "erts_tf.train", "--flagfile=configs/quickstart.cfg",
         f"--output_dir={tmp_path / 'run'}", "--cam_keep_frac=2"],
        capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 2
    # a quiet console: the one error line, no TensorFlow start-up lines (they come with -v 1)
    assert result.stderr.strip().splitlines() == [result.stderr.strip()]
    assert result.stderr.startswith("error: flag --cam_keep_frac=2")
    loud = subprocess.run(
        [sys.executable, "-m", "erts_tf.train", "--flagfile=configs/quickstart.cfg",
         f"--output_dir={tmp_path / 'run'}", "--cam_keep_frac=2", "--verbosity=1"],
        capture_output=True, text=True, timeout=300,
    )
    assert loud.returncode == 2 and len(loud.stderr.strip().splitlines()) > 1


def test_cli_exits_2_when_the_dataset_archive_is_missing(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "erts_tf.train", "--dataset=cinc2017", f"--manual_dir={tmp_path}",
         f"--data_dir={tmp_path / 'tfds'}", f"--output_dir={tmp_path / 'run'}"],
        capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 2
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("error: dataset 'cinc2017':") and "training2017" in last


@pytest.mark.parametrize("dataset", ["ptbxl", "cinc2017", "mitbih_arrhythmia"])
def test_recommended_configs_of_each_real_dataset(dataset, tmp_path):
    _parse([f"--flagfile=configs/{dataset}/recommended_full.cfg"], tmp_path)
    baseline = erts_flags.run_config()
    _parse([f"--flagfile=configs/{dataset}/recommended.cfg"], tmp_path)
    selection = erts_flags.run_config()
    erts_flags.FLAGS.unparse_flags()
    assert baseline.dataset == selection.dataset == dataset and baseline.mode == "full"
    assert selection.mode == "erts_infobatch" and selection.epochs == baseline.epochs
    assert baseline.lr_schedule == "cosine" and baseline.augment
    assert (baseline.cb_beta, baseline.cb_max_ratio) == (0.9999, 10)  # the recipe's class-balanced weights
    # MIT-BIH's S beats (1:54 against N on DS1) get 40x, above the recipe's cap, and V 1x, below its 3.8x (both chosen
    # by cross-validation over DS1's patients); N and F keep the recipe's weights
    assert baseline.class_weights == ("N:1,S:40,V:1,F:10" if dataset == "mitbih_arrhythmia" else "")
    assert (baseline.exclude_classes == "Q") == (dataset == "mitbih_arrhythmia")  # the AAMI convention
    assert (baseline.dataset_config == "mlii_rhythm_intervals") == (dataset == "mitbih_arrhythmia")
    assert (baseline.keep_weights == "last") == (dataset == "mitbih_arrhythmia")
    # CinC's single-lead rhythm classes need 15 s of context (resnet1d5_pool3); beat windows and 2.5 s crops fit
    # resnet1d's 2.5 s
    assert baseline.model == ("resnet1d5_pool3" if dataset == "cinc2017" else "resnet1d")


def test_flags_module_does_not_import_the_keras_training_model():
    """Defining the flags names every choice (modes, levels, schedules) without the Keras model,
    its callbacks or the training run."""
    code = ("import sys, erts_tf.flags; "
            "print(sorted(m for m in ('erts_tf.training.model', 'erts_tf.training.callbacks', "
            "'erts_tf.training.run') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout


def test_every_flag_default_is_the_run_config_default():
    """A run from flags and a ``RunConfig`` built in code (benchmarks, tests) start from the same settings."""
    import dataclasses

    from erts_tf.training.config import RunConfig

    differing = {f.name: (erts_flags.FLAGS[f.name].default, f.default) for f in dataclasses.fields(RunConfig)
                 if f.default is not dataclasses.MISSING and erts_flags.FLAGS[f.name].default != f.default}
    assert not differing, f"flag default != RunConfig default: {differing}"


@pytest.mark.parametrize("dataset, window, stride", [("ptbxl", 2.5, 1.25), ("cinc2017", 18.0, 9.0)])
def test_recommended_baselines_train_on_windows(dataset, window, stride, tmp_path):
    _parse([f"--flagfile=configs/{dataset}/recommended_full.cfg"], tmp_path)
    config = erts_flags.run_config()
    erts_flags.FLAGS.unparse_flags()
    assert (config.window_s, config.eval_window_stride_s, config.window_aggregate) == (window, stride, "mean")
    assert config.mode == "full" and config.dataset == dataset and (config.dataset_config == "full") == (
        dataset == "cinc2017")


@pytest.mark.parametrize("flagfile, feature, mode, aggregate", [
    ("configs/ptbxl/recommended_full_superdiagnostic.cfg", "superclasses", "full", "max"),
    ("configs/ptbxl/recommended_superdiagnostic.cfg", "superclasses", "erts_infobatch", "max"),
])
def test_multilabel_configs(flagfile, feature, mode, aggregate, tmp_path):
    _parse([f"--flagfile={flagfile}"], tmp_path)
    config = erts_flags.run_config()
    erts_flags.FLAGS.unparse_flags()
    assert (config.task, config.label_feature, config.mode, config.window_aggregate) == ("multi", feature, mode,
                                                                                         aggregate)
    assert config.dataset == "ptbxl" and config.window_s == 2.5


@pytest.mark.parametrize("model", ["resnet1d", "xresnet1d101", "inception1d"])
def test_rhythm_flagfile_over_an_existing_config(model, tmp_path):
    _parse(["--flagfile=configs/ptbxl/recommended_full.cfg", "--flagfile=configs/ptbxl/rhythm.cfg",
            f"--model={model}"], tmp_path)
    config = erts_flags.run_config()
    erts_flags.FLAGS.unparse_flags()
    assert (config.task, config.label_feature, config.model) == ("multi", "rhythm", model)


@pytest.mark.parametrize("args", [["--task=multi"], ["--label_feature=superclasses"],
                                  ["--task=multi", "--label_feature=rhythm", "--exclude_classes=NORM"],
                                  ["--task=multi", "--label_feature=rhythm", "--min_label_count=0"]])
def test_bad_task_flags_are_refused(args, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        _parse(args, tmp_path)
    erts_flags.FLAGS.unparse_flags()
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "--task" in err or "--min_label_count" in err


@pytest.mark.parametrize("args", [["--cv_folds=1"], ["--cv_folds=3", "--cv_fold=3"],
                                  ["--cv_folds=3", "--data_backend=lazy"]])
def test_bad_cross_validation_flags_are_refused(args, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        _parse(args, tmp_path)
    erts_flags.FLAGS.unparse_flags()
    assert exit_info.value.code == 2
    assert "--cv_folds" in capsys.readouterr().err


def test_a_cross_validation_fold_is_a_setting_of_the_run(tmp_path):
    _parse(["--flagfile=configs/mitbih_arrhythmia/recommended_full.cfg", "--cv_folds=3", "--cv_fold=2"], tmp_path)
    config = erts_flags.run_config()
    erts_flags.FLAGS.unparse_flags()
    assert (config.cv_folds, config.cv_fold, config.cv_group_feature) == (3, 2, "record")
