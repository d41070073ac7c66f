"""Backbone benchmark: parameters, Grad-CAM target shapes and CPU train-step time.

For each registered backbone (or ``--backbones``) at input ``(time, leads)``
(default ``(1000, 12)``), 5 classes: the parameter count, the target layer and
its output shape at that input and at ``(3600, 1)``, and the wall time of a
compiled fp32 training step (``tf.function``, batch 32 of random signals and
labels, Adam, Grappler on) in two forms:

  train step  forward, cross-entropy, backward, Adam update;
  ERTS step   the same through the two-output view ``(target activations,
              logits)`` with a persistent tape, plus the Grad-CAM partial
              backward (true-class logits -> target layer) and the map.

After one tracing call (reported as ``first_call_s``) and ``--warmup`` untimed
calls, the two are timed in alternation (the order rotates every round) so
that a change in the machine's load hits both alike: at least ``--repeats``
rounds, more (up to 50) until each has ``--min_timed_s`` seconds of timed
calls. The table gives the median; the JSON also the quartiles and every
call. ``benchmarks/step_overhead.py`` measures the ERTS train step's overhead
through the real ``ERTSModel``; this one compares the backbones.

Usage:
  python benchmarks/backbones.py [--backbones resnet1d,xresnet1d] [--repeats 5]
  python benchmarks/backbones.py --smoke
"""

from __future__ import annotations

import os
import pathlib
import sys
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

import common  # noqa: E402

NAME = "backbones"
SECOND_SHAPE = (3600, 1)
SMOKE_BACKBONES = "resnet1d,xresnet1d"


def parse(argv=None):
    parser = common.base_parser(__doc__, NAME)
    parser.add_argument("--backbones", default=None,
                        help=f"comma-separated (default: every registered backbone; {SMOKE_BACKBONES} with --smoke)")
    parser.add_argument("--batch_size", type=int, default=None, help="default 32; 2 with --smoke")
    parser.add_argument("--time", type=int, default=None, help="input length (default 1000; 256 with --smoke)")
    parser.add_argument("--leads", type=int, default=12)
    parser.add_argument("--n_classes", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=None, help="untimed calls after tracing (default 2; 0 with --smoke)")
    parser.add_argument("--repeats", type=int, default=None, help="at least this many timed rounds (default 5; 1 with --smoke)")
    parser.add_argument("--min_timed_s", type=float, default=None,
                        help="and at least this many seconds of timed calls each (default 3; 0 with --smoke)")
    args = parser.parse_args(argv)
    backbones = args.backbones or (SMOKE_BACKBONES if args.smoke else None)
    args.backbones = backbones.split(",") if backbones else None
    args.batch_size = args.batch_size or (2 if args.smoke else 32)
    args.time = args.time or (256 if args.smoke else 1000)
    args.warmup = args.warmup if args.warmup is not None else (0 if args.smoke else 2)
    args.repeats = args.repeats or (1 if args.smoke else 5)
    args.min_timed_s = args.min_timed_s if args.min_timed_s is not None else (0.0 if args.smoke else 3.0)
    return args


def _steps(model, aux, optimizer):
    """``(train_step, erts_step)``, compiled; both update ``model``'s weights."""
    import keras
    import tensorflow as tf

    from erts_tf.explain.gradcam import gradcam_over_time, true_class_logit_sum

    def loss_fn(y, logits):
        return tf.reduce_mean(keras.losses.sparse_categorical_crossentropy(y, logits, from_logits=True))

    @tf.function
    def plain_step(x, y):
        with tf.GradientTape() as tape:
            loss = loss_fn(y, model(x, training=True))
        optimizer.apply(tape.gradient(loss, model.trainable_variables), model.trainable_variables)
        return loss

    @tf.function
    def erts_step(x, y):
        with tf.GradientTape(persistent=True) as tape:
            activations, logits = aux(x, training=True)
            loss = loss_fn(y, logits)
            cam_target = true_class_logit_sum(logits, y)
        grads = tape.gradient(loss, model.trainable_variables)
        cam = gradcam_over_time(activations, tape.gradient(cam_target, activations))
        del tape
        optimizer.apply(grads, model.trainable_variables)
        return loss, cam

    return plain_step, erts_step


def _run_once(step, x, y) -> float:
    import tensorflow as tf

    start = time.perf_counter()
    tf.nest.map_structure(lambda t: t.numpy(), step(x, y))
    return time.perf_counter() - start


