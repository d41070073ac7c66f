"""Deterministic generator of 12-lead ECG-like signals with local class evidence.

Used by the ``synthetic_ecg`` TFDS builder (``datasets/synthetic_ecg``). Each
record is 10 s at 100 Hz, ``(1000, 12)`` float32, in millivolt-like units.

Classes (the evidence is local in time: a few beats or the QRS complexes):
  0 ``normal``       regular sinus rhythm.
  1 ``st_elevation`` ST segment raised in 2-3 consecutive beats (transient).
  2 ``wide_qrs``     every QRS complex widened (bundle-branch-block-like).
  3 ``premature``    1-2 premature, wide beats without P wave, then a pause.
  4 ``af``           irregular RR, no P waves, fibrillatory baseline.

Corruptions (ground truth recorded per sample):
  ``none``, ``baseline_wander`` (large slow drift), ``burst_noise``
  (high-amplitude noise bursts), ``flat_lead`` (several leads flat),
  ``electrode_swap`` (two limb leads swapped and inverted), ``label_flip``
  (the signal is clean, the label is another class).
"""

from __future__ import annotations

import numpy as np

CLASS_NAMES = ("normal", "st_elevation", "wide_qrs", "premature", "af")
CORRUPTIONS = ("none", "baseline_wander", "burst_noise", "flat_lead", "electrode_swap", "label_flip")
SAMPLING_RATE = 100
N_SAMPLES = 1000
N_LEADS = 12

# Per-lead projection of the P, QRS, ST and T components (12 standard leads).
_LEAD_GAIN = {
    "p": np.array([0.10, 0.15, 0.05, -0.12, 0.02, 0.10, 0.05, 0.08, 0.10, 0.10, 0.08, 0.07]),
    "qrs": np.array([0.8, 1.2, 0.5, -1.0, 0.2, 0.9, -0.6, -0.3, 0.4, 1.1, 1.4, 1.2]),
    "st": np.array([0.05, 0.25, 0.20, -0.15, -0.05, 0.22, 0.10, 0.30, 0.35, 0.30, 0.20, 0.10]),
    "t": np.array([0.20, 0.30, 0.10, -0.25, 0.05, 0.20, 0.10, 0.25, 0.35, 0.40, 0.35, 0.25]),
}


def _gauss(t: np.ndarray, centre: float, width: float) -> np.ndarray:
    return np.exp(-0.5 * ((t - centre) / width) ** 2)


def _beat_times(rng: np.random.Generator, label: int) -> tuple[np.ndarray, np.ndarray]:
    """R-peak times in seconds, and a per-beat flag for premature (ectopic) beats."""
    rr_mean = rng.uniform(0.7, 1.05)
    times, ectopic = [], []
    t = rng.uniform(0.2, 0.6)
    while t < 9.8:
        times.append(t)
        ectopic.append(False)
        if label == 4:  # AF: irregularly irregular
            t += rr_mean * rng.uniform(0.55, 1.45)
        else:
            t += rr_mean * rng.normal(1.0, 0.03)
    times, ectopic = np.array(times), np.array(ectopic)
    if label == 3 and len(times) > 5:
        n_pvc = rng.integers(1, 3)
        for index in rng.choice(np.arange(2, len(times) - 2), size=n_pvc, replace=False):
            gap = times[index] - times[index - 1]
            times[index] = times[index - 1] + 0.6 * gap  # premature ...
            ectopic[index] = True  # ... the following beat keeps its time: compensatory pause
    return times, ectopic


