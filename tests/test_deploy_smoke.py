"""``benchmarks/deploy.py --smoke``: trains a tiny run, exports it, and reports every variant side by side."""

import json

from test_benchmarks_smoke import _check_machine, _load


def test_deploy_smoke(tmp_path, tfds_dir, tiny_data, tiny_backbone):
    del tiny_data  # builds synthetic_ecg/tiny in tfds_dir once
    out = tmp_path / "deploy.json"
    result = _load("deploy").main(["--smoke", "--models", tiny_backbone, "--data_dir", tfds_dir,
                                   "--work_dir", str(tmp_path / "work"), "--output", str(out)])
    saved = json.loads(out.read_text())
    _check_machine(saved)
    (entry,) = saved["models"]
    assert entry["model"] == tiny_backbone and entry["train_s"] > 0 and entry["keras_parity"]["passed"]
    rows = entry["rows"]
    assert list(rows) == ["float32", "float16", "int8_static", "int8_static_mixed", "int8_dynamic"]
    assert sum(row["kept_as_int8"] for row in rows.values()) == 1 and rows[entry["int8_kept"]]["kept_as_int8"]
    assert entry["latency"]["rounds"] == 2 and entry["latency"]["batch_sizes"] == [1, 32]
    for name, row in rows.items():
        for batch in ("1", "32"):
            assert row["ms_per_record"][batch]["median"] > 0
        if name != "float32":
            assert row["parity"]["n"] == entry["parity_records"]["n"] == 32
            assert 0 <= row["parity"]["argmax_agreement"] <= 1
    kept = rows[entry["int8_kept"]]
    assert entry["targets"]["argmax_agreement >= 0.99"] == (kept["parity"]["argmax_agreement"] >= 0.99)
    assert set(entry["targets"]) == {"size_ratio <= 0.35", "latency_ratio b1 <= 0.7", "latency_ratio b32 <= 0.7",
                                     "argmax_agreement >= 0.99", "|macro_f1_diff| <= 0.01"}
    assert "int8 targets" in result["table"]
