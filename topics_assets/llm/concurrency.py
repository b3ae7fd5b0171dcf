"""Bounded fan-out: each item's exception is its own result, never the batch's."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor, as_completed
from typing import Any, Callable, Iterable




def run_bounded(
    fn: Callable[[Any], Any],
    items: Iterable[Any],
    max_in_flight: int,
    on_done: Callable[[int, Any], None] | None = None,
) -> list[Any]:
    """fn over items with at most max_in_flight running; results or exceptions, in input order.

    One item's exception is its result, never the whole batch's. on_done(index, result) runs in
    the calling thread as each item finishes (in completion order), so it may write to a
    database or a progress bar without locks.
    """
    items = list(items)
    if not items:
        return []
    results: list[Any] = [None] * len(items)
    pool = ThreadPoolExecutor(max_workers=max(1, min(max_in_flight, len(items))), thread_name_prefix="topics-llm")
    try:
        futures = {pool.submit(fn, item): i for i, item in enumerate(items)}
        for future in as_completed(futures):
            i = futures[future]
            exc = future.exception()
            results[i] = exc if exc is not None else future.result()
            if on_done is not None:
                on_done(i, results[i])
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    return results
