"""erts-tf installed from its wheel, not the checkout, builds a dataset and trains from any folder.

The wheel is built offline from a copy of the working tree (no build isolation:
the setuptools and wheel of this venv) and installed with ``--no-deps
--no-index`` into a fresh venv; a ``.pth`` file then lets that venv see this
interpreter's site-packages, so that no dependency is downloaded. Every
command runs with the fresh venv's python in a temporary folder, without
PYTHONPATH.
"""

import json
import os
import pathlib
import shutil
import subprocess
import sys
import sysconfig

REPO = pathlib.Path(__file__).resolve().parents[1]
BUILD_INPUTS = ("pyproject.toml", "README.md", "MANIFEST.in", "erts_tf", "export", "datasets")
DATASET_FILES = ("checksums.tsv", "README.md", "CITATIONS.bib")


def _run(args, cwd):
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "ERTS_TF_DATASETS")}
    env["TF_CPP_MIN_LOG_LEVEL"] = "2"
    result = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, f"{args}\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result.stdout


def _wheel(tmp_path):
    """Builds the wheel of a copy of the working tree (so no build/ folder lands in the checkout)."""
    src = tmp_path / "src"
    for name in BUILD_INPUTS:
        if (REPO / name).is_dir():
            shutil.copytree(REPO / name, src / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            src.mkdir(exist_ok=True)
            shutil.copy2(REPO / name, src / name)
    _run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "--no-index",
          "-w", str(tmp_path / "wheels"), str(src)], cwd=tmp_path)
    (wheel,) = (tmp_path / "wheels").glob("erts_tf-*.whl")
    return wheel


def _fresh_venv(tmp_path, wheel):
    """A venv holding only the wheel, which sees this interpreter's packages through a .pth file."""
    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", str(venv)], cwd=tmp_path)
    python = venv / "bin" / "python"
    _run([str(python), "-m", "pip", "install", "-q", "--no-deps", "--no-index", str(wheel)], cwd=tmp_path)
    # Written after the install: pip would otherwise see this venv's (editable) erts-tf and skip the wheel.
    fresh_site = _run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], cwd=tmp_path)
    ours = dict.fromkeys(sysconfig.get_paths()[key] for key in ("purelib", "platlib"))
    (pathlib.Path(fresh_site.strip()) / "erts_tf_test_deps.pth").write_text("".join(f"{p}\n" for p in ours))
    return venv, python


def test_wheel_installs_builds_a_dataset_and_trains_outside_the_checkout(tmp_path):
    venv, python = _fresh_venv(tmp_path, _wheel(tmp_path))
    work = tmp_path / "work"
    work.mkdir()

    where = json.loads(_run([str(python), "-c", (
        "import json, erts_tf; from erts_tf.data import registry; "
        "print(json.dumps([erts_tf.__file__, str(registry.datasets_root()), registry.names()]))")], cwd=work))
    package_file, datasets_root, names = pathlib.Path(where[0]), pathlib.Path(where[1]), where[2]
    assert venv in package_file.parents and REPO not in package_file.parents
    assert venv in datasets_root.parents
    assert names == sorted(p.parent.name for p in (REPO / "datasets").glob("*/*_dataset_builder.py"))
    for name in names:
        for file in DATASET_FILES:
            assert (datasets_root / name / file).is_file(), f"{name}/{file} is not in the wheel"

    built = _run([str(python), "-m", "erts_tf.build_dataset", "synthetic_ecg", "--config=tiny",
                  f"--data_dir={work / 'data'}"], cwd=work)
    assert "train 96, validation 32, test 32" in built

    _run([str(python), "-m", "erts_tf.train", "--dataset=synthetic_ecg", "--dataset_config=tiny",
          f"--data_dir={work / 'data'}", "--model=resnet1d", "--epochs=1", "--batch_size=32",
          "--tensorboard_images_every=0", f"--output_dir={work / 'run'}"], cwd=work)
    summary = json.loads((work / "run" / "summary.json").read_text())
    assert summary["test"]["n"] == 32 and len(summary["epochs"]) == 1
    assert (work / "run" / "report.md").is_file()
