"""The adaptive median filter: exact agreement with the loop reference, borders, edge cases."""

from __future__ import annotations

import numpy as np
import pytest

from evaluator.completion import CompletionInputError, adaptive_median_filter
from tests.completion.reference import loop_adaptive_median_filter

# A full hexagon: the centre (2, 4) and its six neighbours.
HEX_ROWS = np.array([2, 2, 2, 1, 1, 3, 3])
HEX_COLS = np.array([4, 2, 6, 3, 5, 3, 5])


def _random_slides(seed: int, n_genes: int = 9) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(seed)
    rr, cc = np.meshgrid(np.arange(10), np.arange(20), indexing="ij")
    on_grid = (rr + cc) % 2 == 0
    rows = np.concatenate([rr[on_grid], rr[on_grid], [40]])
    cols = np.concatenate([cc[on_grid], cc[on_grid], [60]])
    slides = np.concatenate([np.repeat(["s1", "s2"], on_grid.sum()), ["s3"]])
    keep = rng.random(rows.size) < 0.75
    keep[-1] = True  # s3: one isolated spot, alone on its slide
    rows, cols, slides = rows[keep], cols[keep], slides[keep]
    n = rows.size
    dropout = rng.random((n, n_genes)) < rng.uniform(0.05, 0.95, n_genes)
    # Rounded values make ties, so even-sized windows and duplicated middles are exercised.
    expr = np.round(rng.gamma(2.0, 1.0, (n, n_genes)), 1) * dropout
    expr[:, 0] = 0.0  # an all-zero gene
    mask = expr != 0
    return expr, mask, rows, cols, slides


@pytest.mark.parametrize("seed", range(6))
def test_random_slides_equal_loop_reference(seed: int) -> None:
    expr, mask, rows, cols, slides = _random_slides(seed)
    got = adaptive_median_filter(expr, mask, rows, cols, slides)
    want = loop_adaptive_median_filter(expr, mask, rows, cols, slides)
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(got[mask], expr[mask].astype(np.float32))
    assert (got[:, 0] == 0).all()  # nothing to borrow from an all-zero gene


@pytest.mark.parametrize("n_hops", [1, 2, 3])
def test_other_hop_counts_equal_loop_reference(n_hops: int) -> None:
    expr, mask, rows, cols, slides = _random_slides(10)
    got = adaptive_median_filter(expr, mask, rows, cols, slides, n_hops=n_hops)
    want = loop_adaptive_median_filter(expr, mask, rows, cols, slides, n_hops=n_hops)
    np.testing.assert_array_equal(got, want)


def test_hand_made_hexagon() -> None:
    # gene 0: centre missing, ring [1, 2, 3, 0, 0, 5] -> window [0,0,0,1,2,3,5], median 1.
    # gene 1: ring [0, 0, 0, 0, 1, 2] -> window median 0 at every hop (no more spots) ->
    #         median of the slide's non-zero values (1, 2) = 1.5; ring zeros get the same.
    # gene 2: ring [4, 4, 4, 4, 0, 0] -> median 4 for the centre; the zero border spot (3, 3)
    #         sees itself, the centre, (2, 2) and (3, 5) at hop 1 -> [0, 0, 4, 0] -> 0; hop 2
    #         reaches the whole hexagon -> [0, 4, 4, 4, 4, 0, 0] -> median 4.
    expr = np.array(
        [
            [0, 0, 0],
            [1, 0, 4],
            [2, 0, 4],
            [3, 0, 4],
            [0, 0, 4],
            [0, 1, 0],
            [5, 2, 0],
        ],
        dtype=np.float64,
    )
    mask = expr != 0
    slides = np.zeros(7, dtype=int)
    got = adaptive_median_filter(expr, mask, HEX_ROWS, HEX_COLS, slides)
    assert got[0, 0] == 1.0
    assert got[0, 1] == 1.5
    assert got[0, 2] == 4.0
    assert got[4, 1] == 1.5
    assert got[5, 2] == 4.0  # (3, 3): [0 self, 0 centre, 4 (2,2), 0 (3,5)] -> 0; hop 2 -> 4
    np.testing.assert_array_equal(got, loop_adaptive_median_filter(expr, mask, HEX_ROWS,
                                                                   HEX_COLS, slides))


