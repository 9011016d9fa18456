"""SpaCKLE: transformer completion of missing gene expression from a spot's neighbourhood.

Reference: SpaRED / SpaCKLE paper, section 4 and 4.1. For each spot ``s`` the input is
``E_x = [x; V_x]``: the median-completed expression of ``s`` and of its ``n`` nearest 2-hop
neighbours on the Visium hexagonal grid (``n_neighbors + 1`` tokens of ``g`` genes).

- ``M_s`` is True where a value was really measured (False = originally missing, median
  pre-completed); ``M_rand(rho)`` picks a random fraction ``rho`` of entries. Training hides
  ``M_mask = M_s & M_rand`` (``E_m = E_x * (1 - M_mask)``), so only measured values are ever
  hidden, and validation scores only hidden entries of the first token.
- ``E_hat = L_out(T(L_in(E_m)))``: linear adapters from ``g`` genes to a transformer encoder of
  width 128 and back. Loss: MSE between ``E_x`` and ``E_hat`` on the hidden entries (default
  ``loss_on="hidden"``; ``"all"`` is paper eq. 5, every entry of every real token). Adam
  (PyTorch defaults except the learning rate), batch 256, the best model by validation MSE is
  kept.
- Inference hides only originally missing entries (``M_mask = 1 - M_s``) and replaces the
  missing entries of the first token with the model's output; measured values are unchanged.

Differences from the SpaRED code, on purpose: neighbourhoods are the exact hexagonal 2-hop
rings (not squidpy's k nearest), short by padding tokens that attention ignores at borders;
``rho`` is one probability for all genes; the loss is on hidden entries and training is a few
hundred steps on 6 neighbours by default, for CPUs (``SpackleConfig`` says why).

Attention runs over the spot's neighbourhood, as the paper describes. SpaRED's own code
(``spared/spackle/model.py``, spared==2.2.1) builds ``nn.TransformerEncoderLayer`` without
``batch_first`` and feeds it ``(batch, spots, genes)``, so there attention runs across the
batch (each position is another spot's neighbourhood) and the neighbourhood's spots are
PyTorch's batch; this module keeps the paper's design instead.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from evaluator.completion.config import SpackleConfig
from evaluator.completion.errors import CheckpointError, CompletionInputError
from evaluator.completion.median import adaptive_median_filter
from evaluator.completion.neighborhoods import PAD, nearest_neighborhoods
from evaluator.core.fsio import atomic_path

CHECKPOINT_FORMAT = "spackle-checkpoint-v1"
_INFERENCE_BATCH = 1024


@dataclass
class SpotData:
    """Expression of spots on Visium slides, the input of every completion method.

    ``expression`` (n_spots, n_genes) float; ``mask`` bool, True = measured; ``split`` holds
    ``train``/``val``/``test`` per spot or is None (then every spot trains and a seeded 15%
    of spots validates).
    """

    expression: np.ndarray
    mask: np.ndarray
    array_row: np.ndarray
    array_col: np.ndarray
    slide_ids: np.ndarray
    split: np.ndarray | None = None
    genes: list[str] | None = None

    def __post_init__(self) -> None:
        self.expression = np.asarray(self.expression)
        self.mask = np.asarray(self.mask)
        if self.expression.ndim != 2:
            raise CompletionInputError(
                f"expression: expected a 2-D array (n_spots, n_genes), found shape "
                f"{self.expression.shape}"
            )
        if self.mask.shape != self.expression.shape or self.mask.dtype != np.bool_:
            raise CompletionInputError(
                f"mask: expected a boolean array of shape {self.expression.shape}, found "
                f"{self.mask.dtype} of shape {self.mask.shape}"
            )
        n = self.expression.shape[0]
        for name in ("array_row", "array_col", "slide_ids", "split"):
            value = getattr(self, name)
            if value is None:
                continue
            arr = np.asarray(value)
            if arr.shape != (n,):
                raise CompletionInputError(
                    f"{name}: expected shape ({n},) (one per spot), found {arr.shape}"
                )
            setattr(self, name, arr)
        if self.genes is not None and len(self.genes) != self.expression.shape[1]:
            raise CompletionInputError(
                f"genes: expected {self.expression.shape[1]} names, found {len(self.genes)}"
            )

    @property
    def n_spots(self) -> int:
        """Number of spots."""
        return int(self.expression.shape[0])

    @property
    def n_genes(self) -> int:
        """Number of genes."""
        return int(self.expression.shape[1])

    def with_mask(self, mask: np.ndarray) -> SpotData:
        """Return a copy sharing everything but the mask (e.g. with extra entries hidden)."""
        return SpotData(self.expression, mask, self.array_row, self.array_col, self.slide_ids,
                        self.split, self.genes)

    def content_hash(self) -> str:
        """Return the sha256 of everything that training depends on."""
        digest = hashlib.sha256()
        digest.update(np.ascontiguousarray(self.expression, dtype=np.float32).tobytes())
        digest.update(np.ascontiguousarray(self.mask).tobytes())
        digest.update(np.ascontiguousarray(self.array_row, dtype=np.int64).tobytes())
        digest.update(np.ascontiguousarray(self.array_col, dtype=np.int64).tobytes())
        for labels in (self.slide_ids, self.split, self.genes):
            digest.update(json.dumps(None if labels is None else
                                     np.asarray(labels).astype(str).tolist()).encode())
        return digest.hexdigest()


def median_precomplete(data: SpotData, n_hops: int = 4) -> np.ndarray:
    """Return the median-filter completion of ``data`` (float32), the input SpaCKLE starts from."""
    return adaptive_median_filter(data.expression, data.mask, data.array_row, data.array_col,
                                  data.slide_ids, n_hops=n_hops)


class SpackleNet(nn.Module):
    """Linear adapter (genes -> width), transformer encoder, linear adapter (width -> genes)."""

    def __init__(self, n_genes: int, config: SpackleConfig) -> None:
        super().__init__()
        self.adapter_in = nn.Linear(n_genes, config.width)
        layer = nn.TransformerEncoderLayer(
            d_model=config.width, nhead=config.n_heads, dim_feedforward=config.feedforward,
            dropout=config.dropout, batch_first=True,
        )
        self.encoder = nn.TransformerEncoder(layer, num_layers=config.n_layers,
                                             enable_nested_tensor=False)
        self.adapter_out = nn.Linear(config.width, n_genes)

        # Per-gene centre and scale of the training data, saved with the weights: the network
        # works on standardized values, so "hidden = 0" means "hidden = the gene's mean".
        self.register_buffer("center", torch.zeros(n_genes))
        self.register_buffer("scale", torch.ones(n_genes))

    def set_standardization(self, values: np.ndarray, measured: np.ndarray) -> None:
        """Set the per-gene mean and std from the measured entries of ``values``."""
        counts = measured.sum(axis=0)
        sums = np.where(measured, values, 0.0).sum(axis=0)
        mean = np.divide(sums, counts, out=np.zeros(values.shape[1]), where=counts > 0)
        sq = np.where(measured, (values - mean) ** 2, 0.0).sum(axis=0)
        std = np.sqrt(np.divide(sq, counts, out=np.ones(values.shape[1]), where=counts > 1))
        std = np.where(std > 1e-6, std, 1.0)
        center, scale = self._standardization()
        center.copy_(torch.as_tensor(mean, dtype=torch.float32))
        scale.copy_(torch.as_tensor(std, dtype=torch.float32))

    def forward(self, tokens: torch.Tensor, hide: torch.Tensor,
                padding: torch.Tensor) -> torch.Tensor:
        """Reconstruct (batch, 1 + n, genes) expression from its unhidden entries.

        Entries where ``hide`` is True are set to 0 after standardization (E_m = E_x * (1 -
        M_mask)); ``padding`` (batch, 1 + n) is True for empty neighbour slots, which attention
        ignores. The output is in the input's units.
        """
        center, scale = self._standardization()
        z = ((tokens - center) / scale).masked_fill(hide, 0.0)
        out = self.adapter_out(self.encoder(self.adapter_in(z), src_key_padding_mask=padding))
        return out * scale + center

    def _standardization(self) -> tuple[torch.Tensor, torch.Tensor]:
        # Buffers registered in __init__; typed here (nn.Module's __getattr__ is untyped).
        center, scale = self.center, self.scale
        if not isinstance(center, torch.Tensor) or not isinstance(scale, torch.Tensor):
            raise TypeError("SpackleNet: expected tensor buffers 'center' and 'scale'")
        return center, scale


@dataclass
class TrainedSpackle:
    """A trained SpaCKLE model with what it was trained with and on."""

    net: SpackleNet
    config: SpackleConfig
    n_genes: int
    genes: list[str] | None
    data_hash: str
    best_step: int
    best_val_mse: float
    steps: int = 0
    history: list[tuple[int, float]] = field(default_factory=list)
    train_seconds: float = 0.0

    def save(self, path: Path | str) -> None:
        """Write the checkpoint (weights, config, data hash, history) to ``path`` atomically."""
        payload = {
            "format": CHECKPOINT_FORMAT,
            "config": self.config.model_dump_json(),
            "n_genes": self.n_genes,
            "genes": list(self.genes) if self.genes is not None else None,
            "data_hash": self.data_hash,
            "best_step": self.best_step,
            "best_val_mse": self.best_val_mse,
            "steps": self.steps,
            "history": [[int(s), float(v)] for s, v in self.history],
            "train_seconds": self.train_seconds,
            "state_dict": {k: v.detach().cpu() for k, v in self.net.state_dict().items()},
        }
        with atomic_path(path) as tmp:
            torch.save(payload, tmp)

    @classmethod
    def load(cls, path: Path | str, device: str = "auto") -> TrainedSpackle:
        """Read a checkpoint written by ``save``; raises ``CheckpointError`` if it is not one."""
        path = Path(path)
        if not path.is_file():
            raise CheckpointError(f"{path}: expected a SpaCKLE checkpoint file, found nothing")
        try:
            payload = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:
            raise CheckpointError(f"{path}: expected a SpaCKLE checkpoint, found an unreadable "
                                  f"file ({type(exc).__name__}: {exc})") from exc
        if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
            found = payload.get("format") if isinstance(payload, dict) else type(payload).__name__
            raise CheckpointError(f"{path}: expected format {CHECKPOINT_FORMAT!r}, found {found!r}")
        config = SpackleConfig.model_validate_json(payload["config"])
        net = SpackleNet(int(payload["n_genes"]), config)
        net.load_state_dict(payload["state_dict"])
        net.to(resolve_device(device if device != "auto" else config.device))
        net.eval()
        return cls(net=net, config=config, n_genes=int(payload["n_genes"]),
                   genes=payload["genes"], data_hash=str(payload["data_hash"]),
                   best_step=int(payload["best_step"]),
                   best_val_mse=float(payload["best_val_mse"]),
                   steps=int(payload.get("steps", payload["history"][-1][0]
                                         if payload["history"] else 0)),
                   history=[(int(s), float(v)) for s, v in payload["history"]],
                   train_seconds=float(payload.get("train_seconds", 0.0)))

    @property
    def device(self) -> torch.device:
        """Device the weights live on."""
        return next(self.net.parameters()).device

    def complete(self, data: SpotData, *, pre_completed: np.ndarray | None = None) -> np.ndarray:
        """Return ``data.expression`` (float32) with every mask-False entry predicted by SpaCKLE.

        The input is the median pre-completion of ``data`` (pass ``pre_completed`` to reuse
        one); originally missing entries are hidden from the model (set to 0), and only the
        first token's output is used. Measured entries are returned unchanged.
        """
        self._check_genes(data)
        pre = median_precomplete(data, self.config.n_hops) if pre_completed is None else \
            np.asarray(pre_completed, dtype=np.float32)
        hood = nearest_neighborhoods(data.array_row, data.array_col, data.slide_ids,
                                     self.config.n_neighbors)
        tensors = _Tensors.build(pre, data.mask, hood, self.device)
        out = np.asarray(data.expression, dtype=np.float32).copy()
        missing_rows = np.flatnonzero(~data.mask.all(axis=1))
        self.net.eval()
        with torch.no_grad(), _deterministic(self.device):
            for start in range(0, missing_rows.size, _INFERENCE_BATCH):
                rows = missing_rows[start:start + _INFERENCE_BATCH]
                centres = torch.as_tensor(rows, device=self.device)
                tokens, measured, valid = tensors.gather(centres)
                pred = self.net(tokens, ~measured, ~valid)[:, 0, :]
                block = pred.float().cpu().numpy()
                miss = ~data.mask[rows]
                sub = out[rows]
                sub[miss] = block[miss]
                out[rows] = sub
        return out

    def _check_genes(self, data: SpotData) -> None:
        if data.n_genes != self.n_genes:
            raise CheckpointError(
                f"SpaCKLE model: expected {self.n_genes} genes, found {data.n_genes} in the data"
            )
        if self.genes is not None and data.genes is not None and list(data.genes) != self.genes:
            diff = next(i for i, (a, b) in enumerate(zip(self.genes, data.genes, strict=True))
                        if a != b)
            raise CheckpointError(
                f"SpaCKLE model: expected gene {self.genes[diff]!r} at position {diff}, found "
                f"{data.genes[diff]!r}; the model was trained on other genes"
            )


def resolve_device(device: str) -> torch.device:
    """Return the torch device for ``auto`` (CUDA when present), ``cpu`` or ``cuda``."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise CompletionInputError("device: expected a CUDA GPU for device='cuda', found none")
    return torch.device(device)


