"""Shared helpers of the baselines: masked training means and per-slide-centred patch features.

Slides differ in stain colour and tissue composition, and ComBat has centred each batch's
expression, so what carries over from one slide to another is how a spot differs from the
rest of its slide: features are centred per slide (test slides by their own mean, which needs
only their images) and scaled by the training spread.
"""

from __future__ import annotations

import numpy as np
import spared_sdk as sdk

__all__ = ["masked_mean", "patch_features", "slide_centred", "standardized"]


def masked_mean(values: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Per-gene mean over weighted entries (genes with no entry get 0), float32."""
    total = (values * weights).sum(axis=0, dtype=np.float64)
    count = weights.sum(axis=0, dtype=np.float64)
    return np.where(count > 0, total / np.maximum(count, 1), 0.0).astype(np.float32)


FEATURE_BUDGET_BYTES = 32 * 1024 * 1024
"""float64 pixels converted at once while computing features (about 27 patches at 224 px)."""


def patch_features(spots: sdk.Spots) -> np.ndarray:
    """Colour and texture features of the spots' (H, W, 3) uint8 patches: (spots, 13) float64.

    Per channel mean and standard deviation, chromaticity (channel share of brightness),
    white-space and dark (nuclei-like) fractions, mean gradient magnitude (texture). Computed
    in batches of rows (``FEATURE_BUDGET_BYTES``) read by the SDK, so a 6.6 GB dataset is read
    once and never held: every feature is per spot, so batching does not change a value.
    """
    step = max(1, FEATURE_BUDGET_BYTES // max(1, 8 * int(np.prod(spots.patches.shape[1:]))))
    return np.concatenate([_features(batch) for _, batch in sdk.iter_patches(spots, step)]
                          or [np.empty((0, 13))])


def _features(patches: np.ndarray) -> np.ndarray:
    rgb = patches.astype(np.float64) / 255.0
    n = rgb.shape[0]
    flat = rgb.reshape(n, -1, 3)
    mean = flat.mean(axis=1)
    std = flat.std(axis=1)
    brightness = flat.sum(axis=2)
    chroma = (flat / np.maximum(brightness[..., None], 1e-6)).mean(axis=1)
    white = (flat.min(axis=2) > 0.85).mean(axis=1, keepdims=True)
    dark = (brightness / 3 < 0.35).mean(axis=1, keepdims=True)
    gray = rgb.mean(axis=3)
    gx = np.abs(np.diff(gray, axis=2)).mean(axis=(1, 2))
    gy = np.abs(np.diff(gray, axis=1)).mean(axis=(1, 2))
    texture = np.stack([gx, gy], axis=1)
    return np.concatenate([mean, std, chroma, white, dark, texture], axis=1)


def slide_centred(features: np.ndarray, slides: np.ndarray) -> np.ndarray:
    """Subtract each slide's mean feature vector from its spots' features."""
    out = np.empty_like(features)
    for slide in np.unique(slides):
        rows = slides == slide
        out[rows] = features[rows] - features[rows].mean(axis=0)
    return out


def standardized(train: np.ndarray, test: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Scale both by the training standard deviation (constant features left as they are)."""
    scale = train.std(axis=0)
    scale = np.where(scale > 1e-12, scale, 1.0)
    return train / scale, test / scale
