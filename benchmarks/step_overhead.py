"""Per-batch cost of the ERTS train step against a plain Keras train step.

For every registered backbone (or ``--backbones``), the same architecture and
initial weights, batch 32 of ``(1000, 12)`` (random signals and labels, 5
classes), three variants, each through Keras' own ``train_on_batch`` (the
compiled ``train_function``, one call = one optimizer step, synchronised by
reading the logs back):

  plain      ``backbone.compile(loss=SparseCategoricalCrossentropy(from_logits=True),
             optimizer=AdamW(3e-4, weight_decay=0.01))``: what a user runs without erts-tf;
  erts/cam=0 ``ERTSModel`` train step with plan ``cam=False`` (epoch level, the
             step of full-data and non-focus epochs: class-weighted loss, macro-F1
             metric, finite check, per-sample scores scattered into the selection state);
  erts/cam=1 the same with ``cam=True``: plus the Grad-CAM partial backward (true-class
             logits -> target layer) from the same forward, the map and the focus score.

After one tracing call and ``--warmup`` untimed calls each, the variants are
timed in interleaved rounds (the order rotates every round) so that a change
of the machine's load hits all alike; the table gives the median and the
interquartile range. Target: erts/cam=1 <= 1.15 x plain.

``--profile`` (default: on when a ratio exceeds the target) times the pieces
with bare ``tf.function`` steps on one more copy of the model: the forward
alone, forward + backward + AdamW update (plain), the same through the
two-output cam view, with a persistent tape, + the Grad-CAM partial backward,
+ the map and focus, and ERTS's bookkeeping alone, so the table says where
the extra time goes.

``--jit_compile`` compiles every step with XLA; ``--mixed_precision`` sets the
``mixed_float16`` policy. Both are meant for a GPU; on this project's CI
machine (2 CPU cores, no GPU) they were not run on a GPU (see the README).

Usage:
  python benchmarks/step_overhead.py [--backbones resnet1d,inception1d] [--repeats 15]
  python benchmarks/step_overhead.py --smoke
"""

from __future__ import annotations

import gc
import os
import pathlib
import sys
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

import common  # noqa: E402

NAME = "step_overhead"
TARGET = 1.15
VARIANTS = ("plain", "erts_nocam", "erts_cam")
LABELS = {"plain": "plain Keras", "erts_nocam": "erts cam=0", "erts_cam": "erts cam=1"}


def parse(argv=None):
    parser = common.base_parser(__doc__, NAME)
    parser.add_argument("--backbones", default=None, help="comma-separated (default: every registered backbone)")
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--time", type=int, default=1000)
    parser.add_argument("--leads", type=int, default=12)
    parser.add_argument("--n_classes", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=None, help="untimed calls after tracing (default 2; 1 with --smoke)")
    parser.add_argument("--repeats", type=int, default=None, help="interleaved timed rounds (default 15; 3 with --smoke)")
    parser.add_argument("--max_s_per_backbone", type=float, default=150.0,
                        help="stop a backbone's rounds after this many timed seconds (at least --min_repeats rounds)")
    parser.add_argument("--min_repeats", type=int, default=5)
    parser.add_argument("--profile", choices=("auto", "always", "never"), default="auto",
                        help="time the pieces of the step (auto: when erts/cam=1 exceeds the target)")
    parser.add_argument("--jit_compile", action="store_true", help="XLA-compile every step (meant for GPU)")
    parser.add_argument("--mixed_precision", action="store_true", help="mixed_float16 policy (meant for GPU)")
    args = parser.parse_args(argv)
    args.warmup = args.warmup if args.warmup is not None else (1 if args.smoke else 2)
    args.repeats = args.repeats or (3 if args.smoke else 15)
    if args.smoke:
        args.min_repeats = min(args.min_repeats, args.repeats)
    if args.backbones:
        args.backbones = [b for b in args.backbones.split(",") if b]
    elif args.smoke:
        args.backbones = ["resnet1d"]
    return args


