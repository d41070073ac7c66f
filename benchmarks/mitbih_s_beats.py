"""Where MIT-BIH's S beats are found and missed: per record, inside runs or not, and what the RR ratio alone marks.

Reads the per-run records of a ``benchmarks/baselines.py`` run on MIT-BIH (``--runs``: their ``test_pred``, one
class per DS2 beat in sample-id order, Q left out) and the built TFDS dataset (``--dataset_config``, default
``mlii_rhythm_relative``), and reports, for each record of ``--runs``:

  - S sensitivity per test record (the records that hold S beats), and for S beats inside a run (the previous
    beat of the record is an S beat too) against the others, with record 232 apart;
  - the RR ratio rule: the beat's previous RR interval over the patient's mean RR (``mean_rr`` of the builder,
    over 5 minutes each side, the relative rhythm channel's unit) below ``--rr_ratio``, as a classifier of S
    against N beats alone, on DS1 (train and validation) and DS2 (test): its sensitivity and precision.

No training:

  python benchmarks/mitbih_s_beats.py --runs benchmarks/results/baselines_mitbih_arrhythmia_operating_point_runs
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import common  # noqa: E402

NAME = "mitbih_s_beats"
CLASSES = ("N", "S", "V", "F", "Q")  # the builder's CLASSES: its module is imported only after the splits are loaded


def parse(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output", default=str(common.RESULTS_DIR / f"{NAME}.json"), help="JSON result path")
    parser.add_argument("--data_dir", default=None, help="TFDS data dir (default: TFDS's ~/tensorflow_datasets)")
    parser.add_argument("--runs", required=True, help="folder of per-run records (JSON with test_pred)")
    parser.add_argument("--dataset_config", default="mlii_rhythm_relative")
    parser.add_argument("--rr_ratio", type=float, default=0.8, help="the RR rule's threshold")
    return parser.parse_args(argv)


def beats(split: str, dataset_config: str, data_dir: str | None) -> dict:
    """The split's beats in sample-id order: ``record``, ``label``, ``sample`` (R peak), ``beat_index``, as arrays."""
    import numpy as np
    import tensorflow_datasets as tfds

    ds = tfds.load(f"mitbih_arrhythmia/{dataset_config}", split=split, data_dir=data_dir)
    fields = ("record", "label", "sample", "beat_index", "sample_id")
    rows = list(tfds.as_numpy(ds.map(lambda e: {k: e[k] for k in fields})))
    order = np.argsort([int(r["sample_id"]) for r in rows], kind="stable")
    return {
        "record": np.array([rows[i]["record"].decode() for i in order]),
        "label": np.array([int(rows[i]["label"]) for i in order]),
        "sample": np.array([int(rows[i]["sample"]) for i in order]),
        "beat_index": np.array([int(rows[i]["beat_index"]) for i in order]),
    }


def rhythm_facts(split_beats: dict) -> dict:
    """Per beat: ``rr_ratio`` (previous RR over the patient's 5-minute mean RR; NaN for a record's first beat) and
    ``after_s`` (the record's previous beat is an S beat)."""
    import numpy as np

    from datasets.mitbih_arrhythmia import mitbih_arrhythmia_dataset_builder as builder

    n = len(split_beats["label"])
    rr_ratio, after_s = np.full(n, np.nan), np.zeros(n, bool)
    half_width = round(builder.RELATIVE_RR_SPAN_S * builder.SAMPLING_RATE)
    for record in np.unique(split_beats["record"]):
        where = np.flatnonzero(split_beats["record"] == record)
        where = where[np.argsort(split_beats["beat_index"][where], kind="stable")]
        peaks = split_beats["sample"][where]
        for k in range(1, len(where)):
            rr_ratio[where[k]] = (peaks[k] - peaks[k - 1]) / builder.mean_rr(int(peaks[k]), peaks, half_width)
            after_s[where[k]] = split_beats["label"][where[k - 1]] == CLASSES.index("S")
    return {"rr_ratio": rr_ratio, "after_s": after_s}