def _clean_signal(rng: np.random.Generator, label: int) -> np.ndarray:
    """One clean record ``(time, leads)`` of class ``label``."""
    t = np.arange(N_SAMPLES) / SAMPLING_RATE
    gains = {k: v * rng.normal(1.0, 0.15, size=N_LEADS) for k, v in _LEAD_GAIN.items()}
    comp = {k: np.zeros(N_SAMPLES) for k in gains}
    beats, ectopic = _beat_times(rng, label)
    st_beats = set()
    if label == 1 and len(beats) > 4:
        start = int(rng.integers(1, len(beats) - 3))
        st_beats = set(range(start, start + int(rng.integers(2, 4))))
    qrs_width = 0.045 if label == 2 else 0.018
    for index, r in enumerate(beats):
        if ectopic[index]:
            comp["qrs"] += 1.3 * _gauss(t, r, 0.05) - 0.5 * _gauss(t, r + 0.09, 0.05)
            comp["t"] -= 0.8 * _gauss(t, r + 0.32, 0.07)
            continue
        if label != 4:
            comp["p"] += _gauss(t, r - 0.16, 0.025)
        comp["qrs"] += (
            -0.15 * _gauss(t, r - 0.03, 0.01)
            + _gauss(t, r, qrs_width)
            - 0.25 * _gauss(t, r + 0.035 + qrs_width, 0.012)
        )
        if label == 2:
            comp["qrs"] += 0.45 * _gauss(t, r + 0.07, 0.03)  # notched, wide terminal part
        comp["t"] += _gauss(t, r + 0.30, 0.06)
        if index in st_beats:
            comp["st"] += 1.6 * ((t > r + 0.05) & (t < r + 0.24)) * 1.0 + 0.8 * _gauss(t, r + 0.2, 0.06)
    signal = sum(np.outer(comp[k], gains[k]) for k in comp)
    if label == 4:  # fibrillatory waves replace P waves
        f = rng.uniform(5.0, 8.0)
        signal += 0.05 * np.sin(2 * np.pi * f * t + rng.uniform(0, 2 * np.pi))[:, None] * gains["p"] / 0.1
    signal += rng.normal(0.0, 0.02, size=signal.shape)  # measurement noise
    return signal


def _corrupt(rng: np.random.Generator, signal: np.ndarray, corruption: str) -> np.ndarray:
    """Applies ``corruption`` to ``signal`` ``(time, leads)`` (label_flip leaves it clean)."""
    t = np.arange(N_SAMPLES) / SAMPLING_RATE
    signal = signal.copy()
    if corruption == "baseline_wander":
        for _ in range(2):
            f = rng.uniform(0.1, 0.5)
            signal += rng.uniform(1.0, 2.5) * np.sin(2 * np.pi * f * t + rng.uniform(0, 6.3))[:, None] * rng.normal(1.0, 0.3, N_LEADS)
    elif corruption == "burst_noise":
        for _ in range(int(rng.integers(3, 6))):
            start = int(rng.integers(0, N_SAMPLES - 150))
            length = int(rng.integers(80, 150))
            signal[start : start + length] += rng.normal(0.0, rng.uniform(0.6, 1.2), size=(length, N_LEADS))
    elif corruption == "flat_lead":
        leads = rng.choice(N_LEADS, size=int(rng.integers(4, 9)), replace=False)
        signal[:, leads] = rng.normal(0.0, 0.005, size=(N_SAMPLES, len(leads)))
    elif corruption == "electrode_swap":
        a, b = rng.choice(6, size=2, replace=False)  # limb leads
        signal[:, [a, b]] = -signal[:, [b, a]]
    return signal


def generate(index: int, seed: int, corruption_rate: float) -> dict:
    """Generates record ``index`` of the stream seeded by ``seed``.

    Returns ``{"signal": (1000, 12) float32, "label": int, "true_label": int,
    "corruption": str}``; ``label`` differs from ``true_label`` only under
    ``label_flip``. The same ``(index, seed, corruption_rate)`` always gives the
    same record.
    """
    rng = np.random.default_rng([seed, index])
    true_label = int(rng.integers(len(CLASS_NAMES)))
    signal = _clean_signal(rng, true_label)
    corruption = "none"
    if rng.uniform() < corruption_rate:
        corruption = CORRUPTIONS[1 + int(rng.integers(len(CORRUPTIONS) - 1))]
    signal = _corrupt(rng, signal, corruption)
    label = true_label
    if corruption == "label_flip":
        label = int((true_label + rng.integers(1, len(CLASS_NAMES))) % len(CLASS_NAMES))
    return {
        "signal": signal.astype(np.float32),
        "label": label,
        "true_label": true_label,
        "corruption": corruption,
    }