def _optimizer():
    import keras

    return keras.optimizers.AdamW(learning_rate=3e-4, weight_decay=0.01)


def build_variants(name, args):
    """The three models, built from the same seed (identical initial weights)."""
    import keras
    import numpy as np

    from erts_tf import models
    from erts_tf.training.model import ERTSModel
    from erts_tf.training.selection_config import SelectionConfig, StepPlan

    shape = (args.time, args.leads)
    built = {}
    for variant in VARIANTS:
        keras.utils.set_random_seed(0)
        backbone = models.build(name, shape, args.n_classes)
        if variant == "plain":
            backbone.compile(optimizer=_optimizer(), jit_compile=args.jit_compile,
                             loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
            built[variant] = backbone
            continue
        model = ERTSModel(backbone, models.get(name).target_layer, args.batch_size,
                          np.ones(args.n_classes, np.float32), SelectionConfig(mode="erts", level="epoch"))
        model.compile(optimizer=_optimizer(), jit_compile=args.jit_compile)
        model.optimizer.build(backbone.trainable_variables)
        model.set_plan(StepPlan(cam=variant == "erts_cam"))
        built[variant] = model
    return built


def _call(variant, model, x, y, ids):
    start = time.perf_counter()
    if variant == "plain":
        model.train_on_batch(x, y)
    else:
        model.train_on_batch(x, y, sample_weight=ids)  # ERTSModel's step unpacks (signal, labels, sample_ids)
    return time.perf_counter() - start


def time_interleaved(calls: dict, args, budget_s: float):
    """First call (tracing), warm-up, then interleaved timed rounds; ``{name: (first_s, [timed_s])}``."""
    first = {name: fn() for name, fn in calls.items()}
    for _ in range(args.warmup):
        for fn in calls.values():
            fn()
    timed = {name: [] for name in calls}
    cpu = {name: [] for name in calls}
    names = list(calls)
    spent, rounds = 0.0, 0
    while rounds < args.repeats and (rounds < args.min_repeats or spent < budget_s):
        shift = rounds % len(names)
        for name in names[shift:] + names[:shift]:
            cpu_start = common.cpu_seconds()
            elapsed = calls[name]()
            cpu[name].append(common.cpu_seconds() - cpu_start)
            timed[name].append(elapsed)
            spent += elapsed
        rounds += 1
    return {name: (first[name], timed[name], cpu[name]) for name in calls}


def profile_steps(name, args, x, y):
    """Bare tf.function steps that add the pieces of the ERTS step one at a time."""
    import keras
    import numpy as np
    import tensorflow as tf

    from erts_tf import models
    from erts_tf.explain import focus as focus_lib
    from erts_tf.explain.gradcam import cam_view, gradcam_over_time, true_class_logit_sum
    from erts_tf.selection.state import SelectionState
    from erts_tf.training.losses import weighted_cross_entropy

    keras.utils.set_random_seed(0)
    backbone = models.build(name, (args.time, args.leads), args.n_classes)
    cam_model = cam_view(backbone, models.get(name).target_layer)
    optimizer = _optimizer()
    optimizer.build(backbone.trainable_variables)
    weights = backbone.trainable_variables
    class_weights = tf.ones([args.n_classes])
    state = SelectionState(args.batch_size)
    f1 = keras.metrics.F1Score(average="macro")
    ids = tf.range(args.batch_size)
    scc = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    jit = args.jit_compile or None

    @tf.function(jit_compile=jit)
    def forward(x, y):
        return cam_model(x, training=True)[1]

    @tf.function(jit_compile=jit)
    def train_plain(x, y):
        with tf.GradientTape() as tape:
            loss = scc(y, backbone(x, training=True))
        optimizer.apply(tape.gradient(loss, weights), weights)
        return loss

    def make_cam_step(persistent: bool, cam_backward: bool, cam_map: bool):
        @tf.function(jit_compile=jit)
        def step(x, y):
            with tf.GradientTape(persistent=persistent) as tape:
                activations, logits = cam_model(x, training=True)
                loss = scc(y, logits)
                target = true_class_logit_sum(logits, y)
            grads = tape.gradient(loss, weights)
            out = [loss]
            if cam_backward:
                cam_grads = tape.gradient(target, activations)
                out.append(tf.reduce_sum(cam_grads))
                if cam_map:
                    out.append(focus_lib.entropy(gradcam_over_time(activations, cam_grads)))
            del tape
            optimizer.apply(grads, weights)
            return out

        return step

    @tf.function(jit_compile=jit)
    def bookkeeping(x, y):
        logits = tf.random.normal([args.batch_size, args.n_classes])
        loss = tf.reduce_mean(weighted_cross_entropy(y, logits, class_weights))
        probs = tf.nn.softmax(logits)
        p_true = tf.gather(probs, y, axis=1, batch_dims=1)
        correct = tf.equal(tf.argmax(probs, -1, output_type=tf.int32), y)
        state.record_scores(ids, y, p_true, correct, p_true)
        state.record_backprop(ids, tf.constant(True))
        f1.update_state(tf.one_hot(y, args.n_classes), probs)
        finite = tf.reduce_all([tf.reduce_all(tf.math.is_finite(w)) for w in weights])
        return loss, finite

    steps = {
        "forward (train mode)": forward,
        "plain step (tf.function)": train_plain,
        "step through the cam view (activations + logits)": make_cam_step(False, False, False),
        "+ persistent tape": make_cam_step(True, False, False),
        "+ Grad-CAM partial backward": make_cam_step(True, True, False),
        "+ map and focus (= ERTS step without bookkeeping)": make_cam_step(True, True, True),
        "bookkeeping alone (loss weights, F1, scatters, finite check)": bookkeeping,
    }

    def caller(fn):
        def call():
            start = time.perf_counter()
            tf.nest.map_structure(lambda t: t.numpy(), fn(x, y))
            return time.perf_counter() - start

        return call

    timings = time_interleaved({k: caller(v) for k, v in steps.items()}, args, args.max_s_per_backbone / 2)
    return {k: {"first_call_s": first, **common.spread(values), "cpu": common.spread(cpu)}
            for k, (first, values, cpu) in timings.items()}


def measure(name, args) -> dict:
    import keras
    import tensorflow as tf

    rng = tf.random.Generator.from_seed(0)
    x = rng.normal((args.batch_size, args.time, args.leads))
    y = rng.uniform((args.batch_size,), 0, args.n_classes, dtype=tf.int32)
    ids = tf.range(args.batch_size, dtype=tf.int64)
    models_ = build_variants(name, args)
    params = int(models_["plain"].count_params())
    calls = {v: (lambda v=v: _call(v, models_[v], x, y, ids)) for v in VARIANTS}
    timings = time_interleaved(calls, args, args.max_s_per_backbone)
    row = {"backbone": name, "params": params,
           "variants": {v: {"first_call_s": first, **common.spread(values), "cpu": common.spread(cpu),
                            "timed_s": values, "cpu_s": cpu}
                        for v, (first, values, cpu) in timings.items()}}
    variants = row["variants"]
    plain = variants["plain"]["median"]
    row["ratio_nocam"] = variants["erts_nocam"]["median"] / plain
    row["ratio_cam"] = variants["erts_cam"]["median"] / plain
    row["ratio_cam_min"] = variants["erts_cam"]["min"] / variants["plain"]["min"]
    row["ratio_cam_cpu"] = variants["erts_cam"]["cpu"]["median"] / variants["plain"]["cpu"]["median"]
    # per-round ratios (same round, interleaved): a spread of the ratio itself
    rounds = min(len(v[1]) for v in timings.values())
    row["ratio_cam_rounds"] = common.spread([timings["erts_cam"][1][i] / timings["plain"][1][i] for i in range(rounds)])
    row["ratio_nocam_rounds"] = common.spread([timings["erts_nocam"][1][i] / timings["plain"][1][i] for i in range(rounds)])
    row["met"] = row["ratio_cam"] <= TARGET
    del models_
    keras.backend.clear_session()
    gc.collect()
    if args.profile == "always" or (args.profile == "auto" and not row["met"]):
        row["profile"] = profile_steps(name, args, x, y)
        keras.backend.clear_session()
        gc.collect()
    return row


def tables(result) -> str:
    rows = result["results"]
    body = []
    for r in rows:
        v = r["variants"]
        cell = lambda k: f"{1000 * v[k]['median']:.0f} ({1000 * v[k]['p25']:.0f}–{1000 * v[k]['p75']:.0f})"  # noqa: E731
        body.append([r["backbone"], f"{r['params']:,}", cell("plain"), cell("erts_nocam"), cell("erts_cam"),
                     f"{r['ratio_nocam']:.2f}", f"{r['ratio_cam']:.2f} ({r['ratio_cam_rounds']['p25']:.2f}–{r['ratio_cam_rounds']['p75']:.2f})",
                     f"{r['ratio_cam_min']:.2f}", f"{r['ratio_cam_cpu']:.2f}", "yes" if r["met"] else "NO", str(v["plain"]["n"])])
    s = result["settings"]
    lines = [f"per-batch train step, batch {s['batch_size']} x ({s['time']}, {s['leads']}), "
             f"{'XLA' if s['jit_compile'] else 'no XLA'}, {'mixed_float16' if s['mixed_precision'] else 'float32'}; "
             "median (IQR) ms over interleaved rounds\n",
             common.markdown_table(["backbone", "params", "plain Keras ms", "erts cam=0 ms", "erts cam=1 ms",
                                    "cam=0 / plain", "cam=1 / plain (IQR of per-round ratio)", "cam=1 / plain, min",
                                    "cam=1 / plain, CPU s", f"median <= {TARGET}", "rounds"], body)]
    for r in rows:
        if "profile" not in r:
            continue
        prof = r["profile"]
        plain = prof["plain step (tf.function)"]["median"]
        lines.append(f"\nprofile {r['backbone']} (bare tf.function steps, median (IQR) ms; share relative to the plain step)\n")
        lines.append(common.markdown_table(
            ["piece", "median ms (IQR)", "relative to plain step", "min ms", "min relative"],
            [[k, f"{1000 * p['median']:.0f} ({1000 * p['p25']:.0f}–{1000 * p['p75']:.0f})", f"{p['median'] / plain:.2f}",
              f"{1000 * p['min']:.0f}", f"{p['min'] / prof['plain step (tf.function)']['min']:.2f}"]
             for k, p in prof.items()], "lrrrr"))
    return "\n".join(lines)


def main(argv=None) -> dict:
    args = parse(argv)
    common.quiet_tensorflow()
    import keras

    if args.mixed_precision:
        keras.mixed_precision.set_global_policy("mixed_float16")

    def line(name, row):
        v = row["variants"]
        return (f"{name}: plain {1000 * v['plain']['median']:.0f} ms, erts cam=0 {1000 * v['erts_nocam']['median']:.0f} "
                f"ms, cam=1 {1000 * v['erts_cam']['median']:.0f} ms -> {row['ratio_cam']:.2f}x")

    rows, machine, started = common.measure_backbones(args, measure, line)
    if args.mixed_precision:
        keras.mixed_precision.set_global_policy("float32")
    result = {
        "benchmark": NAME,
        "settings": {k: v for k, v in vars(args).items()},
        "machine": machine,
        "machine_end": {"loadavg": list(os.getloadavg())},
        "total_wall_s": time.perf_counter() - started,
        "target": f"erts cam=1 step <= {TARGET} x plain Keras step",
        "results": rows,
        "notes": [
            "plain Keras computes an unweighted loss and no metric; the ERTS step adds class weights, "
            "a macro-F1 metric, a finite check and scatters of per-sample scores (see the profile's bookkeeping row)",
            "GPU, XLA and mixed precision were not measured unless settings say so and machine.gpus is not empty",
        ],
    }
    return common.publish(args, NAME, result, tables(result))


if __name__ == "__main__":
    main()
