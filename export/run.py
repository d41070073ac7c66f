"""``export_run``: SavedModel + ONNX (float32, float16, int8) + parity + metadata + model card for a finished run."""

from __future__ import annotations

import json
import os

import numpy as np

from erts_tf import run_data, run_folder
from erts_tf.evaluate import evaluate
from export import layout
from export.card import write_card
from export.dataset_facts import dataset_facts
from export.errors import ExportError
from export.metadata import build_metadata, write_metadata
from export.onnx_export import DEFAULT_OPSET, export_onnx
from export.parity import DEFAULT_TOLERANCE, check_parity, raw_records
from export.variants import make_variants

DEFAULT_CALIBRATION_SAMPLES = 128


def saved_or_new_evaluation(run_dir: str, data_dir: str | None, seed: int) -> dict:
    """The run's ``eval_test.json``; computed (and written) by ``erts_tf.evaluate`` if the run has none."""
    saved = run_folder.read_eval(run_dir, "test")
    return saved if saved is not None else evaluate(run_dir, "test", rounds=1000, seed=seed, data_dir=data_dir)


def class_names(summary: dict | None, builder, n_outputs: int) -> list[str]:
    """The output classes in order: the run's ``summary.json``, else the dataset's label names."""
    names = summary["dataset"]["classes"] if summary else list(builder.info.features["label"].names)
    if len(names) != n_outputs:
        raise ExportError(f"the model has {n_outputs} outputs but {len(names)} class names ({', '.join(names)})")
    return names


def labelled_split(builder, split: str, names: list[str]):
    """Every raw record of ``split`` as ``SplitArrays``: raw signal, sample-id order, labels in the order of ``names``.

    A run trained with ``--exclude_classes`` has fewer classes than its dataset: the
    records of the classes it left out are dropped, the others renumbered
    (``pipeline.exclude_classes``, as training did).
    """
    from erts_tf.data import pipeline

    records = raw_records(builder, split, builder.info.splits[split].num_examples)
    order = np.argsort(records["sample_id"], kind="stable")
    dataset_names = list(builder.info.features["label"].names)
    arrays = pipeline.SplitArrays(records["signal"][order], records["label"][order].astype(np.int32), {},
                                  dataset_names, {})
    left_out = tuple(n for n in dataset_names if n not in names)
    arrays = pipeline.exclude_classes(arrays, left_out) if left_out else arrays
    if arrays.class_names != list(names):
        raise ExportError(f"the model's classes ({', '.join(names)}) are not those of {builder.name} "
                          f"({', '.join(dataset_names)}) in order")
    return arrays


