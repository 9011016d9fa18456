"""Baseline `cnn-delta`: a small CNN predicting each spot's deviation from the training mean.

The paper's ViT-B+Δ idea at laptop scale: the network outputs Δ, the prediction is
training mean + Δ, and the output layer starts at zero, so an untrained network is the `mean`
baseline and training only moves away from it where the images help. Patches are normalized per
slide (slide colour mean removed, training spread divided out) and flipped/rotated at random.
Training stops at MAX_EPOCHS or when TIME_FRACTION of the task's time limit is spent, and keeps
the epoch (0 included) with the lowest error on a held-out training slide (or 15% of the spots
when there is one slide). Trained inside the time limit, on the task's device.
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


def slide_normalized(patches: np.ndarray, slides: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """(N, 3, H, W) float32: each slide's mean colour removed, divided by the training spread."""
    out = patches.astype(np.float32) / 255.0
    for slide in np.unique(slides):
        rows = slides == slide
        out[rows] -= out[rows].mean(axis=(0, 1, 2))
    return np.ascontiguousarray((out / scale).transpose(0, 3, 1, 2))


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
    device = torch.device("cuda" if task.device == "cuda" and torch.cuda.is_available() else "cpu")
    train, test = sdk.load_train(), sdk.load_test()
    weights = sdk.training_weights(train, task.track)
    mean = masked_mean(train.X, weights)
    delta = np.where(weights > 0, train.X - mean, 0).astype(np.float32)

    scale = (train.patches.astype(np.float32) / 255.0).std(axis=(0, 1, 2)) + 1e-3
    x_train = slide_normalized(train.patches, train.slide_ids, scale)
    x_test = slide_normalized(test.patches, test.slide_ids, scale)
    s_train, s_test = standardized(
        slide_centred(patch_features(train.patches), train.slide_ids),
        slide_centred(patch_features(test.patches), test.slide_ids))

    held = holdout_rows(train.slide_ids, task.seed)
    fit = ~held

    def tensor(a: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(np.ascontiguousarray(a, dtype=np.float32), device=device)

    xs, ss, ys, ws = (tensor(a) for a in (x_train, s_train, delta, weights))
    model = DeltaNet(s_train.shape[1], len(task.genes)).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=LEARNING_RATE, weight_decay=WEIGHT_DECAY)
    fit_idx = torch.as_tensor(np.flatnonzero(fit), device=device)
    held_idx = torch.as_tensor(np.flatnonzero(held), device=device)

    def held_error() -> float:
        model.eval()
        with torch.no_grad():
            pred = model(xs[held_idx], ss[held_idx])
            return float(weighted_mse(pred, ys[held_idx], ws[held_idx]))

    best_error, best_epoch = held_error(), 0
    best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    budget_s = TIME_FRACTION * task.time_limit_s
    epochs_run = 0
    for epoch in range(1, MAX_EPOCHS + 1):
        if time.monotonic() - STARTED > budget_s:
            break
        model.train()
        order = fit_idx[torch.randperm(len(fit_idx), device=device)]
        for start in range(0, len(order), BATCH):
            rows = order[start:start + BATCH]
            if len(rows) < 2:
                continue
            loss = weighted_mse(model(augment(xs[rows]), ss[rows]), ys[rows], ws[rows])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        epochs_run = epoch
        error = held_error()
        if error < best_error:
            best_error, best_epoch = error, epoch
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}

    model.load_state_dict(best_state)
    model.eval()
    with torch.no_grad():
        test_delta = model(tensor(x_test), tensor(s_test)).cpu().numpy()
    sdk.write_predictions(mean + test_delta, task)
    sdk.write_model_card(
        "cnn-delta",
        {"epochs_run": epochs_run, "best_epoch": best_epoch, "max_epochs": MAX_EPOCHS,
         "batch": BATCH, "lr": LEARNING_RATE, "device": str(device),
         "trainable_parameters": sum(p.numel() for p in model.parameters() if p.requires_grad)},
        "Small CNN predicting the deviation from the training mean (ViT-B+Δ idea), "
        "epoch chosen on a held-out training slide.")
    print(f"cnn-delta: {task.dataset}/{task.track}: {epochs_run} epochs in "
          f"{time.monotonic() - STARTED:.1f} s, best epoch {best_epoch} "
          f"(held-out MSE {best_error:.4f})")


if __name__ == "__main__":
    main()
