"""numpy's portable quicksort (introsort) for argsort, ported so tie order is reproducible.

SpaRED orders genes with pandas' ``sort_values`` (``kind='quicksort'``), i.e. numpy's
``argsort(kind='quicksort')``. Which of several equal values comes first depends on the
implementation numpy dispatches to: its portable introsort (``npysort/quicksort.cpp``:
median-of-3 partition, insertion sort below 16 elements, heapsort past ``2*log2(n)`` depth,
NaN last), or on AVX-512 machines (numpy >= 1.25) x86-simd-sort, whose tie order changes
between numpy versions. The portable path is the one any machine can reproduce: this module is
a line-by-line port of it (checked against numpy 1.26 with the SIMD sorts disabled), and
``pandas_descending_order`` is pandas' ``nargsort(ascending=False, na_position='last')`` on top.
"""

from __future__ import annotations

import numpy as np

SMALL_QUICKSORT = 15


def _less(a: float, b: float) -> bool:
    return a < b or (b != b and a == a)


def _aheapsort(v: list[float], tosort: list[int], lo: int, n: int) -> None:
    # a[1..n] = tosort[lo .. lo+n-1]
    def get(k: int) -> int:
        return tosort[lo + k - 1]

    def put(k: int, x: int) -> None:
        tosort[lo + k - 1] = x

    def sift_down(i: int, tmp: int, size: int) -> None:
        j = i << 1
        while j <= size:
            if j < size and _less(v[get(j)], v[get(j + 1)]):
                j += 1
            if _less(v[tmp], v[get(j)]):
                put(i, get(j))
                i = j
                j += j
            else:
                break
        put(i, tmp)

    for top in range(n >> 1, 0, -1):
        sift_down(top, get(top), n)
    while n > 1:
        tmp = get(n)
        put(n, get(1))
        n -= 1
        sift_down(1, tmp, n)


def introsort_argsort(values: np.ndarray) -> np.ndarray:
    """Return ``np.argsort(values, kind='quicksort')`` as numpy's portable introsort gives it."""
    v = [float(x) for x in np.asarray(values, dtype=np.float64)]
    num = len(v)
    tosort = list(range(num))
    if num < 2:
        return np.array(tosort, dtype=np.int64)
    pl, pr = 0, num - 1
    stack = []
    depth_stack = []
    cdepth = (num.bit_length() - 1) * 2
    while True:
        if cdepth < 0:
            _aheapsort(v, tosort, pl, pr - pl + 1)
        else:
            while pr - pl > SMALL_QUICKSORT:
                pm = pl + ((pr - pl) >> 1)
                if _less(v[tosort[pm]], v[tosort[pl]]):
                    tosort[pm], tosort[pl] = tosort[pl], tosort[pm]
                if _less(v[tosort[pr]], v[tosort[pm]]):
                    tosort[pr], tosort[pm] = tosort[pm], tosort[pr]
                if _less(v[tosort[pm]], v[tosort[pl]]):
                    tosort[pm], tosort[pl] = tosort[pl], tosort[pm]
                vp = v[tosort[pm]]
                pi, pj = pl, pr - 1
                tosort[pm], tosort[pj] = tosort[pj], tosort[pm]
                while True:
                    pi += 1
                    while _less(v[tosort[pi]], vp):
                        pi += 1
                    pj -= 1
                    while _less(vp, v[tosort[pj]]):
                        pj -= 1
                    if pi >= pj:
                        break
                    tosort[pi], tosort[pj] = tosort[pj], tosort[pi]
                pk = pr - 1
                tosort[pi], tosort[pk] = tosort[pk], tosort[pi]
                if pi - pl < pr - pi:
                    stack.append((pi + 1, pr))
                    pr = pi - 1
                else:
                    stack.append((pl, pi - 1))
                    pl = pi + 1
                cdepth -= 1
                depth_stack.append(cdepth)
            for pi in range(pl + 1, pr + 1):
                vi = tosort[pi]
                vp = v[vi]
                pj = pi
                while pj > pl and _less(vp, v[tosort[pj - 1]]):
                    tosort[pj] = tosort[pj - 1]
                    pj -= 1
                tosort[pj] = vi
        if not stack:
            break
        pl, pr = stack.pop()
        cdepth = depth_stack.pop()
    return np.array(tosort, dtype=np.int64)


def pandas_descending_order(values: np.ndarray) -> np.ndarray:
    """Return the row order of ``DataFrame.sort_values(column, ascending=False)``.

    pandas' ``nargsort``: the non-NaN values reversed, argsorted (``introsort_argsort``), the
    result reversed back; NaNs last in their original order.
    """
    items = np.asarray(values, dtype=np.float64)
    mask = np.isnan(items)
    index = np.arange(items.size)
    non_nans = items[~mask][::-1]
    non_nan_index = index[~mask][::-1]
    order = non_nan_index[introsort_argsort(non_nans)][::-1]
    return np.concatenate([order, np.flatnonzero(mask)]).astype(np.int64)
