"""Scale: input pipeline and training throughput on ~100k MIT-BIH beats as the kept fraction falls.

The MIT-BIH Arrhythmia beats (``mitbih_arrhythmia``, config ``mlii``: one
256-sample window per annotated beat) of the splits in ``--splits`` (default
train + validation + test, ~100k beats) are decoded once and treated as one
training split. For each kept fraction (``--fractions``, default 1.0, 0.5,
0.2, 0.05) a keep-mask of that share (a seeded random subset) is set directly
on the ``SelectionState`` and:

1. pipeline alone: one epoch of ``erts_tf.data.pipeline.train_dataset`` is
   iterated to the end without a model: samples/s, and the read counter
   against the kept count (the filtered pipeline must not read a dropped
   record: the counter must equal the kept count, and the sample ids it yields
   must be exactly the kept ones);
2. training: one epoch of ``ERTSModel.fit`` at epoch level, as mode ``full``
   trains (plan ``cam=False``: forward + backward) and as ``erts`` trains
   (plan ``cam=True``: + the Grad-CAM partial backward and focus), after an
   untimed tracing step. With ``--max_train_samples`` (default 20000) an
   epoch with more kept samples is cut after that many (the samples/s are
   measured on them; the epoch time is then projected as kept / samples/s and
   marked so). A cut epoch reads a few batches more than it trains (the
   prefetch reads ahead), so its read count is not compared.

Peak RSS is sampled during each measurement. Epoch times are compared with
``full`` at fraction 1.0.

Memory against lazy (``--compare_backends``, writes ``scale_lazy.json``):
``synthetic_ecg`` is generated with ``--sizes`` training records (48 KB each:
1000 x 12 float32; default 1000, 4000, 16000: 48 MB to 770 MB) and prepared
with its ArrayRecord copy (``--data_backend=lazy``). Then

3. peak RSS against dataset size: for each backend and size, a fresh process
   opens the training split and iterates one epoch of every record (and the
   validation split, as evaluation does); its lifetime peak RSS
   (``getrusage``) is reported. The lazy one must stay flat;
4. side by side in one process, on the dataset of ``--throughput_size``
   (default the largest): for each kept fraction, one pipeline epoch of each
   backend (read == kept checked) and training epochs of each (mode
   ``full``, cut after ``--max_train_samples``, default 2048 here; one
   pipeline per backend for all its epochs, as a run; the backends alternate
   ``--train_repeats`` tries, more for epochs under a fifth of the data, and
   each reports its median try),
   with the lazy/memory ratio of samples/s and the epoch time over the kept
   fraction.

5. larger than the memory the run may use (``--limited_size N --memory_limit_mb M``):
   a dataset of ``N`` records (48 KB each) is generated, and the RSS probe of
   each backend runs on it in a fresh memory cgroup limited to ``M`` MiB (the
   kernel's limit on the process, page cache included: cgroup v1 ``memory`` or
   v2, written under ``/sys/fs/cgroup``, which needs root; a clear error
   otherwise). A probe the limit kills is recorded as killed, not as a failure
   of the benchmark: that is the memory backend's expected end when the
   dataset is larger than ``M``.

Usage:
  python benchmarks/scale.py                                  # MIT-BIH, ~100k beats
  python benchmarks/scale.py --smoke                          # synthetic_ecg/tiny
  python benchmarks/scale.py --max_train_samples 0            # train every epoch to the end
  python benchmarks/scale.py --compare_backends               # memory vs lazy, RSS against size
  python benchmarks/scale.py --compare_backends --smoke       # the same at 64 and 128 records
  python benchmarks/scale.py --compare_backends --limited_size 50000 --memory_limit_mb 1536  # 2.3 GB under 1.5 GiB
"""

from __future__ import annotations

import gc
import json
import math
import os
import pathlib
import subprocess
import sys
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

import argparse  # noqa: E402

import common  # noqa: E402

NAME = "scale"
LAZY_NAME = "scale_lazy"