@pytest.mark.parametrize("seed", range(4))
def test_negative_values_equal_loop_reference(seed: int) -> None:
    # ComBat-corrected layers have negative values; symmetric pairs (-1, 1) make even windows
    # whose median is exactly 0 although neither middle value is.
    expr, mask, rows, cols, slides = _random_slides(seed + 20)
    rng = np.random.default_rng(seed)
    signs = rng.choice([-1.0, 1.0], size=expr.shape)
    expr = np.where(rng.random(expr.shape) < 0.5, np.round(signs * (expr > 0), 0), expr * signs)
    got = adaptive_median_filter(expr, mask, rows, cols, slides)
    want = loop_adaptive_median_filter(expr, mask, rows, cols, slides)
    np.testing.assert_array_equal(got, want)


def test_values_under_missing_entries_are_ignored() -> None:
    expr, mask, rows, cols, slides = _random_slides(3)
    noisy = expr.copy()
    noisy[~mask] = 7.5  # e.g. ComBat leaves non-zero values at missing entries
    np.testing.assert_array_equal(
        adaptive_median_filter(noisy, mask, rows, cols, slides),
        adaptive_median_filter(expr, mask, rows, cols, slides),
    )


def test_slides_are_kept_apart() -> None:
    # Two copies of the hexagon on the same grid positions, in different slides.
    rows = np.concatenate([HEX_ROWS, HEX_ROWS])
    cols = np.concatenate([HEX_COLS, HEX_COLS])
    slides = np.repeat(["a", "b"], 7)
    expr = np.zeros((14, 1))
    expr[1:7, 0] = 2.0  # slide a: ring all 2
    expr[8:14, 0] = 9.0  # slide b: ring all 9
    mask = expr != 0
    got = adaptive_median_filter(expr, mask, rows, cols, slides)
    assert got[0, 0] == 2.0
    assert got[7, 0] == 9.0


def test_isolated_spot_takes_slide_median() -> None:
    rows = np.array([0, 0, 0, 20])
    cols = np.array([0, 2, 4, 40])
    expr = np.array([[1.0], [3.0], [10.0], [0.0]])
    got = adaptive_median_filter(expr, expr != 0, rows, cols, np.zeros(4))
    assert got[3, 0] == 3.0


def test_nothing_missing_and_empty_inputs() -> None:
    expr = np.arange(1, 8, dtype=np.float64)[:, None]
    got = adaptive_median_filter(expr, expr != 0, HEX_ROWS, HEX_COLS, np.zeros(7))
    np.testing.assert_array_equal(got, expr.astype(np.float32))
    empty = adaptive_median_filter(
        np.zeros((0, 3)), np.zeros((0, 3), bool), np.zeros(0), np.zeros(0), np.zeros(0)
    )
    assert empty.shape == (0, 3)


def test_input_is_not_modified() -> None:
    expr, mask, rows, cols, slides = _random_slides(4)
    before = expr.copy()
    adaptive_median_filter(expr, mask, rows, cols, slides)
    np.testing.assert_array_equal(expr, before)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda a: {**a, "mask": a["mask"].astype(int)}, "mask: expected a boolean array"),
        (lambda a: {**a, "mask": a["mask"][:, :2]}, "mask: expected shape"),
        (lambda a: {**a, "expression": a["expression"][:, 0]}, "expected a 2-D array"),
        (lambda a: {**a, "array_row": a["array_row"][:3]}, "array_row: expected shape"),
        (lambda a: {**a, "array_col": a["array_col"] + 0.5}, "integer Visium grid"),
        (lambda a: {**a, "slide_ids": a["slide_ids"][:2]}, "slide_ids: expected shape"),
        (lambda a: {**a, "n_hops": 0}, "n_hops: expected an integer >= 1"),
        (lambda a: {**a, "array_row": np.zeros(7), "array_col": np.zeros(7)},
         "one spot per grid position"),
    ],
)
def test_bad_inputs_give_clear_errors(change, message: str) -> None:
    expr = np.arange(21, dtype=np.float64).reshape(7, 3)
    args = {"expression": expr, "mask": expr != 0, "array_row": HEX_ROWS,
            "array_col": HEX_COLS, "slide_ids": np.zeros(7)}
    with pytest.raises(CompletionInputError, match=message):
        adaptive_median_filter(**change(args))


def test_non_finite_measured_value_is_refused() -> None:
    expr = np.ones((7, 2))
    expr[3, 1] = np.nan
    with pytest.raises(CompletionInputError, match="finite"):
        adaptive_median_filter(expr, np.ones((7, 2), bool), HEX_ROWS, HEX_COLS, np.zeros(7))
