"""onnxruntime CPU latency per record of several ONNX models, measured side by side in one process."""

from __future__ import annotations

import statistics
import time

import numpy as np

from export.onnx_export import onnx_session, session_predict

DEFAULT_BATCH_SIZES = (1, 32)


def _quartiles(values: list[float]) -> dict:
    q = statistics.quantiles(values, n=4, method="inclusive") if len(values) > 1 else [values[0]] * 3
    return {"median": q[1], "p25": q[0], "p75": q[2], "min": min(values)}


def measure_latency(paths: dict[str, str], signal: np.ndarray, batch_sizes=DEFAULT_BATCH_SIZES, rounds: int = 5,
                    threads: int = 1) -> dict:
    """Milliseconds per record of each model at each batch size (onnxruntime, CPU).

    One measurement runs ``max(batch_sizes)`` records through a model in calls of
    ``batch_size`` records, one after the other (batch 1: that many single-record
    calls). Each of the ``rounds`` rounds measures every (model, batch size) once,
    in an order rotated by one per round, so that a change in the machine's load
    hits every model alike. One untimed call per pair comes first.

    Args:
      paths: ``{name: .onnx path}``.
      signal: raw records ``(n, time, leads)``; repeated if fewer than ``max(batch_sizes)``.
      batch_sizes: batch sizes to measure.
      rounds: measurements per (model, batch size).
      threads: onnxruntime intra-op threads.

    Returns:
      ``{"threads", "rounds", "records", "ms_per_record": {name: {batch: {"median", "p25", "p75", "min"}}}}``
      with the batch sizes as strings (JSON keys).
    """
    n = max(batch_sizes)
    records = np.resize(np.asarray(signal, np.float32), (n, *signal.shape[1:]))
    sessions = {name: onnx_session(path, threads) for name, path in paths.items()}
    pairs = [(name, b) for name in sessions for b in batch_sizes]
    for name, b in pairs:
        session_predict(sessions[name], records[:b])
    timings = {pair: [] for pair in pairs}
    for r in range(rounds):
        for name, b in pairs[r % len(pairs):] + pairs[:r % len(pairs)]:
            start = time.perf_counter()
            for i in range(0, n, b):
                session_predict(sessions[name], records[i:i + b])
            timings[(name, b)].append(1e3 * (time.perf_counter() - start) / n)
    return {"threads": threads, "rounds": rounds, "records": n,
            "ms_per_record": {name: {str(b): _quartiles(timings[(name, b)]) for b in batch_sizes} for name in sessions}}
