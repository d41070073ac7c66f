"""Model metadata: one JSON in the SavedModel and every ONNX variant, equal to the run's; the card made from it."""

import importlib.metadata
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from deploy_fixtures import FACTS, exported_tiny_run


@pytest.fixture(scope="module")
def exported(tmp_path_factory, tfds_dir, tiny_data, tiny_backbone):
    return exported_tiny_run(tmp_path_factory, tfds_dir, tiny_data, tiny_backbone)


def _json(path):
    with open(path) as f:
        return json.load(f)


def test_metadata_round_trips_from_both_artefacts(exported):
    """Read back from the SavedModel and from every ONNX file (onnx and onnxruntime): the same dict."""
    from export import layout
    from export.metadata import (METADATA_KEY, VARIANT_KEY, metadata_from_props, read_onnx_metadata,
                                 read_saved_model_metadata)
    from export.onnx_export import onnx_session

    _, export_dir, result = exported
    written = result["metadata"]
    assert read_saved_model_metadata(str(export_dir / layout.SAVED_MODEL)) == written
    assert set(written["variants"]["files"]) == {"float32", "float16", "int8"}
    for variant, entry in written["variants"]["files"].items():
        path = str(export_dir / entry["file"])
        assert read_onnx_metadata(path) == written, variant
        props = onnx_session(path).get_modelmeta().custom_metadata_map  # what export.predict reads
        assert metadata_from_props(props, path) == written and props[VARIANT_KEY] == variant
        assert METADATA_KEY in props


def test_metadata_equals_the_run(exported):
    """Every section against the files of the run it describes, not against the exporter's own dict."""
    from export.onnx_export import INPUT_NAME, OUTPUT_NAME

    run_dir, export_dir, result = exported
    meta = result["metadata"]
    config, summary = _json(run_dir / "config.json"), _json(run_dir / "summary.json")
    evaluation = _json(run_dir / "eval_test.json")  # written by the export: the run had report=False

    assert meta["output"] == {**meta["output"], "name": OUTPUT_NAME, "activation": "softmax",
                              "classes": summary["dataset"]["classes"], "shape": [None, len(summary["dataset"]["classes"])]}
    model_input = meta["input"]
    assert model_input["name"] == INPUT_NAME and model_input["layout"] == "(batch, time, leads)"
    assert model_input["shape"] == [None, *summary["dataset"]["input_shape"]] == [None, 1000, 12]
    assert model_input["sampling_rate_hz"] == 100 and model_input["duration_s"] == 10.0
    assert model_input["lead_names"] == FACTS["lead_names"]
    assert model_input["sources"] == {"sampling_rate_hz": "export flag --sampling_rate",
                                      "lead_names": "export flag --lead_names",
                                      "units": "synthetic_ecg builder module constant UNITS"}
    assert model_input["units"] == "arbitrary units"
    assert "z-score" in meta["preprocessing"]["in_model"][1]

    assert meta["training"]["config"] == config
    assert meta["training"]["dataset"] == config["dataset"] == "synthetic_ecg"
    assert meta["training"]["split_sizes"] == {"train": 96, "validation": 32, "test": 32}
    assert meta["training"]["best_epoch"] == summary["best_epoch"]
    assert meta["training"]["weights_epoch"] == summary["weights_epoch"]
    assert meta["selection"] == {**meta["selection"], "mode": "erts", "level": "epoch", "cost": summary["cost"]}

    tested = meta["test_metrics"]
    assert tested["n"] == evaluation["metrics"]["n"] == 32
    assert tested["macro_f1"] == {"point": evaluation["metrics"]["macro_f1"],
                                  "low": evaluation["bootstrap"]["macro_f1"]["low"],
                                  "high": evaluation["bootstrap"]["macro_f1"]["high"]}
    assert tested["macro_f1"]["low"] <= tested["macro_f1"]["point"] <= tested["macro_f1"]["high"]
    assert tested["macro_f1"]["point"] == pytest.approx(summary["test"]["macro_f1"])  # same model, same split
    assert tested["bootstrap"]["rounds"] == 1000
    for name, values in tested["per_class"].items():
        assert values["f1"] == evaluation["metrics"]["per_class"][name]["f1"]
    point = tested["operating_point"]  # chosen on validation, as evaluate chose it
    assert point["chosen_on"] == "validation" and point["offsets"] == evaluation["metrics"]["tuned"]["offsets"]
    assert point["macro_f1"]["point"] == evaluation["metrics"]["tuned"]["macro_f1"]

    parity = _json(export_dir / "parity.json")
    assert meta["parity"] == {k: parity[k] for k in meta["parity"]} and meta["parity"]["passed"]
    assert meta["erts_tf_version"] == importlib.metadata.version("erts-tf")


