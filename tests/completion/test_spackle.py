"""SpaCKLE: neighbourhoods, masks, training beats the median filter, determinism, checkpoints."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from pydantic import ValidationError

from evaluator.completion import (
    CheckpointError,
    CompletionInputError,
    SpackleConfig,
    nearest_neighborhoods,
)
from evaluator.completion import spackle as spackle_module
from evaluator.completion.evaluation import evaluate_completion, random_hidden_mask, summarize
from evaluator.completion.neighborhoods import PAD
from evaluator.completion.spackle import SpotData, TrainedSpackle, train_or_load, train_spackle

FAST = SpackleConfig(max_steps=12, val_every_steps=4, device="cpu")


def _grid(n_rows: int, n_cols: int) -> tuple[np.ndarray, np.ndarray]:
    rr, cc = np.meshgrid(np.arange(n_rows), np.arange(n_cols), indexing="ij")
    on = (rr + cc) % 2 == 0
    return rr[on], cc[on]


def test_neighbourhoods_are_nearest_first_and_padded() -> None:
    rows, cols = _grid(9, 18)
    rows, cols = np.append(rows, 30), np.append(cols, 40)  # an isolated spot
    slides = np.zeros(rows.size, dtype=int)
    hood = nearest_neighborhoods(rows, cols, slides, n_neighbors=18)
    assert (hood[:, 0] == np.arange(rows.size)).all()
    centre = int(np.flatnonzero((rows == 4) & (cols == 8))[0])
    x, y = cols * 0.5, rows * np.sqrt(3) / 2
    d = np.hypot(x[hood[centre, 1:]] - x[centre], y[hood[centre, 1:]] - y[centre])
    np.testing.assert_allclose(d[:6], 1.0)  # the first ring, then the second
    assert (d[6:] > 1.5).all() and (np.diff(np.round(d, 6)) >= 0).all()
    assert len(set(hood[centre].tolist())) == 19
    corner = int(np.flatnonzero((rows == 0) & (cols == 0))[0])
    # (0, 2) and (1, 1), then (0, 4), (1, 3), (2, 0) and (2, 2)
    assert (hood[corner, 1:] != PAD).sum() == 6
    assert (hood[-1, 1:] == PAD).all()
    # A slide of its own sees none of the others, whatever the coordinates.
    two = nearest_neighborhoods(np.concatenate([rows, rows]), np.concatenate([cols, cols]),
                                np.repeat([0, 1], rows.size), n_neighbors=6)
    first = two[: rows.size]
    assert (first[first != PAD] < rows.size).all()


def test_training_hides_only_measured_values(tiny_data: SpotData, monkeypatch) -> None:
    seen: list[tuple[torch.Tensor, torch.Tensor]] = []
    original_gather = spackle_module._Tensors.gather
    original_forward = spackle_module.SpackleNet.forward
    last_measured: list[torch.Tensor] = []

    def gather(self, centres):
        tokens, measured, valid = original_gather(self, centres)
        last_measured.append(measured)
        return tokens, measured, valid

    def forward(self, tokens, hide, padding):
        if self.training:
            seen.append((hide.clone(), last_measured[-1].clone()))
        return original_forward(self, tokens, hide, padding)

    monkeypatch.setattr(spackle_module._Tensors, "gather", gather)
    monkeypatch.setattr(spackle_module.SpackleNet, "forward", forward)
    train_spackle(tiny_data, FAST)
    assert len(seen) == FAST.max_steps
    hidden_total = 0
    for hide, measured in seen:
        assert not (hide & ~measured).any()  # never a median-completed (missing) entry
        hidden_total += int(hide.sum())
        frac = hide.sum().item() / measured.sum().item()
        assert 0.2 < frac < 0.4  # rho = 0.3 of the measured values
    assert hidden_total > 0


def test_evaluation_masks_hide_only_measured_values(tiny_data: SpotData) -> None:
    rng = np.random.default_rng(0)
    spots = tiny_data.split == "val"
    hidden = random_hidden_mask(tiny_data.mask, spots, 0.3, rng)
    assert not (hidden & ~tiny_data.mask).any()
    assert not hidden[~spots].any()
    assert hidden.sum() == round(0.3 * (tiny_data.mask & spots[:, None]).sum())


def test_short_training_beats_the_median_filter(tiny_data: SpotData) -> None:
    trained = train_spackle(tiny_data, SpackleConfig(max_steps=60, val_every_steps=10,
                                                     device="cpu"))
    first_val = trained.history[0][1]
    assert trained.best_val_mse <= first_val
    val_spots = tiny_data.split == "val"
    scores = summarize(evaluate_completion(tiny_data, trained, n_assays=3, spots=val_spots))
    by_method = {s.method: s for s in scores}
    assert by_method["spackle"].mse_mean < by_method["median"].mse_mean
    assert by_method["spackle"].pcc_mean > by_method["median"].pcc_mean


def test_step_budget_scales_with_train_spots_within_bounds() -> None:
    cfg = SpackleConfig(min_steps=200, max_steps=600, epochs=20, batch_size=256)
    assert cfg.step_budget(1000) == 200  # 4 batches x 20 epochs = 80, raised to min_steps
    assert cfg.step_budget(5000) == 400  # 20 batches x 20 epochs
    assert cfg.step_budget(50_000) == 600  # 196 x 20, capped
    assert cfg.step_budget(0) == 200
    # max_steps wins over min_steps: SPARED_BENCH_SPACKLE_STEPS=20 trains exactly 20 steps.
    assert cfg.model_copy(update={"max_steps": 20}).step_budget(50_000) == 20
    assert SpackleConfig.paper().step_budget(10) == 10_000


def test_training_follows_the_budget_and_caps_validation_spots(tiny_data: SpotData,
                                                              monkeypatch) -> None:
    n_train = int((tiny_data.split == "train").sum())
    n_val = int((tiny_data.split == "val").sum())
    cfg = SpackleConfig(min_steps=3, max_steps=50, epochs=2, batch_size=16, val_every_steps=2,
                        max_val_spots=n_val - 3, device="cpu")
    expected = 2 * -(-n_train // 16)
    assert 3 < expected < 50 and cfg.step_budget(n_train) == expected
    validated: list[int] = []
    original = spackle_module._validation_mse

    def validation(net, tensors, centres, hide):
        validated.append(int(centres.shape[0]))
        assert set(centres.tolist()) <= set(np.flatnonzero(tiny_data.split == "val").tolist())
        return original(net, tensors, centres, hide)

    monkeypatch.setattr(spackle_module, "_validation_mse", validation)
    trained = train_spackle(tiny_data, cfg)
    assert trained.steps == expected and trained.history[-1][0] == expected
    assert validated and set(validated) == {n_val - 3}


def test_completion_keeps_measured_values(tiny_data: SpotData) -> None:
    trained = train_spackle(tiny_data, FAST)
    out = trained.complete(tiny_data)
    assert out.dtype == np.float32 and out.shape == tiny_data.expression.shape
    assert np.isfinite(out).all()
    np.testing.assert_array_equal(out[tiny_data.mask],
                                  tiny_data.expression[tiny_data.mask].astype(np.float32))
    # Missing entries are predictions, not the median pre-completion.
    pre = spackle_module.median_precomplete(tiny_data)
    assert not np.array_equal(out[~tiny_data.mask], pre[~tiny_data.mask])


def test_training_is_deterministic_on_cpu(tiny_data: SpotData) -> None:
    rng_before = torch.random.get_rng_state()
    a = train_spackle(tiny_data, FAST)
    b = train_spackle(tiny_data, FAST)
    c = train_spackle(tiny_data, FAST.model_copy(update={"seed": 1}))
    assert torch.equal(torch.random.get_rng_state(), rng_before)  # global RNG untouched
    for key, value in a.net.state_dict().items():
        assert torch.equal(value, b.net.state_dict()[key]), key
    assert a.history == b.history
    np.testing.assert_array_equal(a.complete(tiny_data), b.complete(tiny_data))
    assert not np.array_equal(a.complete(tiny_data), c.complete(tiny_data))


def test_checkpoint_round_trip_and_mismatches(tiny_data: SpotData, tmp_path) -> None:
    trained = train_spackle(tiny_data, FAST, data_hash="abc123")
    path = tmp_path / "model.pt"
    trained.save(path)
    loaded = TrainedSpackle.load(path, device="cpu")
    assert loaded.config == FAST
    assert loaded.data_hash == "abc123"
    assert loaded.genes == tiny_data.genes
    assert loaded.best_step == trained.best_step
    assert loaded.steps == trained.steps == FAST.max_steps
    np.testing.assert_array_equal(loaded.complete(tiny_data), trained.complete(tiny_data))

    other_genes = SpotData(tiny_data.expression, tiny_data.mask, tiny_data.array_row,
                           tiny_data.array_col, tiny_data.slide_ids, tiny_data.split,
                           [f"g{i}" for i in range(tiny_data.n_genes)])
    with pytest.raises(CheckpointError, match="expected gene"):
        loaded.complete(other_genes)
    fewer = SpotData(tiny_data.expression[:, :5], tiny_data.mask[:, :5], tiny_data.array_row,
                     tiny_data.array_col, tiny_data.slide_ids)
    with pytest.raises(CheckpointError, match=f"expected {tiny_data.n_genes} genes, found 5"):
        loaded.complete(fewer)
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="unreadable"):
        TrainedSpackle.load(tmp_path / "junk.pt")
    with pytest.raises(CheckpointError, match="found nothing"):
        TrainedSpackle.load(tmp_path / "absent.pt")
    torch.save({"format": "something-else"}, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="expected format"):
        TrainedSpackle.load(tmp_path / "other.pt")


def test_training_is_cached_by_data_and_config(tiny_data: SpotData, tmp_path,
                                               monkeypatch) -> None:
    first, hit, path = train_or_load(tiny_data, FAST, tmp_path, data_hash="r1")
    assert not hit and path.is_file()

    def no_training(*args, **kwargs):
        raise AssertionError("retrained although the cache holds this model")

    monkeypatch.setattr(spackle_module, "train_spackle", no_training)
    again, hit, same = train_or_load(tiny_data, FAST.model_copy(update={"device": "auto"}),
                                     tmp_path, data_hash="r1")
    assert hit and same == path
    np.testing.assert_array_equal(again.complete(tiny_data), first.complete(tiny_data))
    with pytest.raises(AssertionError, match="retrained"):
        train_or_load(tiny_data, FAST.model_copy(update={"seed": 5}), tmp_path, data_hash="r1")
    with pytest.raises(AssertionError, match="retrained"):
        train_or_load(tiny_data, FAST, tmp_path, data_hash="r2")


def test_config_and_input_validation(tiny_data: SpotData) -> None:
    with pytest.raises(ValidationError, match="multiple of n_heads"):
        SpackleConfig(width=130, n_heads=4)
    with pytest.raises(ValidationError):
        SpackleConfig(rho=1.5)
    with pytest.raises(ValidationError):
        SpackleConfig(unknown_field=1)
    with pytest.raises(CompletionInputError, match="mask: expected a boolean array"):
        SpotData(tiny_data.expression, tiny_data.mask.astype(int), tiny_data.array_row,
                 tiny_data.array_col, tiny_data.slide_ids)
    with pytest.raises(CompletionInputError, match="array_row: expected shape"):
        SpotData(tiny_data.expression, tiny_data.mask, tiny_data.array_row[:4],
                 tiny_data.array_col, tiny_data.slide_ids)
    only_test = SpotData(tiny_data.expression, tiny_data.mask, tiny_data.array_row,
                         tiny_data.array_col, tiny_data.slide_ids,
                         np.full(tiny_data.n_spots, "test"))
    with pytest.raises(CompletionInputError, match="expected some 'train' spots"):
        train_spackle(only_test, FAST)
