"""One exported tiny run shared by the deployment tests (metadata, prediction, quantization).

``tiny_cnn`` trained for 8 epochs in mode erts on ``synthetic_ecg/tiny``
(confident enough that the parity of the quantized variants is informative;
erts so that the audit has records dropped as unreliable), without the
post-run evaluation (so the export computes ``eval_test.json`` itself), then
exported with every variant. ``synthetic_ecg`` declares neither its sampling
rate nor its lead names, so the export is told them (``FACTS``): the
generator's 100 Hz and the 12 standard leads.
"""

from __future__ import annotations

import pathlib

TWELVE_LEADS = ("I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6")
FACTS = {"sampling_rate_hz": 100, "lead_names": list(TWELVE_LEADS)}


def exported_tiny_run(tmp_path_factory, tfds_dir, tiny_data, tiny_backbone) -> tuple[pathlib.Path, pathlib.Path, dict]:
    """``(run_dir, export_dir, export_run's result)``, trained and exported once per test session."""
    import json

    from erts_tf.training import run
    from erts_tf.training.config import RunConfig
    from export.run import export_run

    base = tmp_path_factory.getbasetemp() / "deploy_tiny_run"
    run_dir, export_dir, result_path = base / "run", base / "export", base / "export_result.json"
    if not result_path.exists():
        config = RunConfig(output_dir=str(run_dir), dataset_config="tiny", data_dir=tfds_dir, model=tiny_backbone,
                           epochs=8, lr=0.01, batch_size=16, warm_up_epochs=1, cam_start_epoch=1, start_revision=-1,
                           rescore_every=1, tau=0.9, mode="erts", level="epoch", overwrite=True, verbose=0,
                           report=False, tensorboard_images_every=0)
        run.run(config, tiny_data)
        result = export_run(str(run_dir), str(export_dir), n_samples=32, facts=FACTS)
        result_path.write_text(json.dumps(result))
    return run_dir, export_dir, json.loads(result_path.read_text())