def test_audit_summary_is_the_runs(exported):
    from erts_tf.report import audit_summary

    run_dir, _, result = exported
    audit = result["metadata"]["audit"]
    table = audit_summary.low_focus_records(audit_summary.read_audit(str(run_dir / "audit.csv")), 8, top=None)
    assert audit["available"] and audit["records_dropped_as_unreliable"] == len(table) > 0
    assert [r["sample_id"] for r in audit["most_dropped"]] == table["sample_id"].head(10).tolist()
    assert set(audit["breakdown"]["corruption"]) <= {"none", "baseline_wander", "burst_noise", "flat_lead",
                                                     "electrode_swap", "label_flip"}


def test_model_card_is_generated_from_the_metadata(exported):
    from export.card import model_card

    _, export_dir, result = exported
    meta = result["metadata"]
    card = (export_dir / "MODEL_CARD.md").read_text()
    assert card == model_card(meta)
    for heading in ("## Intended use", "## Test metrics", "## Export checks", "## Limitations",
                    "## Records dropped as unreliable"):
        assert heading in card
    assert ", ".join(meta["output"]["classes"]) in card
    assert f"{meta['test_metrics']['macro_f1']['point']:.4f}" in card
    assert "At the operating point chosen on the validation split" in card
    assert f"{meta['audit']['records_dropped_as_unreliable']} of 96 training records" in card
    assert "| units | arbitrary units (synthetic_ecg builder module constant UNITS) |" in card
    assert "units of the training signal are unknown" not in card

    unknown = json.loads(json.dumps(meta))
    unknown["input"].update(sampling_rate_hz=None, duration_s=None, lead_names=None, units=None)
    unknown["input"]["sources"].update(sampling_rate_hz=None, lead_names=None, units=None)
    text = model_card(unknown)
    assert "| sampling rate | **unknown**: synthetic_ecg declares none |" in text
    assert "| units | **unknown**: synthetic_ecg declares none |" in text
    assert "does not declare the sampling rate and lead names and order of its signal" in text
    assert "The units of the training signal are unknown (`synthetic_ecg` declares none)" in text


