"""glibc's malloc arenas, capped on the lazy backend so that its resident memory does not grow with the dataset.

glibc gives threads that allocate at the same time their own heaps ("arenas",
up to 8 per core by default), and memory freed in one arena is reused by that
arena only. The lazy backend reads and decodes records on tf.data's threads,
each batch a fresh allocation: measured on generated datasets of 1,000 to
50,000 records (``benchmarks/scale.py --compare_backends``), its anonymous
memory then grew with the dataset (420 -> 515 MiB, peak RSS +10 %), while the
same probes with ``MALLOC_ARENA_MAX=1`` set at start-up stayed within 6 % at
no measurable cost in throughput. ``--malloc_arena_max`` (``arena_cap``) sets
the cap for the run's process: ``mallopt(M_ARENA_MAX, n)``, what
``MALLOC_ARENA_MAX=n`` does at start-up, effective for arenas made from then on
(those TensorFlow's import made stay: +8.9 % from 1,000 to 50,000 records,
against +9.4 % uncapped in the same measurement).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os

log = logging.getLogger(__name__)

M_ARENA_MAX = -8  # glibc's malloc.h
AUTO = -1
LAZY_ARENAS = 1


def arena_cap(backend: str, setting: int = AUTO) -> int:
    """The arena cap a run applies: ``setting`` if positive; with ``AUTO`` (-1) ``LAZY_ARENAS`` on the lazy
    backend and none (0) on the memory one, and none when the process was started with ``MALLOC_ARENA_MAX``
    (the user's choice stands); 0: none, glibc's default."""
    if setting > 0:
        return setting
    if setting == AUTO and backend == "lazy" and "MALLOC_ARENA_MAX" not in os.environ:
        return LAZY_ARENAS
    return 0


def cap_malloc_arenas(arenas: int) -> bool:
    """Caps this process's glibc malloc arenas at ``arenas`` from now on; False (and nothing changed) where
    the C library is not glibc or refuses the value."""
    name = ctypes.util.find_library("c")
    try:
        mallopt = ctypes.CDLL(name).mallopt
    except (OSError, AttributeError, TypeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return mallopt(M_ARENA_MAX, int(arenas)) == 1


def apply(backend: str, setting: int = AUTO) -> int:
    """Applies ``arena_cap(backend, setting)`` to this process; returns the cap (0: none). A C library that
    cannot cap is logged, not an error: the cap bounds memory, results do not depend on it."""
    arenas = arena_cap(backend, setting)
    if arenas and not cap_malloc_arenas(arenas):
        log.warning("could not cap malloc arenas at %d (not glibc?); resident memory may grow with the dataset",
                    arenas)
        return 0
    return arenas
