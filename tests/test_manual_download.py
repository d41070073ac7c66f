"""Extraction of a manual download's archive by builds running at once."""

from __future__ import annotations

import multiprocessing
import pathlib
import time
import zipfile

from erts_tf.data.physionet import manual_download

SOURCE = manual_download.Source(
    dataset="dummy",
    title="Dummy 1.0",
    url="https://physionet.org/content/dummy/",
    archive_name="dummy.zip",
    archive_patterns=("dummy*.zip",),
    markers=("RECORDS",),
)
FILES = {f"dummy/{i:03d}.dat": bytes([i]) * 100 for i in range(20)} | {"dummy/RECORDS": b"records\n"}


def _slow_extract_then_list(archive: str, dest_root: str, log: str, delay_s: float, out: str) -> None:
    """In a child process: extracts with a slow extraction that logs each call, then lists what it got."""
    archive_members = manual_download._archive_members

    def slow_members(path):
        names, extract = archive_members(path)

        def logged(selected, dest):
            with open(log, "a") as f:
                f.write("extracted\n")
            time.sleep(delay_s)
            extract(selected, dest)

        return names, logged

    manual_download._archive_members = slow_members
    dest = manual_download.extract(pathlib.Path(archive), pathlib.Path(dest_root), SOURCE)
    time.sleep(delay_s)  # still reading the folder while the other build finishes
    listed = sorted(str(p.relative_to(dest)) for p in dest.rglob("*.dat"))
    pathlib.Path(out).write_text(f"{dest}\n" + "\n".join(listed))


def test_builds_at_once_extract_once_and_both_read_a_whole_folder(tmp_path):
    archive = tmp_path / "dummy.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for name, data in FILES.items():
            zf.writestr(name, data)
    dest_root, log = tmp_path / "extracted", tmp_path / "calls.log"
    context = multiprocessing.get_context("fork")
    processes = []
    for index in range(2):
        args = (str(archive), str(dest_root), str(log), 1.0, str(tmp_path / f"out{index}"))
        processes.append(context.Process(target=_slow_extract_then_list, args=args))
        processes[-1].start()
        time.sleep(0.3)  # the second starts while the first extracts
    for process in processes:
        process.join(timeout=60)
        assert process.exitcode == 0
    assert log.read_text().splitlines() == ["extracted"], "the second build extracted again instead of waiting"
    expected = sorted(name.removeprefix("dummy/") for name in FILES if name.endswith(".dat"))
    for index in range(2):
        dest, *listed = (tmp_path / f"out{index}").read_text().splitlines()
        assert dest == str(dest_root / "dummy.zip.all")
        assert [pathlib.PurePath(p).name for p in listed] == expected
    assert sorted(p.name for p in dest_root.iterdir() if not p.name.startswith(".")) == ["dummy.zip.all"]