def _time_steps(steps: dict, x, y, args) -> dict:
    """``{name: {"first_call_s", "timed_s", **spread}}`` for each step, timed in rotating alternation."""
    first = {name: _run_once(step, x, y) for name, step in steps.items()}
    for _ in range(args.warmup):
        for step in steps.values():
            _run_once(step, x, y)
    names = list(steps)
    timed = {name: [] for name in names}
    for round_index in range(50):
        for name in names[round_index % len(names):] + names[:round_index % len(names)]:
            timed[name].append(_run_once(steps[name], x, y))
        if round_index + 1 >= args.repeats and all(sum(t) >= args.min_timed_s for t in timed.values()):
            break
    return {name: {"first_call_s": first[name], **common.spread(timed[name]), "timed_s": timed[name]} for name in names}


def measure(name: str, args) -> dict:
    import keras
    import tensorflow as tf

    from erts_tf import models
    from erts_tf.explain.gradcam import cam_view

    backbone = models.get(name)
    shape = (args.time, args.leads)
    keras.utils.set_random_seed(0)
    model = models.build(name, shape, args.n_classes)
    aux = cam_view(model, backbone.target_layer)
    target = aux.outputs[0]
    optimizer = keras.optimizers.Adam(1e-3)
    optimizer.build(model.trainable_variables)
    second = models.build(name, SECOND_SHAPE, args.n_classes)
    second_target = second.get_layer(backbone.target_layer).output.shape
    del second

    rng = tf.random.Generator.from_seed(0)
    x = rng.normal((args.batch_size, *shape))
    y = rng.uniform((args.batch_size,), 0, args.n_classes, dtype=tf.int32)
    plain_step, erts_step = _steps(model, aux, optimizer)
    with common.Meter() as meter:
        timings = _time_steps({"train_step": plain_step, "erts_step": erts_step}, x, y, args)
    row = {
        "backbone": name,
        "description": backbone.description,
        "target_layer": backbone.target_layer,
        "params": int(model.count_params()),
        "trainable_params": int(sum(int(tf.size(v)) for v in model.trainable_variables)),
        "target_shape": [None, *target.shape[1:]],
        f"target_shape_{SECOND_SHAPE[0]}x{SECOND_SHAPE[1]}": [None, *second_target[1:]],
        **timings,
        "erts_over_train_step": timings["erts_step"]["median"] / timings["train_step"]["median"],
        "meter": meter.result,
    }
    keras.backend.clear_session()
    return row


def table(result: dict) -> str:
    settings = result["settings"]
    key2 = f"target_shape_{SECOND_SHAPE[0]}x{SECOND_SHAPE[1]}"
    headers = ["backbone", "params", "target layer", f"target ({settings['time']}, {settings['leads']})",
               f"target {SECOND_SHAPE}", "train step s", "ERTS step s", "ERTS / train"]
    rows = [
        [r["backbone"], f"{r['params']:,}", r["target_layer"], "x".join(str(d) for d in r["target_shape"][1:]),
         "x".join(str(d) for d in r[key2][1:]), common.fmt(r["train_step"]["median"]),
         common.fmt(r["erts_step"]["median"]), common.fmt(r["erts_over_train_step"], ".2f")]
        for r in result["results"]
    ]
    return common.markdown_table(headers, rows, "lrlllrrr")


def main(argv=None) -> dict:
    args = parse(argv)
    common.quiet_tensorflow()
    rows, machine, started = common.measure_backbones(
        args, measure, lambda name, row: f"{name}: {row['params']:,} params, train step "
                                         f"{row['train_step']['median']:.3f} s, ERTS step {row['erts_step']['median']:.3f} s")
    result = {
        "benchmark": NAME,
        "settings": {**vars(args), "dtype": "float32", "optimizer": "Adam",
                     "statistic": "wall time of a compiled (tf.function) step, Grappler on; steps alternate"},
        "machine": machine,
        "machine_end": {"loadavg": list(os.getloadavg())},
        "total_wall_s": time.perf_counter() - started,
        "results": rows,
        "notes": [
            "CPU only, fp32; the machine is shared, so see machine.loadavg / machine_end.loadavg and each row's "
            "meter.loadavg_start/end: with a load above the core count the times are inflated and noisy",
        ],
    }
    return common.publish(args, NAME, result, table(result))


if __name__ == "__main__":
    main()
