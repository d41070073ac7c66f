"""``MODEL_CARD.md``: the model's metadata (``export.metadata``) rendered for people.

Everything in the card comes from the metadata dict, nothing else: intended
use, how to run it, data and training cost, test metrics with their
intervals, the export checks, the limitations (unknown signal facts first)
and the audit of the records dropped as unreliable.
"""

from __future__ import annotations

UNKNOWN = "**unknown**"


def _num(value, spec: str = ".4f") -> str:
    return "n/a" if value is None else format(value, spec)


def _ci(entry: dict | None, spec: str = ".4f") -> str:
    if not entry or entry.get("low") is None:
        return "no interval"
    return f"[{entry['low']:{spec}}, {entry['high']:{spec}}]"


def _table(headers: list[str], rows: list[list]) -> list[str]:
    return ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|",
            *("| " + " | ".join(str(c) for c in row) + " |" for row in rows)]


def _facts(meta: dict) -> list[str]:
    model_input = meta["input"]
    sources = model_input["sources"]
    rate, names, units = model_input["sampling_rate_hz"], model_input["lead_names"], model_input["units"]

    def value(fact, text):
        return f"{text} ({sources[fact]})" if sources[fact] else f"{UNKNOWN}: {meta['training']['dataset']} declares none"

    return _table(["input", "value"], [
        ["tensor", f"`{model_input['name']}` {model_input['dtype']} {model_input['layout']}, any batch size"],
        ["length", f"{model_input['length_samples']} samples"
                   + (f" ({model_input['duration_s']:g} s)" if model_input["duration_s"] is not None else "")],
        ["sampling rate", value("sampling_rate_hz", f"{rate:g} Hz" if rate is not None else "")],
        ["leads, in order", value("lead_names", ", ".join(names) if names else "")],
        ["units", value("units", str(units))],
    ])


def _unknown_facts(meta: dict) -> list[str]:
    labels = {"sampling_rate_hz": "sampling rate", "lead_names": "lead names and order"}
    return [labels[f] for f in labels if meta["input"][f] is None]


def _metrics(meta: dict) -> list[str]:
    m = meta["test_metrics"]
    boot = m["bootstrap"]
    head = (f"Test split, {m['n']} records; percentile {int(round(boot['level'] * 100))} % intervals from "
            f"{boot['rounds']} bootstrap resamples of the records (seed {boot['seed']})." if boot else
            f"Test split, {m['n']} records; no bootstrap intervals.")
    if m.get("task") == "multi":
        return [head, "", *_table(["metric", "value", "interval"], [
            [f"macro AUROC ({m['label_feature']}, multi-label)", _num(m["macro_auroc"]["point"]), _ci(m["macro_auroc"])],
            ["macro-F1 at 0.5", _num(m["macro_f1"]["point"]), _ci(m["macro_f1"])],
            ["macro-F1 at the validation-chosen thresholds", _num(m["macro_f1_validation_thresholds"]["point"]),
             _ci(m["macro_f1_validation_thresholds"])],
        ]), "", *_table(["class", "AUROC", "AUROC interval", "F1 at 0.5", "threshold", "F1 at threshold", "support"], [
            [name, _num(v["auroc"], ".3f"), _ci(v["auroc_ci"], ".3f"), _num(v["f1"], ".3f"), _num(v["threshold"], ".3f"),
             _num(v["f1_at_threshold"], ".3f"), v["support"]] for name, v in m["per_class"].items()])]
    lines = [head, "", *_table(["metric", "value", "interval"], [
        ["macro-F1", _num(m["macro_f1"]["point"]), _ci(m["macro_f1"])],
        ["accuracy", _num(m["accuracy"]["point"]), _ci(m["accuracy"])],
        ["macro AUROC (one-vs-rest)", _num(m["macro_auroc"]["point"]), _ci(m["macro_auroc"])],
        *([[f"multi-label macro AUROC ({m['multilabel']['feature']})", _num(m["multilabel"]["macro_auroc"]["point"]),
            _ci(m["multilabel"]["macro_auroc"])]] if "multilabel" in m else []),
    ]), "", *_table(["class", "precision", "recall", "F1", "F1 interval", "AUROC", "support"], [
        [name, _num(v["precision"], ".3f"), _num(v["recall"], ".3f"), _num(v["f1"], ".3f"), _ci(v["f1_ci"], ".3f"),
         _num(v["auroc"], ".3f"), v["support"]] for name, v in m["per_class"].items()])]
    point = m.get("operating_point")
    if point:
        offsets = ", ".join(f"{name} {v:+.2f}" for name, v in point["offsets"].items())
        lines += ["", f"At the operating point chosen on the validation split ({point['rule']}; offsets {offsets}): "
                      f"macro-F1 {_num(point['macro_f1']['point'])} {_ci(point['macro_f1'])}.", "",
                  *_table(["class", "precision", "recall", "F1"], [
                      [name, _num(v["precision"], ".3f"), _num(v["recall"], ".3f"), _num(v["f1"], ".3f")]
                      for name, v in point["per_class"].items()])]
    return lines