def test_dataset_facts_come_from_the_builders(tmp_path):
    """Declared where the builder declares them (config, class or module), unknown elsewhere, never guessed."""
    from erts_tf.data import registry
    from export.dataset_facts import dataset_facts
    from export.errors import ExportError

    def facts(name, config, n_leads, overrides=None):
        return dataset_facts(registry.builder(name, config, data_dir=str(tmp_path)), n_leads, overrides)

    ptbxl = facts("ptbxl", "500hz", 12)
    assert ptbxl["sampling_rate_hz"] == 500 and ptbxl["lead_names"][:4] == ["I", "II", "III", "aVR"]
    assert ptbxl["sources"]["sampling_rate_hz"] == "ptbxl builder config '500hz'"
    assert facts("georgia", None, 12)["sampling_rate_hz"] == 500  # the Challenge 2020 builder class
    cinc = facts("cinc2017", "9s", 1)
    assert cinc["sampling_rate_hz"] == 300 and cinc["lead_names"] is None
    synthetic = facts("synthetic_ecg", "tiny", 12)
    assert synthetic["sampling_rate_hz"] is None and synthetic["lead_names"] is None
    assert synthetic["sources"]["sampling_rate_hz"] is None and synthetic["sources"]["lead_names"] is None
    filled = facts("synthetic_ecg", "tiny", 12, {"sampling_rate_hz": 100})
    assert filled["sampling_rate_hz"] == 100 and filled["sources"]["sampling_rate_hz"] == "export flag --sampling_rate"
    with pytest.raises(ExportError, match=r"--sampling_rate=100 contradicts ptbxl builder config '500hz'"):
        facts("ptbxl", "500hz", 12, {"sampling_rate_hz": 100})
    with pytest.raises(ExportError, match=r"--units=uV contradicts cinc2017 builder module constant UNITS"):
        facts("cinc2017", "9s", 1, {"units": "uV"})
    with pytest.raises(ExportError, match=r"names 12 leads .* the model takes 1"):
        facts("ptbxl", "100hz", 1)


# What each builder stores (checked against the headers of the real archives in ../shared/data where they exist).
DECLARED_UNITS = {
    "ptbxl": ("mV", "ptbxl builder module constant UNITS"),
    "cinc2017": ("mV", "cinc2017 builder module constant UNITS"),
    "mitbih_arrhythmia": ("mV", "mitbih_arrhythmia builder module constant UNITS"),
    "cpsc2018": ("mV", "cpsc2018 builder class Builder.UNITS"),
    "georgia": ("mV", "georgia builder class Builder.UNITS"),
    "synthetic_ecg": ("arbitrary units", "synthetic_ecg builder module constant UNITS"),
}


@pytest.mark.parametrize("name", sorted(DECLARED_UNITS))
def test_every_builder_declares_its_units(name, tmp_path):
    """The units each builder declares (UNITS beside SAMPLING_RATE / LEADS) reach the export's facts."""
    from erts_tf.data import registry
    from export.dataset_facts import dataset_facts

    assert set(registry.names()) == set(DECLARED_UNITS)  # a new builder must declare its units too
    builder = registry.builder(name, data_dir=str(tmp_path))
    facts = dataset_facts(builder, builder.info.features["signal"].shape[-1])
    assert (facts["units"], facts["sources"]["units"]) == DECLARED_UNITS[name]


def test_export_cli_rejects_lead_names_that_do_not_fit(exported):
    run_dir, _, _ = exported
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    bad = subprocess.run([sys.executable, "-m", "export", f"--run_dir={run_dir}", f"--out={run_dir / 'unused'}",
                          "--lead_names=I,II"], capture_output=True, text=True, env=env, timeout=300)
    assert bad.returncode == 2
    assert [line for line in bad.stderr.splitlines() if line.startswith("error:")] == [
        "error: export flag --lead_names names 2 leads (I, II); the model takes 12"]
    assert not (run_dir / "unused" / "model.onnx").exists()


def test_variant_parity_records_follow_the_runs_classes(tfds_dir, tiny_data):
    """A run trained with --exclude_classes=af: its test records without af, labels renumbered as in training."""
    from erts_tf.data import pipeline
    from export.errors import ExportError
    from export.run import labelled_split

    builder = pipeline.prepare("synthetic_ecg", "tiny", tfds_dir)
    names = [n for n in tiny_data.test.class_names if n != "af"]
    kept = labelled_split(builder, "test", names)
    expected = pipeline.exclude_classes(tiny_data.test, ("af",))
    assert kept.class_names == names and kept.n == expected.n < tiny_data.test.n
    np.testing.assert_array_equal(kept.label, expected.label)
    np.testing.assert_allclose(pipeline.zscore(kept.signal), expected.signal, atol=1e-5)  # raw, in sample-id order
    with pytest.raises(ExportError, match="are not those of synthetic_ecg"):
        labelled_split(builder, "test", names[::-1])
