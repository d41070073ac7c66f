"""Shared fixtures: the tiny synthetic dataset, built once per test session."""

import os

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


@pytest.fixture(scope="session")
def tfds_dir(tmp_path_factory):
    return str(tmp_path_factory.mktemp("tfds"))


@pytest.fixture(scope="session")
def tiny_data(tfds_dir):
    """Train/validation/test ``SplitArrays`` of ``synthetic_ecg/tiny`` (96/32/32)."""
    from erts_tf.training import run
    from erts_tf.training.config import RunConfig

    return run.load_data(RunConfig(output_dir="unused", dataset_config="tiny", data_dir=tfds_dir))


@pytest.fixture
def tiny_config(tmp_path, tfds_dir):
    """A RunConfig on the tiny dataset: 5 short epochs, every phase of the schedule."""
    from erts_tf.training.config import RunConfig

    def make(**overrides):
        base = dict(output_dir=str(tmp_path / "run"), dataset_config="tiny", data_dir=tfds_dir, epochs=5,
                    batch_size=16, warm_up_epochs=1, cam_start_epoch=1, start_revision=4, rescore_every=2,
                    tau=0.5, verbose=0, model="tiny_cnn", report=False, tensorboard_images_every=0)
        base.update(overrides)
        return RunConfig(**base)

    return make


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory, tfds_dir, tiny_data):
    """The folder of one short erts run on synthetic_ecg/tiny, trained once per test session
    (evaluate, export and report tests read it)."""
    from erts_tf.training import run
    from erts_tf.training.config import RunConfig

    out = tmp_path_factory.getbasetemp() / "shared_tiny_erts_run"
    config = RunConfig(output_dir=str(out), dataset_config="tiny", data_dir=tfds_dir, epochs=3, batch_size=16,
                       warm_up_epochs=1, cam_start_epoch=1, start_revision=-1, rescore_every=1, tau=0.9,
                       mode="erts", level="epoch", overwrite=True, verbose=0)
    run.run(config, tiny_data)
    return str(out)


@pytest.fixture(scope="session", autouse=True)
def tiny_backbone():
    """Registers the test backbone ``tiny_cnn`` (tests/tiny_backbone.py)."""
    import tiny_backbone as tiny

    return tiny.register()
