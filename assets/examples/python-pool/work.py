"""Numeric work on 200 items, as one would hand it to multiprocessing.Pool.map.

Every item is an integer; the result is a small dict. Items divisible by 47 raise, so the
run shows how an exception in a worker is reported: as that task's error, with its
traceback, while the rest of the pool goes on.
"""

import math
import os

WEIGHTS = None


def setup():
    """Runs once in each worker before its first item."""
    global WEIGHTS
    WEIGHTS = [math.sqrt(k) for k in range(1, 160001)]


def process(item):
    if item % 47 == 0:
        raise ValueError(f"item {item} is a multiple of 47, which this step cannot handle")
    total = 0.0
    for k, w in enumerate(WEIGHTS, start=1):
        total += w * ((item * k) % 7)
    return {"item": item, "score": round(total, 3), "worker": os.getpid()}
