"""``tf.distribute`` strategies for ``--strategy``: default, mirrored, multiworker.

* ``default``: one device (the first GPU if there is one, else the CPU).
* ``mirrored``: ``MirroredStrategy`` over every GPU of this machine (or every
  logical CPU device when there is no GPU, which is how the tests run it).
* ``multiworker``: ``MultiWorkerMirroredStrategy``; the cluster and this
  process's task come from the ``TF_CONFIG`` environment variable.

``--batch_size`` is the global batch: each of the R replicas trains on its
share of the same global batch a single device would see, and the loss is
divided by the global batch size so that the summed replica gradients equal
the single-device gradient (``ERTSModel._loss``). Batch normalisation is
switched to synchronised statistics (``synchronize_batch_norm``), so the
forward pass also matches the single-device one.
"""

from __future__ import annotations

import json
import os

import keras
import tensorflow as tf

STRATEGIES = ("default", "mirrored", "multiworker")


def make(name: str) -> tf.distribute.Strategy:
    """The strategy called ``name`` (one of ``STRATEGIES``)."""
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        gpus = tf.config.list_logical_devices("GPU")
        devices = [d.name for d in (gpus or tf.config.list_logical_devices("CPU"))]
        return tf.distribute.MirroredStrategy(devices)
    if name == "multiworker":
        if "TF_CONFIG" not in os.environ:
            raise ValueError("--strategy=multiworker needs the TF_CONFIG environment variable (see BUILD.md)")
        return tf.distribute.MultiWorkerMirroredStrategy()
    raise ValueError(f"unknown strategy {name!r}; choose one of {', '.join(STRATEGIES)}")


def task() -> tuple[str, int]:
    """``(type, index)`` of this process in ``TF_CONFIG`` (``("chief", 0)`` without one)."""
    config = json.loads(os.environ.get("TF_CONFIG", "{}"))
    if not config.get("task"):
        return "chief", 0
    return config["task"].get("type", "worker"), int(config["task"].get("index", 0))


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    """Whether this process writes the run's files: the chief, or worker 0 of a cluster without one."""
    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return True
    kind, index = task()
    has_chief = "chief" in json.loads(os.environ["TF_CONFIG"]).get("cluster", {})
    return kind == "chief" or (not has_chief and kind == "worker" and index == 0)


def describe(name: str, strategy: tf.distribute.Strategy) -> dict:
    """``{"strategy": name, "replicas", "workers"}`` of a run, for its summary."""
    cluster = json.loads(os.environ.get("TF_CONFIG", "{}")).get("cluster", {})
    multiworker = isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)
    workers = sum(len(cluster.get(kind, [])) for kind in ("chief", "worker")) if multiworker else 1
    return {"strategy": name, "replicas": strategy.num_replicas_in_sync, "workers": max(1, workers)}


def worker_shard(context: tf.distribute.InputContext):
    """The ``pipeline.Shard`` of the worker an input pipeline ``context`` runs on (its replicas in worker order)."""
    from erts_tf.data import pipeline

    local = context.num_replicas_in_sync // context.num_input_pipelines
    first = context.input_pipeline_id * local
    return pipeline.Shard(tuple(range(first, first + local)), context.num_replicas_in_sync)


def sum_over_workers(strategy: tf.distribute.Strategy, value: int) -> int:
    """The sum of every worker's ``value`` under ``MultiWorkerMirroredStrategy`` (``value`` otherwise).

    A collective: every worker calls it, in the same order (from a callback all workers run)."""
    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return value
    local = len(strategy.extended.worker_devices)
    per_replica = strategy.run(lambda: tf.constant(value, tf.int64))
    return int(strategy.reduce(tf.distribute.ReduceOp.SUM, per_replica, axis=None).numpy()) // local


def synchronize_batch_norm(model: keras.Model, synchronized: bool = True) -> int:
    """Sets ``synchronized`` on every BatchNormalization layer of ``model``; returns how many.

    With it, batch statistics in training are computed over the global batch (all replicas),
    as on one device; it does nothing without a multi-replica strategy.
    """
    layers = [layer for layer in _all_layers(model) if isinstance(layer, keras.layers.BatchNormalization)]
    for layer in layers:
        layer.synchronized = synchronized
    return len(layers)


def _all_layers(model):
    for layer in model.layers:
        yield layer
        if hasattr(layer, "layers"):
            yield from _all_layers(layer)