def train_spackle(data: SpotData, config: SpackleConfig | None = None, *,
                  data_hash: str = "", progress: bool = False) -> TrainedSpackle:
    """Train SpaCKLE on the ``train`` spots of ``data``; keep the best model by validation MSE.

    Trains ``config.step_budget(n_train)`` steps (recorded as ``steps``). Validation hides a
    fixed seeded ``rho`` of the measured entries of the neighbourhood of each ``val`` spot (a
    seeded subset of ``config.max_val_spots``) and scores the first token's hidden entries.
    Seeded: on CPU the result is bit-for-bit reproducible (deterministic algorithms are enabled
    for the duration). The global torch RNG state is left as it was.
    """
    config = config or SpackleConfig()
    device = resolve_device(config.device)
    start_time = time.perf_counter()
    pre = median_precomplete(data, config.n_hops)
    hood = nearest_neighborhoods(data.array_row, data.array_col, data.slide_ids,
                                 config.n_neighbors)
    train_idx, val_idx = _train_val_spots(data, config.seed, config.max_val_spots)
    n_steps = config.step_budget(train_idx.size)
    tensors = _Tensors.build(pre, data.mask, hood, device)
    gen = torch.Generator(device=device).manual_seed(config.seed)
    order_gen = torch.Generator().manual_seed(config.seed + 1)
    val_centres = torch.as_tensor(val_idx, device=device)
    # Fixed validation masks, so scores are comparable between steps.
    val_gen = torch.Generator().manual_seed(config.seed + 2)
    val_hide_cpu = torch.rand((val_idx.size, 1 + config.n_neighbors, data.n_genes),
                              generator=val_gen) < config.rho

    fork_devices = [device.index or 0] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=fork_devices), _deterministic(device):
        torch.manual_seed(config.seed)
        net = SpackleNet(data.n_genes, config)
        train_rows = np.zeros(data.n_spots, dtype=bool)
        train_rows[train_idx] = True
        net.set_standardization(pre[train_rows], data.mask[train_rows])
        net = net.to(device)
        optimizer = torch.optim.Adam(net.parameters(), lr=config.lr)
        best_state = copy.deepcopy(net.state_dict())
        best_mse, best_step = float("inf"), 0
        history: list[tuple[int, float]] = []
        batches = _batches(train_idx, config.batch_size, order_gen)
        bar = tqdm(range(1, n_steps + 1), desc="SpaCKLE training", unit="step",
                   disable=not progress, leave=False)
        for step in bar:
            net.train()
            centres = torch.as_tensor(next(batches), device=device)
            tokens, measured, valid = tensors.gather(centres)
            hide = measured & (torch.rand(tokens.shape, generator=gen, device=device)
                               < config.rho)
            pred = net(tokens, hide, ~valid)
            loss = _loss(pred, tokens, hide, valid, config.loss_on)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if step % config.val_every_steps == 0 or step == n_steps:
                mse = _validation_mse(net, tensors, val_centres, val_hide_cpu.to(device))
                history.append((step, mse))
                if mse < best_mse:
                    best_mse, best_step = mse, step
                    best_state = copy.deepcopy(net.state_dict())
                bar.set_postfix(val_mse=f"{mse:.4f}", best=f"{best_mse:.4f}")
        net.load_state_dict(best_state)
        net.eval()
    return TrainedSpackle(net=net, config=config, n_genes=data.n_genes,
                          genes=list(data.genes) if data.genes is not None else None,
                          data_hash=data_hash, best_step=best_step, best_val_mse=best_mse,
                          steps=n_steps, history=history,
                          train_seconds=time.perf_counter() - start_time)