def parse(argv=None):
    parser = common.base_parser(__doc__, NAME)
    parser.add_argument("--dataset", default=None, help="default mitbih_arrhythmia (synthetic_ecg with --smoke)")
    parser.add_argument("--dataset_config", default=None, help="default mlii (tiny with --smoke)")
    parser.add_argument("--splits", default="train,validation,test", help="splits concatenated into one training set")
    parser.add_argument("--model", default="resnet1d")
    parser.add_argument("--fractions", default="1.0,0.5,0.2,0.05")
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--max_train_samples", type=int, default=None,
                        help="cut a training epoch after this many samples (0: never; default 20000, 0 with --smoke)")
    parser.add_argument("--pipeline_repeats", type=int, default=2, help="pipeline-only epochs per fraction (best kept)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--compare_backends", action="store_true",
                        help="memory vs lazy on generated synthetic_ecg sizes (writes scale_lazy.json)")
    parser.add_argument("--backends", default="memory,lazy", help="--compare_backends: the backends measured")
    parser.add_argument("--sizes", default=None,
                        help="--compare_backends: training records per generated dataset (default 1000,4000,16000)")
    parser.add_argument("--throughput_size", type=int, default=None,
                        help="--compare_backends: the size of the throughput comparison (default the largest)")
    parser.add_argument("--train_repeats", type=int, default=None,
                        help="--compare_backends: training epochs per backend and kept fraction, the backends "
                             "alternating, more below a kept fraction of 0.2 (training_tries); the median is "
                             "reported (default 3; 1 with --smoke)")
    parser.add_argument("--limited_size", type=int, default=0,
                        help="--compare_backends: also probe both backends on a dataset of this many records, each "
                             "in a memory cgroup of --memory_limit_mb (0: no such check)")
    parser.add_argument("--memory_limit_mb", type=int, default=1536, help="the cgroup limit of --limited_size's probes")
    parser.add_argument("--malloc_arena_max", default="-1",
                        help="--compare_backends: the runs' --malloc_arena_max settings the RSS probes run under, each "
                             "applied in the probe as a run applies it (erts_tf.data.allocator; -1: a run's default, "
                             "one arena on the lazy backend; 0: glibc's default; --malloc_arena_max=-1,0 runs both)")
    parser.add_argument("--rss_only", action="store_true",
                        help="--compare_backends: only the RSS probes, not the backends' throughput side by side")
    parser.add_argument("--rss_probe", default=None, help=argparse.SUPPRESS)  # backend,size: one RSS measurement
    args = parser.parse_args(argv)
    if args.compare_backends or args.rss_probe:
        return compare_args(args)
    if args.smoke:
        args.dataset = args.dataset or "synthetic_ecg"
        args.dataset_config = args.dataset_config or "tiny"
    args.dataset = args.dataset or "mitbih_arrhythmia"
    args.dataset_config = args.dataset_config or ("mlii" if args.dataset == "mitbih_arrhythmia" else None)
    if args.max_train_samples is None:
        args.max_train_samples = 0 if args.smoke else 20000
    args.fractions = [float(f) for f in args.fractions.split(",")]
    args.splits = [s for s in args.splits.split(",") if s]
    return args


def load(args):
    """The requested splits of the dataset, concatenated into one ``SplitArrays``."""
    import numpy as np

    from erts_tf.data import pipeline

    builder = pipeline.prepare(args.dataset, args.dataset_config, args.data_dir,
                               args.manual_dir if args.dataset != "synthetic_ecg" else None)
    parts = [pipeline.load_split(builder, s) for s in args.splits]
    extras = {k: np.concatenate([p.extras[k] for p in parts]) for k in parts[0].extras}
    return pipeline.SplitArrays(
        signal=np.concatenate([p.signal for p in parts]), label=np.concatenate([p.label for p in parts]),
        extras=extras, class_names=parts[0].class_names, extra_names=parts[0].extra_names,
    ), {s: p.n for s, p in zip(args.splits, parts)}


def keep_mask(n, fraction, seed):
    import numpy as np

    mask = np.zeros(n, bool)
    mask[np.random.default_rng([seed, int(round(fraction * 1e6))]).permutation(n)[:int(round(fraction * n))]] = True
    return mask


def pipeline_epoch(arrays, state, batch_size, seed, epoch) -> dict:
    """Iterates one filtered epoch without a model; checks what was read."""
    import numpy as np

    from erts_tf.data import pipeline

    counter = state.counters["samples_read"]
    before = int(counter.numpy())
    ds = pipeline.train_dataset(arrays, state.keep, batch_size, seed, epoch, counter)
    seen = []
    with common.Meter() as meter:
        for _signal, _label, ids in ds:
            seen.append(ids.numpy())
    seen = np.concatenate(seen) if seen else np.zeros(0, np.int64)
    kept = np.flatnonzero(state.keep.numpy())
    read = int(counter.numpy()) - before
    return {"kept": int(len(kept)), "read": read, "yielded": int(len(seen)),
            "read_equals_kept": read == len(kept), "ids_are_the_kept": bool(np.array_equal(np.sort(seen), kept)),
            "wall_s": meter.result["wall_s"], "samples_per_s": len(seen) / meter.result["wall_s"],
            "rss_peak_bytes": meter.result["rss_peak_bytes"]}


def build_model(args, arrays):
    import keras
    import numpy as np

    from erts_tf import models
    from erts_tf.training.model import ERTSModel
    from erts_tf.training.selection_config import SelectionConfig

    keras.utils.set_random_seed(args.seed)
    n_classes = len(arrays.class_names)
    backbone = models.build(args.model, arrays.input_shape, n_classes)
    model = ERTSModel(backbone, models.get(args.model).target_layer, arrays.n, np.ones(n_classes, np.float32),
                      SelectionConfig(mode="erts", level="epoch", seed=args.seed))
    model.compile(optimizer=keras.optimizers.AdamW(learning_rate=3e-4, weight_decay=0.01))
    model.optimizer.build(backbone.trainable_variables)
    return model