def rr_rule(split_beats: dict, facts: dict, threshold: float) -> dict:
    """Sensitivity and precision of ``rr_ratio < threshold`` as S against N beats alone."""
    import numpy as np

    s, n = split_beats["label"] == CLASSES.index("S"), split_beats["label"] == CLASSES.index("N")
    known = np.isfinite(facts["rr_ratio"]) & (s | n)
    called = known & (facts["rr_ratio"] < threshold)
    return {"s_beats": int((s & known).sum()), "sensitivity": float((called & s).sum() / max(1, (s & known).sum())),
            "precision": float((called & s).sum() / max(1, called.sum()))}


def found_share(pred, selected) -> dict:
    import numpy as np

    count = int(selected.sum())
    return {"s_beats": count, "found": int((pred[selected] == CLASSES.index("S")).sum()),
            "sensitivity": float(np.mean(pred[selected] == CLASSES.index("S"))) if count else None}


def main(argv=None):
    import numpy as np

    args = parse(argv)
    test = beats("test", args.dataset_config, args.data_dir)
    # every split is loaded before rhythm_facts imports the builder module (TFDS cannot load a builder imported so)
    ds1_parts = [beats(split, args.dataset_config, args.data_dir) for split in ("train", "validation")]
    keep = test["label"] != CLASSES.index("Q")  # the runs leave Q out (--exclude_classes=Q)
    facts = rhythm_facts(test)
    test, facts = {k: v[keep] for k, v in test.items()}, {k: v[keep] for k, v in facts.items()}
    is_s = test["label"] == CLASSES.index("S")
    in_232 = test["record"] == "232"
    runs = []
    for path in sorted(pathlib.Path(args.runs).glob("*.json")):
        record = json.loads(path.read_text())
        pred = np.asarray(record["test_pred"])
        if len(pred) != len(test["label"]):
            raise SystemExit(f"{path}: {len(pred)} predictions, the test split has {len(test['label'])} non-Q beats")
        runs.append({
            "run": path.name, "seed": record.get("seed"),
            "all": found_share(pred, is_s),
            "in_run": found_share(pred, is_s & facts["after_s"]),
            "not_in_run": found_share(pred, is_s & ~facts["after_s"]),
            "record_232_in_run": found_share(pred, is_s & facts["after_s"] & in_232),
            "other_records": found_share(pred, is_s & ~in_232),
            "by_record": {r: {**found_share(pred, is_s & (test["record"] == r)),
                              "called_V": int((pred[is_s & (test["record"] == r)] == CLASSES.index("V")).sum())}
                          for r in np.unique(test["record"][is_s])},
        })
    ds1 = {k: np.concatenate([part[k] for part in ds1_parts]) for k in ds1_parts[0]}
    ds1_facts = rhythm_facts(ds1)  # train and validation hold different records
    result = {"runs_folder": args.runs, "rr_ratio_threshold": args.rr_ratio, "runs": runs,
              "rr_rule": {"DS2": rr_rule(test, facts, args.rr_ratio), "DS1": rr_rule(ds1, ds1_facts, args.rr_ratio)}}
    headers = ["run", "S Se", "in runs", "not in runs", "232 in runs", "other records"]
    rows = [[r["run"], *(f"{r[k]['sensitivity']:.2f} ({r[k]['found']}/{r[k]['s_beats']})" for k in
                         ("all", "in_run", "not_in_run", "record_232_in_run", "other_records"))] for r in runs]
    text = common.markdown_table(headers, rows) + "\n\n" + "\n".join(
        f"RR ratio < {args.rr_ratio} on {split}: S Se {v['sensitivity']:.2f}, precision among S and N {v['precision']:.2f} "
        f"({v['s_beats']} S beats)" for split, v in result["rr_rule"].items())
    print(text)
    print(f"wrote {common.write_json(pathlib.Path(args.output), result)}")
    return result


if __name__ == "__main__":
    main()
