"""Baseline `cnn-delta`: a small CNN predicting each spot's deviation from the training mean.

The paper's ViT-B+Δ idea at laptop scale: the network outputs Δ, the prediction is
training mean + Δ, and the output layer starts at zero, so an untrained network is the `mean`
baseline and training only moves away from it where the images help. Patches are normalized per
slide (slide colour mean removed, training spread divided out) and flipped/rotated at random.
Training stops at MAX_EPOCHS or when TIME_FRACTION of the task's time limit is spent, and keeps
the epoch (0 included) with the lowest error on a held-out training slide (or 15% of the spots
when there is one slide). Trained inside the time limit, on the task's device.

Real-size patches are never all in memory: a torch ``DataLoader`` reads each batch from the
memory-mapped patches (``PatchSet``), normalizes it and, for patches larger than 2 x
``POOL_TARGET`` px, average-pools it (224 px -> 56 px: the network is small, the time limit
is not long, and colour and nuclei density survive the pooling).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

_ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(_ROOT / "sdk"), str(_ROOT / "baselines" / "common")]

import numpy as np  # noqa: E402
import spared_sdk as sdk  # noqa: E402
import torch  # noqa: E402
from baseline_common import (  # noqa: E402
    masked_mean,
    patch_features,
    slide_centred,
    standardized,
)
from torch import nn  # noqa: E402

STARTED = time.monotonic()
MAX_EPOCHS = 40
TIME_FRACTION = 0.5
BATCH = 64
LEARNING_RATE = 2e-3
WEIGHT_DECAY = 1e-4
POOL_TARGET = 56
HELD_MAX = 4096  # held-out spots scored after each epoch (a seeded sample beyond this)
EVAL_BUDGET_BYTES = 32 * 1024 * 1024  # float32 pixels of one scoring batch (55 spots at 224 px)


def eval_batch(spots: sdk.Spots) -> int:
    """Spots per scoring batch: at most 256, and within ``EVAL_BUDGET_BYTES`` of float32."""
    return max(1, min(256, EVAL_BUDGET_BYTES // (4 * int(np.prod(spots.patches.shape[1:])))))


class DeltaNet(nn.Module):
    """Conv features of the patch plus its colour statistics -> Δ per gene."""

    def __init__(self, n_stats: int, n_genes: int) -> None:
        super().__init__()
        self.conv = nn.Sequential(
            nn.Conv2d(3, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
            nn.Conv2d(16, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        )
        self.hidden = nn.Sequential(nn.Linear(32 + n_stats, 64), nn.ReLU())
        self.head = nn.Linear(64, n_genes)
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    def forward(self, patches: torch.Tensor, stats: torch.Tensor) -> torch.Tensor:
        return self.head(self.hidden(torch.cat([self.conv(patches), stats], dim=1)))


def colour_statistics(spots: sdk.Spots) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Per-slide mean colour and the overall per-channel spread of [0, 1] pixels (one pass)."""
    sums: dict[str, np.ndarray] = {}
    counts: dict[str, int] = {}
    total, total_sq, n = np.zeros(3), np.zeros(3), 0
    for rows, batch in sdk.iter_patches(spots, max(1, eval_batch(spots) // 2)):
        rgb = batch.astype(np.float64).reshape(len(batch), -1, 3) / 255.0
        per_spot = rgb.sum(axis=1)
        for slide in np.unique(spots.slide_ids[rows]):
            mine = spots.slide_ids[rows] == slide
            sums[slide] = sums.get(slide, np.zeros(3)) + per_spot[mine].sum(axis=0)
            counts[slide] = counts.get(slide, 0) + int(mine.sum()) * rgb.shape[1]
        total += per_spot.sum(axis=0)
        total_sq += (rgb**2).sum(axis=(0, 1))
        n += rgb.shape[0] * rgb.shape[1]
    means = {slide: (sums[slide] / counts[slide]).astype(np.float32) for slide in sums}
    spread = np.sqrt(np.maximum(total_sq / n - (total / n) ** 2, 0)).astype(np.float32)
    return means, spread


class PatchSet(torch.utils.data.Dataset):
    """Spots of one input file as normalized (3, h, w) float32 tensors, read batch by batch.

    Each slide's mean colour is removed and the training spread divided out; patches larger
    than 2 x ``POOL_TARGET`` px are average-pooled by an integer factor.
    """

    def __init__(self, spots: sdk.Spots, slide_mean: dict[str, np.ndarray], scale: np.ndarray,
                 stats: np.ndarray, targets: np.ndarray | None = None,
                 weights: np.ndarray | None = None) -> None:
        self.spots, self.scale, self.stats = spots, scale, stats.astype(np.float32)
        self.offsets = np.stack([slide_mean[s] for s in spots.slide_ids]).astype(np.float32)
        self.targets, self.weights = targets, weights
        self.pool = max(1, spots.patches.shape[1] // POOL_TARGET)

    def __len__(self) -> int:
        return self.spots.n_spots

    def __getitems__(self, rows: list[int]) -> tuple[torch.Tensor, ...]:
        index = np.asarray(rows)
        _, batch = next(sdk.iter_patches(self.spots, len(index), index))
        x = batch.astype(np.float32) / 255.0
        x -= self.offsets[index][:, None, None, :]
        x = (x / self.scale).transpose(0, 3, 1, 2)
        if self.pool > 1:
            b, c, h, w = x.shape
            p = self.pool
            x = x[:, :, : h - h % p, : w - w % p].reshape(b, c, h // p, p, w // p, p).mean((3, 5))
        out = [torch.from_numpy(np.ascontiguousarray(x)), torch.from_numpy(self.stats[index])]
        if self.targets is not None and self.weights is not None:
            out += [torch.from_numpy(self.targets[index]), torch.from_numpy(self.weights[index])]
        return tuple(out)


def loader(data: PatchSet, batches: list[np.ndarray]) -> torch.utils.data.DataLoader:
    """A DataLoader over given batches of rows (each batch fetched at once, in that order)."""
    # Its own generator: a loader draws a seed when it starts, which must not move the global
    # stream that orders batches and draws augmentations.
    return torch.utils.data.DataLoader(data, batch_sampler=[b.tolist() for b in batches],
                                       collate_fn=lambda batch: batch, num_workers=0,
                                       generator=torch.Generator())


def holdout_rows(slides: np.ndarray, seed: int) -> np.ndarray:
    """Boolean rows held out for model selection: the last slide, else 15% of the spots."""
    names = np.unique(slides)
    if len(names) > 1:
        return slides == names[-1]
    rng = np.random.default_rng(seed)
    return rng.random(len(slides)) < 0.15


def augment(batch: torch.Tensor) -> torch.Tensor:
    """Random flips and 90° rotations: tissue has no orientation."""
    if torch.rand(()) < 0.5:
        batch = batch.flip(3)
    return torch.rot90(batch, int(torch.randint(0, 4, ())), dims=(2, 3))


def weighted_mse(pred: torch.Tensor, target: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    return ((pred - target) ** 2 * weight).sum() / weight.sum().clamp_min(1.0)


def main() -> None:
    task = sdk.read_task()
    torch.manual_seed(task.seed)
    np.random.seed(task.seed)
    device = torch.device(sdk.device(task))
    train, test = sdk.load_train(), sdk.load_test()
    weights = sdk.training_weights(train, task.track)
    mean = masked_mean(train.X, weights)
    delta = np.where(weights > 0, train.X - mean, 0).astype(np.float32)

    slide_mean, spread = colour_statistics(train)
    test_slide_mean = colour_statistics(test)[0]  # test spots centred by their own slide colour
    scale = spread + np.float32(1e-3)
    s_train, s_test = standardized(
        slide_centred(patch_features(train), train.slide_ids),
        slide_centred(patch_features(test), test.slide_ids))

    held = holdout_rows(train.slide_ids, task.seed)
    fit = ~held
    train_set = PatchSet(train, slide_mean, scale, s_train, delta, weights)
    test_set = PatchSet(test, test_slide_mean, scale, s_test)
    model = DeltaNet(s_train.shape[1], len(task.genes)).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=LEARNING_RATE, weight_decay=WEIGHT_DECAY)
    fit_idx = torch.as_tensor(np.flatnonzero(fit))
    held_rows = np.flatnonzero(held)
    if len(held_rows) > HELD_MAX:
        held_rows = np.sort(np.random.default_rng(task.seed).choice(held_rows, HELD_MAX, False))
    step = eval_batch(train)
    held_batches = [held_rows[i:i + step] for i in range(0, len(held_rows), step)]

    def held_error() -> float:
        model.eval()
        total, weight = 0.0, 0.0
        with torch.no_grad():
            for x, st, y, w in loader(train_set, held_batches):
                pred = model(x.to(device), st.to(device))
                total += float(((pred - y.to(device)) ** 2 * w.to(device)).sum())
                weight += float(w.sum())
        return total / max(weight, 1.0)

    best_error, best_epoch = held_error(), 0
    best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    budget_s = TIME_FRACTION * task.time_limit_s
    epochs_run = 0
    for epoch in range(1, MAX_EPOCHS + 1):
        if time.monotonic() - STARTED > budget_s:
            break
        model.train()
        order = fit_idx[torch.randperm(len(fit_idx))].numpy()
        batches = [order[i:i + BATCH] for i in range(0, len(order), BATCH)]
        for x, st, y, w in loader(train_set, [b for b in batches if len(b) >= 2]):
            loss = weighted_mse(model(augment(x.to(device)), st.to(device)), y.to(device),
                                w.to(device))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            if time.monotonic() - STARTED > budget_s:
                break  # a partial epoch still counts: it is scored like a whole one
        epochs_run = epoch
        error = held_error()
        if error < best_error:
            best_error, best_epoch = error, epoch
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}

    model.load_state_dict(best_state)
    model.eval()
    test_delta = np.empty((test.n_spots, len(task.genes)), dtype=np.float32)
    step = eval_batch(test)
    test_batches = [np.arange(i, min(i + step, test.n_spots)) for i in range(0, test.n_spots, step)]
    with torch.no_grad():
        for rows, (x, st) in zip(test_batches, loader(test_set, test_batches), strict=True):
            test_delta[rows] = model(x.to(device), st.to(device)).cpu().numpy()
    sdk.write_predictions(mean + test_delta, task)
    sdk.write_model_card(
        "cnn-delta",
        {"epochs_run": epochs_run, "best_epoch": best_epoch, "max_epochs": MAX_EPOCHS,
         "batch": BATCH, "lr": LEARNING_RATE, "device": str(device),
         "pool": train_set.pool,
         "trainable_parameters": sum(p.numel() for p in model.parameters() if p.requires_grad)},
        "Small CNN predicting the deviation from the training mean (ViT-B+Δ idea), "
        "epoch chosen on a held-out training slide.")
    print(f"cnn-delta: {task.dataset}/{task.track}: {epochs_run} epochs in "
          f"{time.monotonic() - STARTED:.1f} s, best epoch {best_epoch} "
          f"(held-out MSE {best_error:.4f})")


if __name__ == "__main__":
    main()
