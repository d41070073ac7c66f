"""Smoke versions of the benchmarks (benchmarks/*.py --smoke): tiny data, tiny CNN, they run and write sane JSON.

They run in this process (not as subprocesses) so that the session's tiny
synthetic dataset and the test-only ``tiny_cnn`` backbone are reused.
"""

import importlib.util
import json
import pathlib
import sys

import numpy as np
import pytest

BENCHMARKS = pathlib.Path(__file__).resolve().parents[1] / "benchmarks"


def _load(name):
    if str(BENCHMARKS) not in sys.path:
        sys.path.insert(0, str(BENCHMARKS))
    spec = importlib.util.spec_from_file_location(f"erts_tf_benchmark_{name}", BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _check_machine(result):
    machine = result["machine"]
    for key in ("cpu", "cpu_count", "tensorflow", "keras", "date_utc"):
        assert machine[key], key


@pytest.fixture
def common_args(tmp_path, tfds_dir, tiny_data, tiny_backbone):
    del tiny_data  # builds synthetic_ecg/tiny in tfds_dir once
    return ["--smoke", "--model", tiny_backbone, "--data_dir", tfds_dir, "--work_dir", str(tmp_path / "work")]


def test_modes_smoke(tmp_path, common_args):
    out = tmp_path / "modes.json"
    result = _load("modes").main([*common_args, "--output", str(out), "--modes", "full,dbpd,erts", "--batch_modes", "full,erts"])
    saved = json.loads(out.read_text())
    _check_machine(saved)
    rows = saved["aggregate"]["rows"]
    assert set(rows) == {"epoch/full", "epoch/dbpd", "epoch/erts", "batch/erts", "batch/full"}
    assert rows["batch/full"]["reused_from"] == "epoch/full"
    full = rows["epoch/full"]
    assert full["train_wall_ratio"] == pytest.approx(1.0) and full["total_work_ratio"] == pytest.approx(1.0)
    assert full["effective_epochs"] == pytest.approx(3.0)
    for row in rows.values():
        ci = row["test_macro_f1_ci"]
        assert 0 <= ci["low"] <= ci["point"] <= ci["high"] <= 1
        assert row["rss_peak_bytes"] > 0
    assert rows["epoch/erts"]["effective_epochs"] <= 3.0
    assert "epoch: erts - dbpd" in saved["aggregate"]["comparisons"]
    assert out.with_suffix(".png").exists()
    assert "test macro-F1" in result["table"]


def test_step_overhead_smoke(tmp_path, common_args):
    out = tmp_path / "step.json"
    backbone = common_args[common_args.index("--model") + 1]
    args = [a for a in common_args if a not in ("--model", backbone)]  # this benchmark takes --backbones
    _load("step_overhead").main([*args, "--backbones", backbone, "--profile", "always", "--output", str(out)])
    saved = json.loads(out.read_text())
    _check_machine(saved)
    (row,) = saved["results"]
    assert row["backbone"] == backbone
    for variant in ("plain", "erts_nocam", "erts_cam"):
        assert row["variants"][variant]["n"] == 3 and row["variants"][variant]["median"] > 0
    assert row["ratio_cam"] > 0 and "profile" in row


def test_focus_validity_smoke(tmp_path, common_args):
    out = tmp_path / "focus.json"
    _load("focus_validity").main([*common_args, "--datasets", "synthetic_ecg,no_such_dataset", "--output", str(out)])
    saved = json.loads(out.read_text())
    _check_machine(saved)
    synthetic = saved["datasets"]["synthetic_ecg"]
    assert "no_such_dataset" in saved["datasets"]["no_such_dataset"]["error"]
    groups = synthetic["validity"]["all"]
    assert "any corruption" in groups
    for row in groups.values():
        assert set(row) >= {"top10_mean", "entropy", "gini", "topk_mass", "segments", "1 - p_true"}
        for ci in row.values():
            assert ci["point"] is None or 0 <= ci["low"] <= ci["point"] <= ci["high"] <= 1
    assert all(ci["point"] is not None for ci in groups["any corruption"].values())  # both classes present
    drops = synthetic["drops"]
    assert set(drops["modes"]) == {"erts", "dbpd"} and 0 < drops["base_rate"] < 1


def test_focus_validity_over_run_smoke(tmp_path, common_args, monkeypatch):
    out = tmp_path / "focus_over_run.json"
    module = _load("focus_validity")
    write_json, on_disk = module.common.write_json, []

    def write_and_read_back(path, payload):  # the epochs on disk after each write
        written = write_json(path, payload)
        on_disk.append([e["epoch"] for e in json.loads(written.read_text())["datasets"]["synthetic_ecg"]["epochs"]])
        return written

    monkeypatch.setattr(module.common, "write_json", write_and_read_back)
    result = module.main([*common_args, "--over_run", "--output", str(out)])
    assert on_disk == [[0], [0, 1], [0, 1]]  # after each epoch (--smoke: 2), then the final publish
    saved = json.loads(out.read_text())
    _check_machine(saved)
    entry = saved["datasets"]["synthetic_ecg"]
    epochs = entry["epochs"]
    configured, trained = entry["focus_score"], entry["focus_score"] + " (training forward)"
    for e in epochs:
        assert set(e["auroc"]) == {"top10_mean", "entropy", "gini", "topk_mass", "segments", "1 - p_true", trained}
        assert 0 <= e["val_macro_f1"] <= 1
        assert e["focus_recorded"] == entry["n_train"]  # full + always_cam: every sample's focus, every epoch
        for ci in e["auroc"].values():
            if ci["point"] is None:
                assert ci["low"] is None and ci["high"] is None
            else:
                assert 0 <= ci["low"] <= ci["point"] <= ci["high"] <= 1
            assert ci["n_pos"] == entry["n_unreliable"] and ci["n_pos"] + ci["n_neg"] == entry["n_train"]
    summary = entry["summary"]
    assert summary["scores"][configured]["last"] == epochs[-1]["auroc"][configured]["point"]
    assert set(summary["ci_low_above_half"]) == {configured, trained}
    assert out.with_suffix(".png").exists()
    assert "val macro-F1" in result["table"]


def test_scale_smoke(tmp_path, common_args):
    out = tmp_path / "scale.json"
    _load("scale").main([*common_args, "--output", str(out)])
    saved = json.loads(out.read_text())
    _check_machine(saved)
    assert saved["n"] == 160  # tiny: 96 + 32 + 32
    assert [r["kept"] for r in saved["pipeline"]] == [160, 80, 32, 8]
    assert saved["all_reads_match"]
    assert {r["mode"] for r in saved["training"]} == {"full", "erts"}
    erts = [r for r in saved["training"] if r["mode"] == "erts"]
    assert all(r["gradcam"] == r["trained"] for r in erts)


def _memory_cgroups_usable() -> bool:
    """Whether this machine lets the benchmark make a limited memory cgroup (root, a memory controller)."""
    scale = _load("scale")
    try:
        scale.memory_cgroup("erts_tf_scale_probe", 2**30).rmdir()
    except RuntimeError:
        return False
    return True


@pytest.mark.skipif(not _memory_cgroups_usable(), reason="needs a memory cgroup it can create (root, a memory "
                                                          "controller) for the limited probes")
def test_scale_compare_backends_smoke_with_a_memory_limit(tmp_path, common_args):
    """Both backends side by side, RSS against size, and the probes under a memory cgroup: a limit below what
    TensorFlow alone takes kills both, and the benchmark records that rather than failing."""
    out = tmp_path / "scale_lazy.json"
    _load("scale").main([*common_args, "--output", str(out), "--compare_backends", "--data_dir", str(tmp_path / "tfds"),
                         "--limited_size", "96", "--memory_limit_mb", "200"])
    saved = json.loads(out.read_text())
    _check_machine(saved)
    assert saved["all_reads_match"]
    assert [(r["backend"], r["n"]) for r in saved["rss"]] == [("memory", 64), ("lazy", 64), ("memory", 128), ("lazy", 128)]
    assert all(r["read"] == r["yielded"] == r["n"] for r in saved["rss"])
    limited = saved["rss_under_limit"]
    assert [(r["backend"], r["n"], r["killed_by_limit"]) for r in limited] == [("memory", 96, True), ("lazy", 96, True)]
    assert all(r["dataset_bytes"] == 96 * 1000 * 12 * 4 for r in limited)
    for root in ("/sys/fs/cgroup", "/sys/fs/cgroup/memory"):
        assert not list(pathlib.Path(root).glob("erts_tf_scale_*"))  # the cgroup is removed
    assert {r["backend"] for r in saved["side_by_side"]["training"]} == {"memory", "lazy"}


def test_modes_on_a_shipped_flagfile(tmp_path, common_args):
    """``--flagfile``: every variant trains the flagfile's recipe, with its own mode and selection settings
    over it, and full_matched compresses the flagfile's warm-up with its epochs."""
    out = tmp_path / "modes_flagfile.json"
    _load("modes").main([*common_args, "--output", str(out), "--flagfile", "configs/quickstart.cfg",
                         "--epochs", "4", "--variants", "erts_infobatch,full_matched"])
    common = _load("common")
    saved = json.loads(out.read_text())
    assert [r["file"] for r in saved["runs"]] == [f"epoch_{m}_s0.json" for m in ("full", "erts_infobatch", "full_matched")]
    assert saved["runs_dir"] == "modes_flagfile_runs"  # beside the JSON, which names the records and does not repeat them
    runs = {r["mode"]: r for r in common.read_records(saved, out)}
    assert set(runs) == {"full", "erts_infobatch", "full_matched"}
    for name, run in runs.items():
        settings = run["settings"]
        assert settings["lr_schedule"] == "cosine"
        assert settings["augment"] == "shift,scale,wander,noise" and settings["dataset_config"] == "tiny"
    assert runs["erts_infobatch"]["settings"]["mode"] == "erts_infobatch"
    assert runs["erts_infobatch"]["settings"]["rescore_every"] == 0  # the variant's own setting wins
    assert runs["full"]["settings"]["epochs"] == 4
    matched = runs["full_matched"]["settings"]
    assert matched["epochs"] == max(1, round(4 * runs["erts_infobatch"]["total_work_ratio"]))
    assert runs["full"]["settings"]["lr_warmup_epochs"] == 2 and matched["lr_warmup_epochs"] == round(
        2 * matched["epochs"] / 4)
    out.write_text(json.dumps({**saved, "aggregate": None}))
    _load("modes").main(["--reaggregate", str(out)])  # from the named records, as it was
    assert json.loads(out.read_text()) == saved


def test_baselines_smoke(tmp_path, common_args):
    out = tmp_path / "baselines.json"
    module = _load("baselines")
    result = module.main([*common_args, "--output", str(out), "--train_fractions", "0.5"])
    saved = json.loads(out.read_text())
    _check_machine(saved)
    reference, recommended = saved["configs"]["reference"], saved["configs"]["recommended"]
    assert reference["mode"] == recommended["mode"] == "full" and reference["epochs"] == recommended["epochs"] == 2
    assert (reference["lr_schedule"], reference["augment"], reference["cb_max_ratio"]) == ("exponential", "", 0.0)
    assert (recommended["lr_schedule"], recommended["cb_max_ratio"]) == ("cosine", 10.0) and recommended["augment"]
    rows = saved["aggregate"]["rows"]
    assert set(rows) == {"reference", "recommended", "recommended_f0.5"}
    assert rows["recommended_f0.5"]["n_train"] == pytest.approx(rows["recommended"]["n_train"] / 2, abs=3)
    curve = saved["aggregate"]["learning_curve"]
    assert [p["n_train"] for p in curve["points"]] == sorted([rows["recommended_f0.5"]["n_train"], rows["recommended"]["n_train"]])
    for row in rows.values():
        ci = row["metrics"]["macro_f1"]
        assert 0 <= ci["low"] <= ci["point"] <= ci["high"] <= 1
        assert row["train_validation_gap"] is not None
        assert [len(v) for v in row["test_macro_f1_by_epoch"].values()] == [2]  # the test split scored every epoch
        tuned = row["at_validation_offsets"]  # the same models at the operating point chosen on validation
        assert tuned["metrics"]["macro_f1"]["point"] == pytest.approx(np.mean(tuned["test_macro_f1_by_seed"]))
    assert sorted(p.name for p in (tmp_path / "baselines_runs").iterdir()) == [
        "recommended_f0.5_s0.json", "recommended_s0.json", "reference_s0.json"]
    assert [r["file"] for r in saved["runs"]] == ["reference_s0.json", "recommended_s0.json", "recommended_f0.5_s0.json"]
    common = _load("common")
    for r in common.read_records(saved, out):  # the kept weights (the best epoch's) score on test what they scored after their epoch
        assert r["weights_epoch"] == r["best_epoch"]
        assert r["test_macro_f1"] == pytest.approx(r["test_macro_f1_by_epoch"][r["weights_epoch"]], abs=1e-6)
    assert "majority level" in result["table"] and "operating point chosen on validation" in result["table"]
    again = module.main([*common_args, "--output", str(out), "--train_fractions", "0.5"])  # all reused, none retrained
    assert [r["cpu_s"] for r in again["runs"]] == [r["cpu_s"] for r in saved["runs"]]
    out.write_text(json.dumps({**saved, "aggregate": None}))
    module.main(["--reaggregate", str(out)])  # from the named records, as it was
    assert json.loads(out.read_text()) == saved
    # paired with itself (twice): every difference is 0 on every resample, so the CI is [0, 0]
    paired = tmp_path / "paired.json"
    paired.write_text(json.dumps({**saved, "settings": {**saved["settings"], "paired_with": f"{out},{out}"}}))
    rows = module.main(["--reaggregate", str(paired)])["aggregate"]["rows"]
    for row in rows.values():
        assert [p["against"] for p in row["minus_paired"]] == [str(out)] * 2
        for p in row["minus_paired"]:
            assert {k: tuple(v.values()) for k, v in p["metrics"].items()} == {"macro_f1": (0, 0, 0)}
            assert p["test_macro_f1_by_seed"] == {0: 0.0}
    other = json.loads(out.read_text())
    other["splits"]["recommended"]["test_labels"][0] += 1
    (tmp_path / "other.json").write_text(json.dumps(other))
    paired.write_text(json.dumps({**saved, "settings": {**saved["settings"], "paired_with": str(tmp_path / "other.json")}}))
    with pytest.raises(ValueError, match="test records are not these"):
        module.main(["--reaggregate", str(paired)])


def test_baselines_field_metrics_match_scikit_learn():
    import numpy as np
    from sklearn import metrics as skm

    module = _load("baselines")
    rng = np.random.default_rng(0)
    labels = rng.choice(4, size=400, p=[0.7, 0.1, 0.15, 0.05])
    preds = [np.where(rng.random(400) < 0.8, labels, rng.integers(0, 4, 400)) for _ in range(2)]
    got = module.field_rounds("aami", labels, preds, ["N", "S", "V", "F"], rounds=100)
    for name, c in (("S", 1), ("V", 2)):
        se = np.mean([skm.recall_score(labels == c, p == c) for p in preds])
        ppv = np.mean([skm.precision_score(labels == c, p == c) for p in preds])
        assert got[f"{name}_se"]["point"] == pytest.approx(se) and got[f"{name}_ppv"]["point"] == pytest.approx(ppv)
        assert got[f"{name}_se"]["low"] <= se <= got[f"{name}_se"]["high"]
    challenge = module.field_rounds("challenge2017", labels, preds, ["N", "A", "O", "~"], rounds=100)
    expected = np.mean([skm.f1_score(labels, p, labels=[0, 1, 2], average="macro") for p in preds])
    assert challenge["challenge_f1"]["point"] == pytest.approx(expected)
    assert module.majority_macro_f1([0, 0, 0, 1]) == pytest.approx(2 * 0.75 / 1.75 / 2)


def test_baselines_stratified_part_keeps_each_class_share_and_depends_on_the_seed():
    import numpy as np

    module = _load("baselines")
    labels = np.array([0] * 80 + [1] * 16 + [2] * 4)
    part = module.stratified_part(labels, 0.25, seed=0)
    assert np.bincount(labels[part]).tolist() == [20, 4, 1]
    assert part.tolist() == module.stratified_part(labels, 0.25, seed=0).tolist()
    assert part.tolist() != module.stratified_part(labels, 0.25, seed=1).tolist()


def test_label_noise_flips_the_asked_share_of_training_labels_only_and_depends_on_its_seed(tiny_data):
    import numpy as np

    modes = _load("modes")
    noisy = modes.with_label_noise(tiny_data, 0.25, seed=3)
    flipped = noisy.train.extras[modes.FLIPPED].astype(bool)
    assert flipped.sum() == round(0.25 * tiny_data.train.n)
    np.testing.assert_array_equal(noisy.train.label != tiny_data.train.label, flipped)  # every flip changes the class
    np.testing.assert_array_equal(noisy.validation.label, tiny_data.validation.label)
    np.testing.assert_array_equal(noisy.test.label, tiny_data.test.label)
    again = modes.with_label_noise(tiny_data, 0.25, seed=3)
    np.testing.assert_array_equal(again.train.label, noisy.train.label)
    other = modes.with_label_noise(tiny_data, 0.25, seed=4)
    assert (other.train.extras[modes.FLIPPED] != noisy.train.extras[modes.FLIPPED]).any()
    with pytest.raises(SystemExit):
        modes.with_label_noise(tiny_data, 1.0, seed=0)


def test_noisy_label_facts_on_a_hand_computed_state():
    import numpy as np

    from erts_tf.selection.policies import Reason

    modes = _load("modes")
    flipped = np.array([True, True, False, False, False, False])
    p_true = np.array([0.1, 0.2, 0.9, 0.8, 0.05, -1.0])  # the last one never scored
    focus = np.array([0.1, 0.5, 0.9, 0.3, 0.4, 0.0])
    focus_epoch = np.array([2, 2, 2, 2, 2, -1])
    reason = np.array([Reason.LOW_FOCUS, Reason.FOCUSED, Reason.PRUNED, Reason.REWEIGHTED, Reason.LOW_FOCUS,
                       Reason.FULL], np.int32)
    facts = modes.noisy_label_facts(flipped, p_true, focus, focus_epoch, reason)
    # losses -log p: 2.30, 1.61, 0.11, 0.22, 3.00 (mean 1.45): hard = samples 0, 1, 4
    assert facts["loss_auroc"] == pytest.approx(4 / 6)  # flipped {2.30, 1.61} vs {0.11, 0.22, 3.00}
    assert facts["focus_auroc"] == pytest.approx(4 / 6)  # -focus {-0.1, -0.5} vs {-0.9, -0.3, -0.4}
    assert facts["focus_auroc_hard"] == pytest.approx(1 / 2)  # {-0.1, -0.5} vs {-0.4}
    assert facts["flipped_share_hard"] == pytest.approx(2 / 3)
    assert facts["flipped_share_kept"] == pytest.approx(1 / 3)  # kept: 1, 3, 5
    assert facts["flipped_share_low_focus"] == pytest.approx(1 / 2) and facts["low_focus"] == 2


def test_modes_with_label_noise_records_what_selection_did_with_the_flipped_samples(tmp_path, common_args):
    out = tmp_path / "modes_noise.json"
    result = _load("modes").main([*common_args, "--output", str(out), "--epochs", "4", "--label_noise", "0.3",
                                  "--variants", "erts_infobatch"])
    runs = {r["mode"]: r for r in result["runs"]}
    for run in runs.values():
        assert [e["epoch"] for e in run["label_noise_epochs"]] == list(range(4))
        assert run["label_noise_epochs"][0]["flipped_share"] == pytest.approx(round(0.3 * 96) / 96)
    assert any(e["focus_auroc"] is not None for e in runs["erts_infobatch"]["label_noise_epochs"])
    assert all(e["focus_auroc"] is None for e in runs["full"]["label_noise_epochs"])  # full computes no focus
    assert set(result["aggregate"]["label_noise"]) == {"full", "erts_infobatch"}
    assert "label_flipped" in (tmp_path / "work" / "modes").rglob("audit.csv").__next__().read_text().splitlines()[0]


def test_log_linear_fit_recovers_a_log_linear_curve_and_needs_two_sizes():
    import math

    common = _load("common")
    fit = common.log_linear_fit([(400, 0.7 + 0.05 * math.log(400)), (100, 0.7 + 0.05 * math.log(100)),
                                 (200, 0.7 + 0.05 * math.log(200))], size_factor=5)
    assert fit["slope_per_ln_records"] == pytest.approx(0.05)
    assert [p["n_train"] for p in fit["points"]] == [100, 200, 400] and fit["extrapolated_n_train"] == 2000
    assert fit["extrapolated_value"] == pytest.approx(0.7 + 0.05 * math.log(2000))
    assert common.log_linear_fit([(100, 0.5), (100, 0.6)], size_factor=5) is None


def test_scale_rss_only_under_two_allocator_settings(tmp_path, common_args):
    """``--rss_only --malloc_arena_max -1,0``: one probe per size and allocator setting (a run's default, which
    caps the lazy backend at one arena, and glibc's), each row saying its setting and the cap applied, the
    anonymous and file-backed peaks beside the total, and no side-by-side throughput."""
    out = tmp_path / "scale_rss.json"
    scale = _load("scale")
    result = scale.main([*common_args, "--output", str(out), "--compare_backends", "--rss_only",
                         "--backends", "lazy", "--malloc_arena_max=-1,0", "--data_dir", str(tmp_path / "tfds")])
    saved = json.loads(out.read_text())
    assert "side_by_side" not in saved and saved["all_reads_match"]
    assert [(r["n"], r["malloc_arena_max"], r["arena_cap"]) for r in saved["rss"]] == [
        (64, -1, 1), (64, 0, 0), (128, -1, 1), (128, 0, 0)]
    if _load("common").rss_parts() is not None:  # Linux
        for r in saved["rss"]:
            assert 0 < r["rss_anon_peak_bytes"] < r["rss_peak_bytes"] and 0 < r["rss_file_peak_bytes"] < r["rss_peak_bytes"]
    assert "lazy (glibc's arenas)" in result["table"]
    for name in ("lazy", "lazy (glibc's arenas)"):
        flat = saved["lazy_rss_flatness"][name]
        peaks = [r["rss_peak_bytes"] for r in saved["rss"] if scale._probe_name(r) == name]
        assert list(flat["peak_by_size"].values()) == peaks
        assert flat["max_change"] == pytest.approx(max((p - peaks[0] for p in peaks), key=abs) / peaks[0])


@pytest.mark.skipif(not pathlib.Path("/proc/self/status").exists(), reason="reads /proc (Linux)")
def test_rss_parts_add_up_to_the_resident_set():
    """RssAnon + RssFile + RssShmem is the kernel's VmRSS; a fresh 64 MiB array shows up as anonymous."""
    import numpy as np

    common = _load("common")

    def vm_rss():
        with open("/proc/self/status") as f:
            return next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmRSS:"))

    before = common.rss_parts()
    assert abs(sum(before.values()) - vm_rss()) < 4 * 2**20
    held = np.ones(64 * 2**20 // 8)
    after = common.rss_parts()
    assert after["RssAnon"] - before["RssAnon"] > 60 * 2**20
    assert abs(after["RssFile"] - before["RssFile"]) < 16 * 2**20
    del held


def test_cross_validation_smoke(tmp_path, common_args, tiny_data):
    out = tmp_path / "cross_validation.json"
    result = _load("cross_validation").main([*common_args, "--output", str(out)])
    saved = json.loads(out.read_text())
    _check_machine(saved)
    assert sorted((r["value"], r["fold"]) for r in saved["runs"]) == [("0.001", 0), ("0.001", 1), ("0.003", 0),
                                                                      ("0.003", 1)]
    runs = _load("common").read_records(saved, out)
    # the two folds hold out disjoint corruption types and together every pooled training record once
    by_fold = {r["fold"]: r for r in runs if r["value"] == "0.001"}
    assert not set(by_fold[0]["held_out_groups"]) & set(by_fold[1]["held_out_groups"])
    assert sum(len(r["held_out_labels"]) for r in by_fold.values()) == tiny_data.train.n + tiny_data.validation.n
    assert all(len(r["validation_pred"]) == len(r["held_out_labels"]) for r in runs)
    agg = saved["aggregate"]
    assert agg["chosen"] in ("0.001", "0.003") and agg["criterion"] == "macro_f1"
    chosen = agg["rows"][agg["chosen"]]["out_of_fold"]["macro_f1"]["point"]
    assert all(row["out_of_fold"]["macro_f1"]["point"] <= chosen for row in agg["rows"].values())
    other = next(v for v in agg["rows"] if v != agg["chosen"])
    difference = agg["rows"][other]["minus_chosen"]
    assert difference["point"] == pytest.approx(agg["rows"][other]["out_of_fold"]["macro_f1"]["point"] - chosen)
    assert difference["point"] <= 0 and difference["low"] <= difference["high"]
    by_patient = agg["rows"][other]["macro_f1_minus_chosen_by_patient"]
    assert by_patient["point"] == pytest.approx(difference["point"]) and by_patient["low"] <= by_patient["high"]
    assert "(chosen)" in result["table"]
    again = _load("cross_validation").main([*common_args, "--output", str(out), "--aggregate_only"])
    assert again["aggregate"] == agg and len(again["runs"]) == len(runs)  # the records reused, nothing trained


def test_cross_validation_refuses_a_criterion_the_dataset_does_not_report(capsys):
    with pytest.raises(SystemExit):
        _load("cross_validation").parse(["--dataset", "mitbih_arrhythmia", "--flag", "lr", "--values", "0.1;0.2",
                                         "--criterion", "S_F1"])
    assert "choose one of macro_f1, S_se, S_ppv, S_f1, V_se, V_ppv, V_f1" in capsys.readouterr().err