def _checks(meta: dict) -> list[str]:
    parity, variants = meta["parity"], meta["variants"]
    lines = [f"Against the Keras model on {parity['n']} raw {parity.get('dataset', '')}/{parity.get('split', '')} "
             f"records (tolerance {parity['tolerance']:g}, ONNX opset {parity.get('onnx_opset')}):", "",
             *_table(["artefact", "max abs difference", "argmax identical", "passed"],
                     [[k, f"{parity[k]['max_abs_diff']:.2e}", parity[k]["argmax_identical"], parity[k]["passed"]]
                      for k in ("saved_model", "onnx") if k in parity])]
    files = variants["files"]
    latency = variants["latency"]
    batches = [str(b) for b in latency["batch_sizes"]]
    rows = []
    for name, entry in files.items():
        p = entry.get("parity")
        rows.append([f"{name} (`{entry['file']}`)", f"{entry['size_bytes'] / 2**20:.2f}",
                     _num(entry.get("size_ratio"), ".2f"),
                     *(f"{entry['ms_per_record'][b]:.3g}" for b in batches),
                     *(_num(entry.get("latency_ratio", {}).get(b), ".2f") for b in batches),
                     _num(p and p["argmax_agreement"], ".3f"), _num(p and p["macro_f1_diff"], "+.4f"),
                     _num(p and p["max_abs_diff"], ".2e"),
                     "reference" if p is None else ("yes" if entry["within_bounds"] else "**NO: do not deploy**")])
    lines += ["", f"ONNX variants against float32 on the test records (onnxruntime CPU, {latency['threads']} thread(s), "
                  f"median of {latency['rounds']} side-by-side rounds; sizes before the metadata is embedded):", "",
              *_table(["variant", "MiB", "size ratio", *(f"ms/record b{b}" for b in batches),
                       *(f"latency ratio b{b}" for b in batches), "argmax agreement", "macro-F1 diff", "max abs diff",
                       "within bounds"], rows)]
    for name, entry in files.items():
        if "method" in entry:
            lines.append(f"- {name}: {entry['method']}; bounds {entry['bounds']}"
                         + (f"; chosen {entry['chosen_method']}: {entry['choice']}" if "choice" in entry else ""))
    return lines


def _audit(meta: dict) -> list[str]:
    audit = meta["audit"]
    lines = ["## Records dropped as unreliable", ""]
    if not audit["available"]:
        return lines + [f"Not available: {audit['note']}."]
    n, total = audit["records_dropped_as_unreliable"], audit["train_records"]
    lines.append(f"During training, {n} of {total} training records were dropped at least once as "
                 f"`{audit['reason']}` (not confidently classified and a diffuse Grad-CAM): candidates for a manual "
                 "check of signal quality and label." + (" The most frequent:" if audit["most_dropped"] else ""))
    if audit["most_dropped"]:
        columns = list(audit["most_dropped"][0])
        lines += ["", *_table(columns, [[_num(r[c], ".3f") if isinstance(r[c], float) else r[c] for c in columns]
                                        for r in audit["most_dropped"]])]
    for column, shares in audit["breakdown"].items():
        if not shares:
            continue
        reasons = list(next(iter(shares.values())))
        lines += ["", f"Share of `{column}` values among the distinct records dropped per reason:", "",
                  *_table([column, *reasons], [[value, *(f"{row[r]:.3f}" for r in reasons)]
                                               for value, row in shares.items()])]
    return lines


