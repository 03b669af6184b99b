"""How radgazegen uses a CPU's cores: torch's intra-op threads for small workloads, coarse work across threads.

Many tiny tensors gain nothing from intra-op threads: splitting each op of a few thousand to a few hundred
thousand numbers costs more in synchronisation than it saves (all 42 first-order and GLCM texture maps of a
64 x 64 crop on 2 cores: 1 thread per op 1.6x faster than 2). The cores are better spent on independent
pieces: chunks of kernels, and batches of MCC's small eigenproblems, which torch solves one after another
(torch and LAPACK release the GIL).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextvars import ContextVar
from functools import cache
from typing import TypeVar

import torch

Item = TypeVar("Item")
Result = TypeVar("Result")
_WORKERS: ContextVar[int | None] = ContextVar("radgazegen_cpu_workers", default=None)
_PREFIX = "radgazegen-cpu"


@contextlib.contextmanager
def torch_threads(count: int) -> Iterator[None]:
    """Run torch with ``count`` intra-op threads, then restore the previous number."""
    previous = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


@contextlib.contextmanager
def one_thread_per_op(device: torch.device) -> Iterator[None]:
    """On a CPU, run torch ops on one thread inside the block and keep the thread count for :func:`thread_map`
    and :func:`in_background`; on other devices (a GPU queues its kernels on one stream), one worker."""
    on_cpu = device.type == "cpu"
    token = _WORKERS.set(torch.get_num_threads() if on_cpu else 1)
    try:
        with torch_threads(1) if on_cpu else contextlib.nullcontext():
            yield
    finally:
        _WORKERS.reset(token)


def workers() -> int:
    """Threads available for coarse pieces of work: torch's thread count outside :func:`one_thread_per_op`."""
    return _WORKERS.get() or torch.get_num_threads()


def thread_map(function: Callable[[Item], Result], items: Iterable[Item]) -> Iterator[Result]:
    """``function(item)`` for each item, in order, on :func:`workers` threads when there are several (inline
    when called from one of those threads, so nested maps cannot wait on themselves)."""
    items = list(items)
    if workers() < 2 or len(items) < 2 or _on_worker():
        return map(function, items)
    return _pool(workers()).map(function, items)


def in_background(function: Callable[[], Result]) -> Callable[[], Result]:
    """Start ``function()`` on a worker thread when there are several and return a call that waits for its
    result; with one worker, the first call computes it. Either way it runs once."""
    if workers() < 2 or _on_worker():
        return cache(function)
    return _pool(workers()).submit(function).result


def _on_worker() -> bool:
    return threading.current_thread().name.startswith(_PREFIX)


@cache
def _pool(count: int) -> ThreadPoolExecutor:
    return ThreadPoolExecutor(count, thread_name_prefix=_PREFIX)