def training_stream(args, model, arrays):
    """``model``'s training batches of ``arrays``, one pipeline for all its epochs, as a run builds it."""
    from erts_tf.data import pipeline

    return pipeline.TrainStream(arrays, model.state.keep, args.batch_size, args.seed, model.state.counters["samples_read"])


def train_epoch(args, model, stream, cam, epoch) -> dict:
    """One (possibly cut) training epoch of ``stream`` (``training_stream``) on the current keep-mask; counts and
    times the ``fit`` call, as a run makes one per epoch."""
    import numpy as np

    from erts_tf.data import pipeline
    from erts_tf.training.selection_config import StepPlan

    arrays, state = stream.arrays, model.state
    model.set_plan(StepPlan(cam=cam))
    kept = int(state.keep.numpy().sum())
    limit = kept if args.max_train_samples <= 0 else min(kept, args.max_train_samples)
    steps = -(-limit // args.batch_size)
    # untimed tracing on a full and a partial batch, so that the last batch of the epoch does not retrace
    warm_ids = np.flatnonzero(state.keep.numpy())[:args.batch_size + max(1, args.batch_size // 4)]
    model.fit(pipeline.eval_dataset(arrays, args.batch_size, warm_ids), epochs=1, verbose=0)
    before = state.counter_values()
    ds = stream.epoch_dataset(epoch)
    with common.Meter() as meter:
        model.fit(ds.take(steps) if limit < kept else ds, epochs=1, verbose=0)
    after = state.counter_values()
    trained = after["backward"] - before["backward"]
    rate = trained / meter.result["wall_s"]
    return {"kept": kept, "trained": trained, "cut": trained < kept, "read": after["samples_read"] - before["samples_read"],
            "gradcam": after["gradcam"] - before["gradcam"], "wall_s": meter.result["wall_s"], "cpu_s": meter.result["cpu_s"],
            "samples_per_s": rate, "epoch_s": kept / rate, "epoch_s_projected": trained < kept,
            "rss_peak_bytes": meter.result["rss_peak_bytes"]}


def tables(result) -> str:
    s = result["settings"]
    lines = [f"\ninput pipeline alone ({result['n']} records of {s['dataset']}/{s['dataset_config']}, "
             f"{'+'.join(s['splits'])}; batch {s['batch_size']})\n"]
    lines.append(common.markdown_table(
        ["kept fraction", "kept", "read (counter)", "yielded", "read == kept", "ids == kept ids", "samples/s", "epoch s", "peak RSS MiB"],
        [[f"{r['fraction']:.2f}", r["kept"], r["read"], r["yielded"], "yes" if r["read_equals_kept"] else "NO",
          "yes" if r["ids_are_the_kept"] else "NO", f"{r['samples_per_s']:,.0f}", f"{r['wall_s']:.2f}", common.mib(r["rss_peak_bytes"])]
         for r in result["pipeline"]]))
    base = next((r for r in result["training"] if r["mode"] == "full" and r["fraction"] == 1.0), None)
    lines.append(f"\none training epoch, {s['model']}, epoch level (full = plan cam=0, erts = plan cam=1); "
                 f"* = epoch cut after {s['max_train_samples']} samples, epoch time projected\n")
    lines.append(common.markdown_table(
        ["mode", "kept fraction", "kept", "trained", "samples/s", "epoch s", "epoch vs full@1.0", "read == trained", "peak RSS MiB"],
        [[r["mode"], f"{r['fraction']:.2f}", r["kept"], r["trained"], f"{r['samples_per_s']:,.0f}",
          f"{r['epoch_s']:.1f}{'*' if r['epoch_s_projected'] else ''}",
          f"{r['epoch_s'] / base['epoch_s']:.3f}" if base else "–",
          "n/a (cut)" if r["cut"] else ("yes" if r["read"] == r["trained"] else "NO"),
          common.mib(r["rss_peak_bytes"])]
         for r in result["training"]]))
    return "\n".join(lines)


def plot(result, path):
    plt = common.pyplot()
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    p = result["pipeline"]
    ax1.plot([r["fraction"] for r in p], [r["wall_s"] for r in p], "o-", label="pipeline alone")
    for mode, style in (("full", "s-"), ("erts", "^-")):
        rows = [r for r in result["training"] if r["mode"] == mode]
        ax1.plot([r["fraction"] for r in rows], [r["epoch_s"] for r in rows], style, label=f"training ({mode})")
        ax2.plot([r["fraction"] for r in rows], [r["samples_per_s"] for r in rows], style, label=f"training ({mode})")
    ax1.set_xlabel("kept fraction")
    ax1.set_ylabel("epoch time (s)")
    ax1.set_yscale("log")
    ax1.legend()
    ax2.set_xlabel("kept fraction")
    ax2.set_ylabel("trained samples/s")
    ax2.legend()
    fig.suptitle(f"{result['settings']['dataset']}: {result['n']} records")
    return common.save_figure(fig, path)


def compare_args(args):
    """The settings of ``--compare_backends`` (and of one ``--rss_probe``)."""
    args.backends = [b for b in args.backends.split(",") if b]
    default_sizes = "64,128" if args.smoke else "1000,4000,16000"
    args.sizes = [int(n) for n in (args.sizes or default_sizes).split(",")]
    args.throughput_size = args.throughput_size or max(args.sizes)
    args.fractions = [float(f) for f in args.fractions.split(",")]
    if args.max_train_samples is None:
        args.max_train_samples = 0 if args.smoke else 2048
    args.train_repeats = args.train_repeats or (1 if args.smoke else 3)
    args.malloc_arena_max = [int(a) for a in str(args.malloc_arena_max).split(",") if a]
    args.data_dir = args.data_dir or os.path.join(args.work_dir, "tfds_scale_lazy")
    return args


def synthetic_config(n: int):
    """A ``synthetic_ecg`` config of ``n`` training records (64 validation, 16 test)."""
    from erts_tf.data import registry

    return registry.builder_module("synthetic_ecg").SyntheticEcgConfig(
        name=f"scale{n}", description=f"scale benchmark: {n} training records", n_train=n, n_validation=64,
        n_test=16)


def open_train(args, n: int, backend: str, split: str = "train"):
    """``split`` of the generated dataset of size ``n`` on ``backend`` (prepared, with its ArrayRecord copy)."""
    from erts_tf.data import pipeline

    builder = pipeline.prepare("synthetic_ecg", synthetic_config(n), args.data_dir, backend="lazy")
    return pipeline.load_split(builder, split, backend)


def rss_probe(args) -> dict:
    """One backend and size in this (fresh) process: open, one epoch of every record, the validation split."""
    import numpy as np

    from erts_tf.data import allocator, pipeline

    backend, n = args.rss_probe.split(",")
    common.quiet_tensorflow()
    import tensorflow as tf  # noqa: F401  (its own memory is the baseline)

    (setting,) = args.malloc_arena_max
    arenas = allocator.apply(backend, setting)  # where a run applies it: after TensorFlow, before the data

    baseline, baseline_parts = common.rss_bytes(), common.rss_parts() or {}
    with common.Meter() as opened:
        train = open_train(args, int(n), backend)
        validation = open_train(args, int(n), backend, "validation")
    reads = tf.Variable(tf.constant(0, tf.int64))
    with common.Meter() as epoch:
        seen = sum(int(ids.shape[0]) for _, _, ids in pipeline.train_dataset(
            train, None, args.batch_size, args.seed, 0, reads))
        evaluated = sum(int(ids.shape[0]) for _, _, ids in pipeline.eval_dataset(validation, args.batch_size))
    return {"backend": backend, "n": int(n), "arena_cap": arenas, "dataset_bytes": int(train.n * np.prod(train.input_shape) * 4),
            "rss_baseline_bytes": baseline, "rss_after_open_bytes": opened.result["rss_end_bytes"],
            "rss_peak_bytes": common.max_rss_bytes(), "open_s": opened.result["wall_s"],
            "epoch_s": epoch.result["wall_s"], "read": int(reads.numpy()), "yielded": seen, "evaluated": evaluated,
            # the sampled peaks of RSS's parts (anonymous: allocated; file: mapped files' pages), where reported
            **{common.rss_part_key(k, "baseline"): v for k, v in baseline_parts.items()},
            **{key: max(m.result[key] for m in (opened, epoch))
               for key in (common.rss_part_key(part, "peak") for part in common.RSS_PARTS) if key in opened.result}}


def _probe(args, backend: str, n: int, cgroup: pathlib.Path | None = None, arenas: int = -1) -> dict:
    """``rss_probe`` of ``backend`` on the dataset of ``n`` records in a fresh process, inside ``cgroup`` if given,
    with the run setting ``--malloc_arena_max=arenas`` (``allocator.apply``; the probe's environment has no
    ``MALLOC_ARENA_MAX``, so that the setting is what is measured).

    A probe killed by the cgroup's limit (SIGKILL, or the cgroup's OOM count grew) gives a row with
    ``killed_by_limit``; any other failure raises with the probe's error output."""
    command = [sys.executable, __file__, "--rss_probe", f"{backend},{n}", "--data_dir", args.data_dir,
               "--batch_size", str(args.batch_size), f"--malloc_arena_max={arenas}"]
    ooms = memory_cgroup_ooms(cgroup) if cgroup else 0
    enter = None if cgroup is None else (lambda: (cgroup / "cgroup.procs").write_text(str(os.getpid())))
    env = {k: v for k, v in os.environ.items() if k != "MALLOC_ARENA_MAX"}
    done = subprocess.run(command, capture_output=True, text=True, preexec_fn=enter, env=env)
    if cgroup is not None and (done.returncode == -9 or memory_cgroup_ooms(cgroup) > ooms):
        return {"backend": backend, "n": n, "malloc_arena_max": arenas, "killed_by_limit": True,
                "returncode": done.returncode, "memory_limit_bytes": args.memory_limit_mb * 2**20}
    if done.returncode:
        raise RuntimeError(f"rss probe {backend},{n} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return {**json.loads(done.stdout.strip().splitlines()[-1]), "malloc_arena_max": arenas}


def _probe_name(r: dict) -> str:
    """A probe row's backend, with its ``--malloc_arena_max`` setting unless a run's default (-1)."""
    arenas = r.get("malloc_arena_max", -1)
    return r["backend"] + ("" if arenas == -1 else " (glibc's arenas)" if arenas == 0 else f" (<= {arenas} arenas)")


def _print_probe(r: dict) -> None:
    if r.get("killed_by_limit"):
        print(f"rss {_probe_name(r)} n={r['n']}: killed by the {common.mib(r['memory_limit_bytes'])} MiB limit",
              flush=True)
    else:
        print(f"rss {_probe_name(r)} n={r['n']}: peak {common.mib(r['rss_peak_bytes'])} MiB, anonymous "
              f"{common.mib(r.get('rss_anon_peak_bytes'))} MiB (dataset {common.mib(r['dataset_bytes'])} MiB), "
              f"read {r['read']}", flush=True)


def rss_against_size(args) -> list[dict]:
    """``rss_probe`` of every backend, size and arena limit, each in its own process (peak RSS is per process)."""
    rows = []
    for n in args.sizes:
        open_train(args, n, "lazy")  # generate and convert here, so that the probes only read
        for arenas in args.malloc_arena_max:
            for backend in args.backends:
                rows.append(_probe(args, backend, n, arenas=arenas))
                _print_probe(rows[-1])
    return rows


def memory_cgroup(name: str, limit_bytes: int) -> pathlib.Path:
    """A new memory cgroup ``name`` limited to ``limit_bytes`` (v2 ``memory.max``, else v1
    ``memory.limit_in_bytes``, with swap held to the same limit where the kernel accounts it).

    ``RuntimeError`` if neither hierarchy can be written (not root, or no memory controller)."""
    root = pathlib.Path("/sys/fs/cgroup")
    v1 = root / "memory"
    try:
        if (root / "cgroup.controllers").exists() and "memory" in (root / "cgroup.controllers").read_text().split():
            group = root / name
            group.mkdir(exist_ok=True)
            if not (group / "memory.max").exists():  # the memory controller is not enabled for children here
                group.rmdir()
                raise RuntimeError(f"--limited_size: the memory controller is not enabled under {root} "
                                   "(cgroup.subtree_control)")
            (group / "memory.max").write_text(str(limit_bytes))
            if (group / "memory.swap.max").exists():
                (group / "memory.swap.max").write_text("0")
            return group
        if (v1 / "memory.limit_in_bytes").exists():
            group = v1 / name
            group.mkdir(exist_ok=True)
            (group / "memory.limit_in_bytes").write_text(str(limit_bytes))
            if (group / "memory.memsw.limit_in_bytes").exists():
                (group / "memory.memsw.limit_in_bytes").write_text(str(limit_bytes))
            return group
    except OSError as error:
        raise RuntimeError(f"--limited_size needs a writable memory cgroup under {root} (root): {error}") from error
    raise RuntimeError(f"--limited_size: no memory cgroup controller under {root}")


def memory_cgroup_ooms(group: pathlib.Path) -> int:
    """How many times the kernel's OOM killer acted in ``group`` (the ``oom_kill`` line of v2 ``memory.events``
    or v1 ``memory.oom_control``; 0 where the kernel reports none)."""
    for name in ("memory.events", "memory.oom_control"):
        if (group / name).exists():
            return int(dict(line.split() for line in (group / name).read_text().splitlines()).get("oom_kill", 0))
    return 0


def rss_under_limit(args) -> list[dict]:
    """``rss_probe`` of every backend on ``--limited_size`` records, each in a memory cgroup of ``--memory_limit_mb``."""
    import numpy as np

    split = open_train(args, args.limited_size, "lazy")  # generated outside the limit
    dataset_bytes = int(split.n * np.prod(split.input_shape) * 4)
    group = memory_cgroup(f"erts_tf_scale_{os.getpid()}", args.memory_limit_mb * 2**20)
    rows = []
    try:
        for arenas in args.malloc_arena_max:
            for backend in args.backends:
                rows.append({"dataset_bytes": dataset_bytes, **_probe(args, backend, args.limited_size, group, arenas)})
                _print_probe(rows[-1])
    finally:
        group.rmdir()
    return rows


def backends_side_by_side(args) -> dict:
    """Pipeline and training epochs of every backend at every kept fraction, in this process."""
    import keras

    from erts_tf.selection.state import SelectionState

    splits = {b: open_train(args, args.throughput_size, b) for b in args.backends}
    n = args.throughput_size
    state = SelectionState(n)
    pipeline_rows, training_rows = [], []
    for i, fraction in enumerate(args.fractions):
        state.keep.assign(keep_mask(n, fraction, args.seed))
        for backend, split in splits.items():
            runs = [pipeline_epoch(split, state, args.batch_size, args.seed, i * args.pipeline_repeats + r)
                    for r in range(args.pipeline_repeats)]
            best = min(runs, key=lambda r: r["wall_s"])
            best.update(backend=backend, fraction=fraction, read_equals_kept=all(r["read_equals_kept"] for r in runs),
                        ids_are_the_kept=all(r["ids_are_the_kept"] for r in runs))
            pipeline_rows.append(best)
            print(f"pipeline {backend} fraction {fraction}: {best['samples_per_s']:,.0f} samples/s, "
                  f"read {best['read']} kept {best['kept']}", flush=True)
    keras.backend.clear_session()
    gc.collect()
    models = {backend: build_model(args, split) for backend, split in splits.items()}
    streams = {backend: training_stream(args, models[backend], split) for backend, split in splits.items()}
    epoch = 0
    for fraction in args.fractions:
        # The backends alternate, try by try, and each reports its median try: a burst of load on the
        # shared machine then slows one try of one backend, not the comparison. Short epochs get more
        # tries (training_tries), so that every fraction's median rests on a similar stretch of time.
        tries = {backend: [] for backend in splits}
        for model in models.values():
            model.state.keep.assign(keep_mask(n, fraction, args.seed))
        for _ in range(training_tries(args.train_repeats, fraction)):
            for backend in splits:
                tries[backend].append(train_epoch(args, models[backend], streams[backend], False, epoch))
            epoch += 1
        for backend, rows in tries.items():
            rates = [r["samples_per_s"] for r in rows]
            row = sorted(rows, key=lambda r: r["samples_per_s"])[len(rows) // 2]
            # Per CPU-second as well: on a shared machine the wall-clock rate of one backend and fraction
            # jumped between levels (e.g. 220 and 440 samples/s) from try to try; CPU time does not count a
            # core that another tenant holds.
            per_cpu_s = sorted(r["trained"] / r["cpu_s"] for r in rows)[len(rows) // 2]
            row.update(backend=backend, mode="full", fraction=fraction, tries_samples_per_s=rates,
                       tries_cpu_s=[r["cpu_s"] for r in rows], fastest_epoch_s=row["kept"] / max(rates),
                       samples_per_cpu_s=per_cpu_s, cpu_epoch_s=row["kept"] / per_cpu_s)
            training_rows.append(row)
            print(f"train {backend} fraction {fraction}: {row['samples_per_s']:,.0f} samples/s "
                  f"(tries {', '.join(f'{r:,.0f}' for r in row['tries_samples_per_s'])})", flush=True)
    del models, streams
    training_rows.sort(key=lambda r: args.backends.index(r["backend"]))  # the table's order: backend, then fraction
    return {"pipeline": pipeline_rows, "training": training_rows}


def training_tries(repeats: int, fraction: float) -> int:
    """Training epochs timed at ``fraction``: ``repeats``, and for epochs shorter than a fifth of the data
    proportionally more (12 at 0.05 for 3), so that their tries add up to as many samples as ``repeats`` at 0.2."""
    return max(repeats, math.ceil(repeats * 0.2 / fraction - 1e-9))


def _ratio(rows, backend, fraction, key="samples_per_s"):
    """lazy / memory of ``key`` at ``fraction`` (None if either is missing)."""
    mine = next((r[key] for r in rows if r["backend"] == backend and r["fraction"] == fraction), None)
    memory = next((r[key] for r in rows if r["backend"] == "memory" and r["fraction"] == fraction), None)
    return None if mine is None or not memory else mine / memory


def _proportionality(rows, backend, fraction, key="wall_s"):
    """Epoch time ``key`` at ``fraction`` over (``fraction`` x the epoch time at 1.0): 1.0 is proportional."""
    times = {r["fraction"]: r[key] for r in rows if r["backend"] == backend}
    return times[fraction] / (fraction * times[1.0]) if 1.0 in times and fraction in times else None


def compare_tables(result) -> str:
    s = result["settings"]
    lines = ["\npeak RSS against dataset size (synthetic_ecg; one process per row: open, one epoch of every record)\n"]
    lines.append(common.markdown_table(
        ["backend", "train records", "dataset MiB", "baseline RSS MiB", "peak RSS MiB", "peak - baseline MiB",
         "peak anonymous MiB", "peak file-backed MiB", "probe epoch s", "read == records"],
        [[_probe_name(r), r["n"], common.mib(r["dataset_bytes"]), common.mib(r["rss_baseline_bytes"]),
          common.mib(r["rss_peak_bytes"]), common.mib(r["rss_peak_bytes"] - r["rss_baseline_bytes"]),
          common.mib(r.get("rss_anon_peak_bytes")), common.mib(r.get("rss_file_peak_bytes")), f"{r['epoch_s']:.2f}",
          "yes" if r["read"] == r["yielded"] == r["n"] else "NO"] for r in result["rss"]]))
    if result.get("rss_under_limit"):
        lines.append(f"\nlarger than the memory the run may use: {s['limited_size']} records under a "
                     f"{s['memory_limit_mb']} MiB memory cgroup (one process per row)\n")
        lines.append(common.markdown_table(
            ["backend", "train records", "dataset MiB", "limit MiB", "outcome", "peak RSS MiB", "peak anonymous MiB",
             "read == records"],
            [[_probe_name(r), r["n"], common.mib(r["dataset_bytes"]), s["memory_limit_mb"],
              "killed by the limit" if r.get("killed_by_limit") else "completed",
              "" if r.get("killed_by_limit") else common.mib(r["rss_peak_bytes"]),
              "" if r.get("killed_by_limit") else common.mib(r.get("rss_anon_peak_bytes")),
              "" if r.get("killed_by_limit") else ("yes" if r["read"] == r["yielded"] == r["n"] else "NO")]
             for r in result["rss_under_limit"]]))
    for name, flat in result.get("lazy_rss_flatness", {}).items():
        lines.append(f"- {name}: peak RSS {', '.join(f'{n}: {common.mib(v)}' for n, v in flat['peak_by_size'].items())} "
                     f"MiB; largest change from the smallest size {flat['max_change']:+.1%} "
                     f"({'within' if flat['met'] else 'NOT within'} 10 %)")
    if "side_by_side" not in result:  # --rss_only
        return "\n".join(lines)
    side = result["side_by_side"]
    lines.append(f"\npipeline alone, {s['throughput_size']} records, batch {s['batch_size']} "
                 "(epoch / (fraction x epoch@1.0): 1.000 = proportional)\n")
    lines.append(common.markdown_table(
        ["backend", "kept fraction", "kept", "read", "read == kept", "samples/s", "lazy / memory", "epoch s",
         "epoch vs proportional"],
        [[r["backend"], f"{r['fraction']:.2f}", r["kept"], r["read"],
          "yes" if r["read_equals_kept"] and r["ids_are_the_kept"] else "NO", f"{r['samples_per_s']:,.0f}",
          common.fmt(_ratio(side["pipeline"], r["backend"], r["fraction"])), f"{r['wall_s']:.2f}",
          common.fmt(_proportionality(side["pipeline"], r["backend"], r["fraction"]))] for r in side["pipeline"]]))
    lines.append(f"\ntraining epochs, {s['model']}, mode full (plan cam=0), one pipeline per backend for all its epochs "
                 f"(as a run), the median of {s['train_repeats']} tries per backend and fraction (more for shorter "
                 f"epochs: {', '.join(str(training_tries(s['train_repeats'], f)) for f in s['fractions'])}); "
                 f"* = cut after {s['max_train_samples']} samples, epoch time projected\n")
    lines.append(common.markdown_table(
        ["backend", "kept fraction", "kept", "trained", "tries", "samples/s", "lazy / memory", "epoch s",
         "epoch vs proportional", "the same, fastest tries", "samples per CPU-s", "lazy / memory (CPU)",
         "CPU epoch vs proportional", "read == trained", "peak RSS MiB"],
        [[r["backend"], f"{r['fraction']:.2f}", r["kept"], r["trained"], len(r["tries_samples_per_s"]),
          f"{r['samples_per_s']:,.0f}", common.fmt(_ratio(side["training"], r["backend"], r["fraction"])),
          f"{r['epoch_s']:.1f}{'*' if r['epoch_s_projected'] else ''}",
          common.fmt(_proportionality(side["training"], r["backend"], r["fraction"], "epoch_s")),
          common.fmt(_proportionality(side["training"], r["backend"], r["fraction"], "fastest_epoch_s")),
          f"{r['samples_per_cpu_s']:,.0f}",
          common.fmt(_ratio(side["training"], r["backend"], r["fraction"], "samples_per_cpu_s")),
          common.fmt(_proportionality(side["training"], r["backend"], r["fraction"], "cpu_epoch_s")),
          "n/a (cut)" if r["cut"] else ("yes" if r["read"] == r["trained"] else "NO"), common.mib(r["rss_peak_bytes"])]
         for r in side["training"]]))
    return "\n".join(lines)


def compare_plot(result, path):
    plt = common.pyplot()
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    for name in dict.fromkeys(_probe_name(r) for r in result["rss"]):
        rss = [r for r in result["rss"] if _probe_name(r) == name]
        ax1.plot([r["dataset_bytes"] / 2**20 for r in rss], [r["rss_peak_bytes"] / 2**20 for r in rss],
                 "s-" if rss[0]["backend"] == "memory" else "o-", label=name)
    for backend, style in (("memory", "s-"), ("lazy", "o-")):
        rows = [r for r in result.get("side_by_side", {}).get("pipeline", []) if r["backend"] == backend]
        ax2.plot([r["fraction"] for r in rows], [r["wall_s"] for r in rows], style, label=f"pipeline ({backend})")
    ax1.set_xlabel("training split (MiB)")
    ax1.set_ylabel("peak RSS (MiB)")
    ax1.legend()
    ax2.set_xlabel("kept fraction")
    ax2.set_ylabel("epoch time (s)")
    ax2.legend()
    fig.suptitle("memory vs lazy data backend (synthetic_ecg)")
    return common.save_figure(fig, path)


def lazy_rss_flatness(probes: list[dict]) -> dict:
    """Per lazy probe setting: peak RSS by dataset size and its largest relative change from the smallest
    size's (the target: within 10 %)."""
    flatness = {}
    for name in dict.fromkeys(_probe_name(r) for r in probes if r["backend"] == "lazy"):
        peaks = {r["n"]: r["rss_peak_bytes"] for r in sorted(probes, key=lambda r: r["n"]) if _probe_name(r) == name}
        smallest = next(iter(peaks.values()))
        change = max((v - smallest for v in peaks.values()), key=abs) / smallest
        flatness[name] = {"peak_by_size": peaks, "max_change": change, "met": abs(change) <= 0.10}
    return flatness


def compare_main(args) -> dict:
    """``--compare_backends``: RSS against size, then the backends side by side; writes ``scale_lazy.json``."""
    common.quiet_tensorflow()
    started = time.perf_counter()
    result = {"benchmark": LAZY_NAME, "settings": dict(vars(args)), "machine": common.machine(),
              "malloc_arena_max_of_this_process": os.environ.get("MALLOC_ARENA_MAX")}
    result["rss"] = rss_against_size(args)
    if args.limited_size:
        result["rss_under_limit"] = rss_under_limit(args)
    probes = [r for r in [*result["rss"], *result.get("rss_under_limit", [])] if not r.get("killed_by_limit")]
    result["lazy_rss_flatness"] = lazy_rss_flatness(probes)
    result["all_reads_match"] = all(r["read"] == r["yielded"] == r["n"] for r in probes)
    if not args.rss_only:
        result["side_by_side"] = side = backends_side_by_side(args)
        result["all_reads_match"] = result["all_reads_match"] and all(
            r["read_equals_kept"] and r["ids_are_the_kept"] for r in side["pipeline"]) and all(
            r["read"] == r["trained"] for r in side["training"] if not r["cut"])
    result["total_wall_s"] = time.perf_counter() - started
    return common.publish(args, LAZY_NAME, result, compare_tables(result), compare_plot)


def main(argv=None) -> dict:
    args = parse(argv)
    if args.rss_probe:
        print(json.dumps(rss_probe(args)))
        return {}
    if args.compare_backends:
        return compare_main(args)
    common.quiet_tensorflow()
    import keras

    from erts_tf.selection.state import SelectionState

    started = time.perf_counter()
    machine = common.machine()
    with common.Meter() as load_meter:
        arrays, split_sizes = load(args)
    print(f"loaded {arrays.n} records {arrays.input_shape} in {load_meter.result['wall_s']:.1f} s", flush=True)
    result = {"benchmark": NAME, "settings": {k: v for k, v in vars(args).items()}, "machine": machine,
              "n": arrays.n, "input_shape": list(arrays.input_shape), "split_sizes": split_sizes,
              "load": load_meter.result, "pipeline": [], "training": []}

    state = SelectionState(arrays.n)
    for i, fraction in enumerate(args.fractions):
        state.keep.assign(keep_mask(arrays.n, fraction, args.seed))
        runs = [pipeline_epoch(arrays, state, args.batch_size, args.seed, i * args.pipeline_repeats + r)
                for r in range(args.pipeline_repeats)]
        best = min(runs, key=lambda r: r["wall_s"])
        best.update(fraction=fraction, all_wall_s=[r["wall_s"] for r in runs],
                    read_equals_kept=all(r["read_equals_kept"] for r in runs),
                    ids_are_the_kept=all(r["ids_are_the_kept"] for r in runs))
        result["pipeline"].append(best)
        print(f"pipeline fraction {fraction}: {best['samples_per_s']:,.0f} samples/s, read {best['read']} kept {best['kept']}", flush=True)

    for mode, cam in (("full", False), ("erts", True)):
        keras.backend.clear_session()
        gc.collect()
        model = build_model(args, arrays)
        stream = training_stream(args, model, arrays)
        for i, fraction in enumerate(args.fractions):
            model.state.keep.assign(keep_mask(arrays.n, fraction, args.seed))
            row = train_epoch(args, model, stream, cam, epoch=i)
            row.update(mode=mode, fraction=fraction)
            result["training"].append(row)
            print(f"train {mode} fraction {fraction}: {row['samples_per_s']:,.0f} samples/s, epoch {row['epoch_s']:.1f} s"
                  f"{' (projected)' if row['epoch_s_projected'] else ''}", flush=True)
        del model, stream
    result["all_reads_match"] = all(r["read_equals_kept"] and r["ids_are_the_kept"] for r in result["pipeline"]) and all(
        r["read"] == r["trained"] for r in result["training"] if not r["cut"])
    result["total_wall_s"] = time.perf_counter() - started
    result["machine_end"] = {"loadavg": list(os.getloadavg()), "maxrss_lifetime_bytes": common.max_rss_bytes()}
    return common.publish(args, NAME, result, tables(result), plot)


if __name__ == "__main__":
    main()