def train_or_load(data: SpotData, config: SpackleConfig | None, cache_dir: Path | str, *,
                  data_hash: str = "",
                  progress: bool = False) -> tuple[TrainedSpackle, bool, Path]:
    """Return (model, cache_hit, checkpoint): a cached model for (data, config) or a new one.

    The cache key is the sha256 of the config (without ``device``), ``data_hash`` and the
    content of ``data``; the checkpoint is ``cache_dir/spackle/<key>.pt``.
    """
    config = config or SpackleConfig()
    key_source = json.dumps({"config": config.cache_key_fields(), "data_hash": data_hash,
                             "content": data.content_hash()}, sort_keys=True)
    key = hashlib.sha256(key_source.encode()).hexdigest()[:32]
    path = Path(cache_dir) / "spackle" / f"{key}.pt"
    if path.is_file():
        with contextlib.suppress(CheckpointError):
            return TrainedSpackle.load(path, device=config.device), True, path
    trained = train_spackle(data, config, data_hash=data_hash, progress=progress)
    trained.save(path)
    return trained, False, path


@dataclass
class _Tensors:
    """Expression, measured-mask and neighbourhood index on the device, with a padding row."""

    values: torch.Tensor  # (n + 1, g); the last row is the zero padding spot
    measured: torch.Tensor  # (n + 1, g) bool
    hood: torch.Tensor  # (n, 1 + k) int64 into values
    pad_row: int

    @classmethod
    def build(cls, pre: np.ndarray, mask: np.ndarray, hood: np.ndarray,
              device: torch.device) -> _Tensors:
        n, g = pre.shape
        values = np.zeros((n + 1, g), dtype=np.float32)
        values[:n] = pre
        measured = np.zeros((n + 1, g), dtype=bool)
        measured[:n] = mask
        hood = np.where(hood == PAD, n, hood)
        return cls(torch.as_tensor(values, device=device),
                   torch.as_tensor(measured, device=device),
                   torch.as_tensor(hood, device=device), n)

    def gather(self, centres: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Return tokens (b, 1 + k, g), measured (b, 1 + k, g) and valid slots (b, 1 + k)."""
        idx = self.hood[centres]
        return self.values[idx], self.measured[idx], idx != self.pad_row


def _loss(pred: torch.Tensor, target: torch.Tensor, hide: torch.Tensor, valid: torch.Tensor,
          loss_on: str) -> torch.Tensor:
    sq = (pred - target) ** 2
    weight = hide.float() if loss_on == "hidden" else valid[..., None].expand_as(sq).float()
    return (sq * weight).sum() / weight.sum().clamp_min(1.0)


def _validation_mse(net: SpackleNet, tensors: _Tensors, centres: torch.Tensor,
                    hide: torch.Tensor) -> float:
    net.eval()
    total, count = 0.0, 0
    with torch.no_grad():
        for start in range(0, centres.shape[0], _INFERENCE_BATCH):
            c = centres[start:start + _INFERENCE_BATCH]
            tokens, measured, valid = tensors.gather(c)
            h = hide[start:start + _INFERENCE_BATCH] & measured
            pred = net(tokens, h, ~valid)
            first = h[:, 0, :]
            total += float(((pred[:, 0, :] - tokens[:, 0, :]) ** 2)[first].sum())
            count += int(first.sum())
    return total / count if count else float("inf")


def _train_val_spots(data: SpotData, seed: int,
                     max_val_spots: int) -> tuple[np.ndarray, np.ndarray]:
    """Return the train spots and (a seeded subset of at most ``max_val_spots``) val spots."""
    if data.split is not None:
        split = data.split.astype(str)
        train, val = np.flatnonzero(split == "train"), np.flatnonzero(split == "val")
        if train.size and val.size:
            return train, _at_most(val, max_val_spots, seed)
        if not train.size:
            raise CompletionInputError(
                "obs['split']: expected some 'train' spots to train SpaCKLE on, found "
                f"{sorted(set(split.tolist()))}"
            )
    else:
        train = np.arange(data.n_spots)
    if train.size < 2:
        raise CompletionInputError(
            f"spots: expected at least 2 spots to train SpaCKLE, found {train.size}"
        )
    rng = np.random.default_rng(seed)
    is_val = rng.random(train.size) < 0.15
    is_val[rng.integers(train.size)] = True
    return train[~is_val], _at_most(train[is_val], max_val_spots, seed)


def _at_most(idx: np.ndarray, n: int, seed: int) -> np.ndarray:
    if idx.size <= n:
        return idx
    return np.sort(np.random.default_rng(seed + 3).choice(idx, size=n, replace=False))


def _batches(idx: np.ndarray, batch_size: int, gen: torch.Generator) -> Iterator[np.ndarray]:
    while True:
        perm = torch.randperm(idx.size, generator=gen).numpy()
        for start in range(0, idx.size, batch_size):
            yield idx[perm[start:start + batch_size]]


@contextlib.contextmanager
def _deterministic(device: torch.device) -> Iterator[None]:
    """Enable deterministic algorithms on CPU for the block, then restore the previous mode."""
    if device.type != "cpu":
        yield
        return
    before = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(before)