def windowed_inputs(builder, config, split: str, n_samples: int, calibration_samples: int) -> dict:
    """What the checks of a run on windows (``--window_s``) feed the served model: raw evaluation windows.

    Returns ``{"parity": (signal, sample_ids)}`` of the first ``n_samples`` records of ``split``,
    ``"test": (signal, labels, n_records)`` of all of them (each window labelled with its record's label)
    and ``"calibration"``: the windows of ``calibration_samples`` training records spread over the split.
    """
    from erts_tf.data import pipeline

    test = run_data.load_split(builder, config, split)
    train = run_data.load_split(builder, config, "train")
    parity = pipeline.raw_windows(test, np.arange(min(n_samples, test.n)))
    test_windows, test_ids = pipeline.raw_windows(test, np.arange(test.n))
    calibration, _ = pipeline.raw_windows(train, np.arange(0, train.n, max(1, train.n // calibration_samples)))
    return {"parity": parity, "test": (test_windows, test.label[test_ids], test.n), "calibration": calibration}


MULTI_LABEL_VARIANTS_NOTE = ("a multi-label run exports the float32 SavedModel and ONNX only: the float16/int8 "
                             "variants' checks (argmax agreement, macro-F1) are single-label")


def export_run(run_dir: str, out_dir: str | None = None, opset: int = DEFAULT_OPSET, split: str = "test",
               n_samples: int = 64, data_dir: str | None = None, tolerance: float = DEFAULT_TOLERANCE,
               variants=layout.VARIANTS, calibration_samples: int = DEFAULT_CALIBRATION_SAMPLES,
               facts: dict | None = None, candidates_dir: str | None = None, latency_rounds: int = 3,
               threads: int = 1) -> dict:
    """Exports ``<run_dir>/model.keras`` and checks it; writes everything into ``out_dir``.

    Writes ``saved_model/`` (with ``assets.extra/metadata.json``), ``model.onnx`` and
    the ``variants`` (``model.float16.onnx``, ``model.int8.onnx``), each with the
    metadata in its ``metadata_props``, ``parity.json`` and ``MODEL_CARD.md``
    (``export.layout``; ``out_dir`` defaults to ``<run_dir>/export``). A multi-label run
    (``--task=multi``) serves sigmoid probabilities and gets no float16/int8 variants
    (``MULTI_LABEL_VARIANTS_NOTE``).

    Args:
      run_dir: a finished run folder.
      out_dir: the export folder.
      opset: ONNX opset.
      split: split of the parity checks (Keras parity on its first ``n_samples`` raw records,
        the variants' parity on all of it; a run on windows: on their raw evaluation windows,
        ``windowed_inputs``).
      n_samples: records of the Keras parity check.
      data_dir: TFDS data dir, if not the one in the run's config.
      tolerance: largest accepted |probability difference| of SavedModel and ONNX to Keras.
      variants: names from ``layout.VARIANTS``.
      calibration_samples: raw training records (spread over the split) for the static int8 calibration.
      facts: ``{"sampling_rate_hz", "lead_names", "units"}`` given by the user for facts the
        dataset does not declare (``export.dataset_facts``).
      candidates_dir: keep the int8 candidates there (default: not kept).
      latency_rounds, threads: of the variants' latency measurement.

    Returns:
      The parity dict (also in ``parity.json``), with the written metadata under ``"metadata"``.

    Raises:
      RunFolderError: no run folder, or no ``model.keras`` in it.
      DataError: the run's dataset cannot be prepared or decoded.
      EvaluateError: the test split cannot be evaluated (a run without ``eval_test.json``).
      ExportError: signal facts that contradict the dataset, or class names that do not fit the model.
    """
    out_dir = out_dir or run_folder.path(run_dir, run_folder.EXPORT)
    config = run_folder.read_config(run_dir, data_dir)
    backbone = run_folder.load_model(run_dir)
    summary = run_folder.read_summary(run_dir)
    builder = run_data.prepare_builder(config)
    input_shape = tuple(int(d) for d in backbone.inputs[0].shape[1:])
    signal_facts = dataset_facts(builder, input_shape[-1], facts)
    names = class_names(summary, builder, int(backbone.outputs[0].shape[-1]))
    multi = config.task == "multi"
    activation = "sigmoid" if multi else "softmax"
    variants = () if multi else variants
    windowed = windowed_inputs(builder, config, split, n_samples, calibration_samples) \
        if config.window_s else None
    if windowed is None and multi:  # the records only time the float32 model (no variant is scored)
        every = raw_records(builder, split, builder.info.splits[split].num_examples)
        test_inputs = (every["signal"], None, len(every["signal"]))
    elif windowed is None:
        test = labelled_split(builder, split, names)
        test_inputs = (test.signal, test.label, test.n)
    else:
        test_inputs = windowed["test"]
    evaluation = saved_or_new_evaluation(run_dir, data_dir, config.seed)
    from export.serving import INPUT_NAME, OUTPUT_NAME, export_saved_model  # imports TensorFlow

    os.makedirs(out_dir, exist_ok=True)
    for stale in (v for v in layout.VARIANTS if v not in variants):  # from an earlier export: other metadata
        if os.path.isfile(layout.onnx_path(out_dir, stale)):
            os.remove(layout.onnx_path(out_dir, stale))
    saved_model_path = layout.path(out_dir, layout.SAVED_MODEL)
    onnx_path = layout.onnx_path(out_dir)
    fn = export_saved_model(backbone, saved_model_path, activation)
    export_onnx(fn, onnx_path, opset)
    if windowed is None:
        records = raw_records(builder, split, n_samples)
        parity_signal, parity_ids = records["signal"], records["sample_id"]
    else:
        parity_signal, parity_ids = windowed["parity"]
    parity = check_parity(backbone, parity_signal, saved_model_path, onnx_path, tolerance, activation=activation)
    parity.update(
        run_dir=os.path.abspath(run_dir), model=config.model, dataset=config.dataset, dataset_config=config.dataset_config,
        split=split, sample_ids=parity_ids.tolist(), input=INPUT_NAME, output=OUTPUT_NAME,
        input_shape=[None, *input_shape], onnx_opset=opset,
        artefacts={"saved_model": saved_model_path, "onnx": onnx_path},
    )
    with open(layout.path(out_dir, layout.PARITY), "w") as f:
        json.dump(parity, f, indent=1)

    split_sizes = summary["dataset"] if summary else {s: builder.info.splits[s].num_examples for s in run_data.SPLITS}
    split_sizes = {s: int(split_sizes[s]) for s in run_data.SPLITS}
    if windowed is None:
        calibration = raw_records(builder, "train", calibration_samples,
                                  every=max(1, split_sizes["train"] // calibration_samples))["signal"]
    else:
        calibration = windowed["calibration"]
    test_signal, test_labels, test_records = test_inputs
    measured = make_variants(out_dir, variants, calibration, test_signal, test_labels, names,
                             candidates_dir, latency_rounds, threads)
    measured["parity_records"] = {"dataset": config.dataset, "split": split, "n": test_records}
    if multi:
        measured["note"] = MULTI_LABEL_VARIANTS_NOTE
    metadata = build_metadata(run_dir, run_folder.read_config_json(run_dir), names, input_shape, signal_facts,
                              split_sizes, evaluation, parity, measured)
    write_metadata(metadata, out_dir, measured["files"])
    write_card(metadata, layout.path(out_dir, layout.CARD))
    return {**parity, "metadata": metadata}

