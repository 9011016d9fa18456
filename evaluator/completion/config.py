"""SpaCKLE's hyper-parameters: a light module (pydantic only), read without importing torch.

A release build reads the configuration for its fingerprint even when the completed layer
comes from the cache, so the configuration must not pull in the model's libraries.
"""

from __future__ import annotations

import math
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = ["SpackleConfig"]


class SpackleConfig(BaseModel):
    """Hyper-parameters of a SpaCKLE model and its training.

    The defaults train in 30 to 60 s per dataset on one CPU core (200 to 400 steps);
    ``paper()`` gives the paper's scale for a GPU. Width 128, rho 0.3, Adam and batch 256 are
    the paper's.

    Chosen by measurement on full-sized synthetic datasets (SpaCKLE's completion MSE over the
    median filter's, 30% hidden, 10 assays; 1.8k to 19k spots, 32 and 128 genes):

    - ``loss_on="hidden"``: the loss over every real entry (paper eq. 5) spends a short budget
      on copying unhidden values; its validation MSE stops improving after 30 to 80 steps
      (ratios 0.35 to 0.50 at any budget), while the loss on hidden entries keeps improving
      (0.26 to 0.43 at 100 steps, 0.26 to 0.41 at 400).
    - Step budget ``clamp(ceil(epochs * ceil(n_train / batch_size)), min_steps, max_steps)``;
      ``max_steps`` wins over ``min_steps`` (``max_steps=20`` trains exactly 20 steps). Small
      datasets stop improving at about 200 steps; larger ones gain up to about 400 and not
      beyond (19k spots: 0.365 at 200, 0.352 at 400, 0.357 at 600, 0.359 at 800 steps). The
      cap bounds a release build's CPU time (about 0.2 s a step on one core).
    - 6 neighbours: 18 (the paper's) cost 3 to 4 times the CPU time for no gain here (0.266
      vs 0.262 and 0.412 vs 0.414 at 400 steps).
    - Validation scores a seeded subset of at most ``max_val_spots`` validation spots, so its
      cost does not grow with the dataset.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    n_neighbors: int = Field(6, ge=0, le=18, description="nearest 2-hop neighbours per spot")
    width: int = Field(128, ge=8, description="transformer width (paper: 128)")
    n_layers: int = Field(2, ge=1)
    n_heads: int = Field(4, ge=1)
    feedforward: int = Field(256, ge=8, description="hidden size of each feed-forward block")
    dropout: float = Field(0.1, ge=0.0, lt=1.0)
    rho: float = Field(0.3, gt=0.0, lt=1.0, description="fraction of measured values hidden")
    lr: float = Field(1e-3, gt=0.0)
    max_steps: int = Field(400, ge=1, description="most optimizer steps (paper: 10,000)")
    min_steps: int = Field(200, ge=1, description="fewest optimizer steps unless max_steps is "
                                                  "lower")
    epochs: float = Field(30.0, gt=0.0, description="passes over the train spots, within "
                                                    "[min_steps, max_steps]")
    batch_size: int = Field(256, ge=1)
    val_every_steps: int = Field(10, ge=1)
    max_val_spots: int = Field(2048, ge=1, description="validation spots scored (seeded subset)")
    n_hops: int = Field(4, ge=1, description="max window of the median pre-completion")
    loss_on: Literal["all", "hidden"] = "hidden"
    seed: int = 0
    device: Literal["auto", "cpu", "cuda"] = "auto"

    @model_validator(mode="after")
    def _heads_divide_width(self) -> SpackleConfig:
        if self.width % self.n_heads:
            raise ValueError(
                f"width: expected a multiple of n_heads={self.n_heads}, found {self.width}"
            )
        return self

    @classmethod
    def paper(cls, **overrides: Any) -> SpackleConfig:
        """Return the paper-scale setting (18 neighbours, 10,000 steps): for a GPU."""
        values: dict[str, Any] = {"n_neighbors": 18, "max_steps": 10_000, "min_steps": 10_000,
                                  "val_every_steps": 200, "feedforward": 512}
        return cls(**{**values, **overrides})

    def step_budget(self, n_train: int) -> int:
        """Return the optimizer steps for ``n_train`` train spots (see the class docstring)."""
        per_epoch = math.ceil(max(n_train, 1) / self.batch_size)
        wanted = math.ceil(self.epochs * per_epoch)
        return min(self.max_steps, max(self.min_steps, wanted))

    def cache_key_fields(self) -> dict[str, Any]:
        """Return the fields that change a trained model (``device`` is left out)."""
        return self.model_dump(exclude={"device"})
