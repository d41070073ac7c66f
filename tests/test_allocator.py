"""The malloc arena cap of the lazy backend: the rule a run applies, and that the cap holds for new threads."""

import ctypes.util
import pathlib
import platform
import subprocess
import sys

import pytest

from erts_tf.data import allocator

REPO = pathlib.Path(__file__).resolve().parents[1]


def test_a_runs_default_caps_the_lazy_backend_only_and_respects_the_environment(monkeypatch):
    monkeypatch.delenv("MALLOC_ARENA_MAX", raising=False)
    assert allocator.arena_cap("lazy") == allocator.LAZY_ARENAS == 1
    assert allocator.arena_cap("memory") == 0
    assert allocator.arena_cap("lazy", 0) == 0 and allocator.arena_cap("memory", 4) == 4
    monkeypatch.setenv("MALLOC_ARENA_MAX", "2")  # the user's choice at start-up stands
    assert allocator.arena_cap("lazy") == 0 and allocator.arena_cap("lazy", 3) == 3


# Six threads each allocate once; glibc gives each new thread its own arena up to its limit.
_COUNT_ARENAS = """
import ctypes, ctypes.util, sys, threading
sys.path.insert(0, {repo!r})
from erts_tf.data import allocator
libc = ctypes.CDLL(ctypes.util.find_library("c"))
if {cap}:
    assert allocator.cap_malloc_arenas({cap})
libc.malloc.restype = ctypes.c_void_p
libc.free.argtypes = [ctypes.c_void_p]
threads = [threading.Thread(target=lambda: [libc.free(libc.malloc(1 << 16)) for _ in range(50)]) for _ in range(6)]
[t.start() for t in threads]
[t.join() for t in threads]
libc.malloc_stats()
"""


@pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc" or not ctypes.util.find_library("c"),
                    reason="malloc arenas are glibc's")
def test_the_cap_holds_for_threads_started_after_it():
    def arenas(cap: int) -> int:
        done = subprocess.run([sys.executable, "-c", _COUNT_ARENAS.format(repo=str(REPO), cap=cap)],
                              capture_output=True, text=True, check=True)
        return sum(line.startswith("Arena ") for line in done.stderr.splitlines())

    assert arenas(0) > 1  # the threads got arenas of their own
    assert arenas(1) == 1