def _limitations(meta: dict) -> list[str]:
    training = meta["training"]
    unknown = _unknown_facts(meta)
    lines = []
    if unknown:
        lines.append(f"- The training dataset `{training['dataset']}` does not declare the {' and '.join(unknown)} of "
                     "its signal, so neither does this card: find them in the dataset's documentation before "
                     "feeding records; `python -m export.predict` refuses records it cannot map or resample.")
    if meta["input"]["units"] is None:
        lines.append(f"- The units of the training signal are unknown (`{training['dataset']}` declares none); the "
                     "per-lead z-score makes any linear unit give the same output, but not an inverted lead.")
    lines += [
        f"- Trained on {training['split_sizes'].get('train')} records of `{training['dataset']}` "
        f"({training['dataset_config'] or 'default config'}); other devices, populations, lead placements and "
        "rhythms may perform differently. The test intervals resample the test records only: they do not cover "
        "another training seed or dataset.",
        f"- Single-label ({meta['output']['activation']}): one class per record, even when a record has several "
        "findings or none of the classes.",
        "- The model z-scores each lead of each record: a lead's absolute amplitude carries no information to it.",
        "- Research software, not a medical device; not validated for clinical decisions.",
    ]
    outside = [n for n, e in meta["variants"]["files"].items() if e.get("within_bounds") is False]
    if outside:
        lines.append(f"- Variant(s) {', '.join(outside)} are outside their parity bounds: use float32.")
    if meta["selection"]["cost"] is None:
        lines.append(f"- {meta['selection']['note']}.")
    return lines


def model_card(meta: dict) -> str:
    """The Markdown text of the card for the metadata dict ``meta``."""
    training, selection, output = meta["training"], meta["selection"], meta["output"]
    model_input = meta["input"]
    rate = model_input["sampling_rate_hz"]
    leads = f"{model_input['leads']}-lead"
    duration = f"{model_input['duration_s']:g} s" if model_input["duration_s"] is not None else \
        f"{model_input['length_samples']}-sample"
    cost = selection["cost"]
    lines = [
        f"# Model card: {training['model']} on {training['dataset']}/{training['dataset_config']}", "",
        f"Exported {meta['exported_utc']} by erts-tf {meta['erts_tf_version']} ({meta['format']}). Generated from the "
        "metadata embedded in `saved_model/assets.extra/metadata.json` and in the `erts_tf.metadata` "
        "metadata_props of every `.onnx` file.", "",
        "## Intended use", "",
        f"Research and engineering: classify a {duration}, {leads} ECG"
        + (f" sampled at {rate:g} Hz" if rate is not None else " (sampling rate unknown: see Limitations)")
        + f" into one of {len(output['classes'])} classes: {', '.join(output['classes'])} "
        f"({output['activation']} probabilities, in this order). Not for clinical use.", "",
        "## Input and preprocessing", "", *_facts(meta), "",
        "The model does itself: " + "; ".join(meta["preprocessing"]["in_model"]) + ".",
        "Before the model (`python -m export.predict` does it): " + "; ".join(meta["preprocessing"]["before_model"]) + ".",
        f"Units: {meta['preprocessing']['unit_invariance']}.", "",
        "```bash",
        "python -m export.predict --model=<this folder> --record=<record or folder> [--variant=int8] [--csv=out.csv]",
        "```", "",
        "## Data and training", "",
        f"- dataset `{training['dataset']}` ({training['dataset_config'] or 'default config'}), records per split: "
        + ", ".join(f"{k} {v}" for k, v in training["split_sizes"].items()),
        f"- backbone `{training['model']}`, epochs {training['epochs']}, seed {training['seed']}, "
        f"best validation epoch {training['best_epoch']}, weights of epoch {training.get('weights_epoch')}",
        f"- selection mode `{selection['mode']}`, level `{selection['level']}`"
        + (f": {cost['effective_epochs']:.2f} effective epochs (back-propagated samples / training set), "
           f"total-work ratio {cost['total_work_ratio']:.3f} of full training" if cost else ""),
        "", "## Test metrics", "", *_metrics(meta), "",
        "## Export checks", "", *_checks(meta), "",
        "## Limitations", "", *_limitations(meta), "",
        *_audit(meta),
    ]
    return "\n".join(lines) + "\n"


def write_card(meta: dict, path: str) -> str:
    """Writes ``model_card(meta)`` to ``path``; returns the path."""
    with open(path, "w") as f:
        f.write(model_card(meta))
    return path
