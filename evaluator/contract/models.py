"""The predict contract, version 1, as typed models (docs/ARCHITECTURE.md, "Predict contract,
version 1").

The evaluator writes ``/input/task.json`` (``TaskSpec``) next to ``train.h5ad`` and
``test.h5ad``; the submission writes ``/output/predictions.npy`` and, optionally,
``/output/model.json`` (``ModelCard``). The author-facing text is ``submissions/CONTRACT.md``;
the submission SDK (``submissions/sdk``) reads the same files without these models.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, JsonValue, ValidationError, field_validator

from evaluator.contract.errors import ContractError
from evaluator.core.settings import Settings
from evaluator.core.text import JsonDepthError, clean_json

CONTRACT_VERSION: Literal[1] = 1
"""The contract version this evaluator writes and accepts; bump on any incompatible change."""

SUPPORTED_CONTRACT_VERSIONS: tuple[int, ...] = (1,)

# File names inside /input and /output.
TASK_FILE = "task.json"
TRAIN_FILE = "train.h5ad"
TEST_FILE = "test.h5ad"
TRAIN_PATCHES_FILE = "train_patches.npy"
TEST_PATCHES_FILE = "test_patches.npy"
PREDICTIONS_FILE = "predictions.npy"
MODEL_CARD_FILE = "model.json"
INPUT_FILES: tuple[str, ...] = (TASK_FILE, TRAIN_FILE, TEST_FILE, TRAIN_PATCHES_FILE,
                                 TEST_PATCHES_FILE)
INPUT_ENVIRONMENT: dict[str, str] = {"HDF5_EXTFILE_PREFIX": "${ORIGIN}"}
"""Set for every submission: the patches of train/test.h5ad are HDF5 external storage in the
``*_patches.npy`` beside them (one copy of the pixels), found relative to the .h5ad's folder."""

MAX_CONTRACT_JSON_BYTES = 64 * 1024
"""Largest task.json / model.json accepted: both are small descriptions, never data."""

NPY_HEADER_SLACK_BYTES = 4096
"""Bytes allowed above the raw float32 data in predictions.npy (the .npy header)."""


class JobLimits(BaseModel):
    """The limits every job of a service runs under, as authors are told them.

    Published by the web app (``/api/limits``, the guide, receipts, entry pages), written into
    task.json, and the defaults of ``check``/``evaluate``; all from the service's settings
    (``Settings``, ``SPARED_BENCH_JOB_*``). ``gpus`` says in words what a job asking for
    ``cuda`` gets.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    time_limit_s: float = Field(default=3600.0, gt=0, description="wall clock, start to kill")
    mem_limit_gb: float = Field(default=16.0, gt=0, description="memory, no swap (GiB)")
    cpus: float = Field(default=2.0, gt=0, description="CPU quota")
    tmp_size_mb: int = Field(default=1024, gt=0, description="/tmp, a tmpfs counted in memory")
    output_max_mb: float = Field(default=1024.0, gt=0, description="all of /output (MiB)")
    gpus: str = Field(default="none", min_length=1, max_length=200,
                      description="what a job that asks for cuda gets")

    @classmethod
    def from_settings(cls, settings: Settings) -> JobLimits:
        """The limits a service's settings name (``SPARED_BENCH_JOB_*``)."""
        return cls(time_limit_s=settings.job_time_limit_s, mem_limit_gb=settings.job_mem_limit_gb,
                   cpus=settings.job_cpus, tmp_size_mb=settings.job_tmp_mb,
                   output_max_mb=settings.job_output_mb, gpus=settings.job_gpus)

    def lines(self) -> list[str]:
        """One human line per limit (guide, CLI)."""
        return [f"time {self.time_limit_s:g} s", f"memory {self.mem_limit_gb:g} GiB (no swap)",
                f"CPUs {self.cpus:g}", f"/tmp {self.tmp_size_mb} MiB (counted in memory)",
                f"/output {self.output_max_mb:g} MiB", f"GPU {self.gpus}"]


class TaskSpec(BaseModel):
    """``/input/task.json``: what one job asks the submission to predict.

    ``genes`` is the column order of the predictions, ``n_test_spots`` their row count (rows in
    test.h5ad order). ``patch_shape`` is [H, W, 3] of ``obsm['patches_scale_1.0']``.
    ``time_limit_s`` is the wall-clock limit of the whole run (the container is killed after it),
    ``device`` is ``cuda`` when a GPU is assigned, ``seed`` the seed to use for anything random.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    contract_version: Literal[1]
    dataset: str = Field(min_length=1, max_length=200)
    track: Literal["raw", "spackle"]
    genes: list[str] = Field(min_length=1, max_length=100_000)
    n_test_spots: int = Field(gt=0)
    patch_shape: tuple[int, int, int]
    time_limit_s: float = Field(gt=0)
    device: Literal["cuda", "cpu"]
    seed: int = Field(ge=0, lt=2**32)
    # Added within contract version 1 (readers ignore keys they do not know): every limit of
    # the run, time_limit_s among them.
    limits: JobLimits | None = None

    @field_validator("genes")
    @classmethod
    def _genes_unique(cls, genes: list[str]) -> list[str]:
        if any(not g for g in genes):
            raise ValueError("expected non-empty gene names, found an empty one")
        seen: set[str] = set()
        repeated: list[str] = []
        for gene in genes:
            if gene in seen:
                repeated.append(gene)
            seen.add(gene)
        if repeated:
            raise ValueError(f"expected unique gene names, found repeated {repeated[:5]}")
        return genes

    @field_validator("patch_shape")
    @classmethod
    def _patch_shape_hwc(cls, shape: tuple[int, int, int]) -> tuple[int, int, int]:
        if shape[0] <= 0 or shape[1] <= 0 or shape[2] != 3:
            raise ValueError(f"expected [H, W, 3] with H, W > 0, found {list(shape)}")
        return shape

    @property
    def n_genes(self) -> int:
        """Number of prediction columns."""
        return len(self.genes)

    @property
    def predictions_shape(self) -> tuple[int, int]:
        """(n_test_spots, n_genes): the shape predictions.npy must have."""
        return (self.n_test_spots, self.n_genes)

    @property
    def predictions_max_bytes(self) -> int:
        """Largest acceptable predictions.npy: the float32 data plus a header's slack."""
        return self.n_test_spots * self.n_genes * 4 + NPY_HEADER_SLACK_BYTES


class ModelCard(BaseModel):
    """``/output/model.json`` (optional): what the submission says about itself.

    ``parameters`` are the author's hyper-parameters (any JSON values), ``notes`` free text.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, max_length=200)
    parameters: dict[str, JsonValue] = Field(default_factory=dict)
    notes: str = Field(default="", max_length=10_000)


def _problems(error: ValidationError) -> list[str]:
    """One "key: expected ..., found ..." line per pydantic error."""
    lines = []
    for item in error.errors(include_url=False):
        key = ".".join(str(p) for p in item["loc"]) or "(top level)"
        kind = item["type"]
        found = item.get("input")
        shown = json.dumps(found)[:80] if _jsonable(found) else repr(found)[:80]
        if kind == "missing":
            lines.append(f"key {key!r}: expected it present, found it missing")
        elif kind == "extra_forbidden":
            lines.append(f"key {key!r}: expected no such key (contract version 1 has none), "
                         f"found it with value {shown}")
        else:
            msg = str(item["msg"]).removeprefix("Value error, ")
            if msg.startswith("expected "):
                lines.append(f"key {key!r}: {msg}")
            else:
                lines.append(f"key {key!r}: expected {_expectation(msg)}, found {shown}")
    return lines


def _expectation(msg: str) -> str:
    """Turn pydantic's "Input should be X" / "List should have X" into "X" / "a list with X"."""
    for prefix, replacement in (("Input should be ", ""), ("Input should ", ""),
                                ("String should have ", "a string with "),
                                ("List should have ", "a list with "),
                                ("Tuple should have ", "a tuple with "),
                                ("Dictionary should have ", "an object with ")):
        if msg.startswith(prefix):
            return replacement + msg[len(prefix):]
    return msg[:1].lower() + msg[1:]


def _jsonable(value: Any) -> bool:
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return False
    return True


def _load_json(data: bytes | str, source: str) -> Any:
    if len(data) > MAX_CONTRACT_JSON_BYTES:
        raise ContractError(source, [f"expected at most {MAX_CONTRACT_JSON_BYTES} bytes, "
                                     f"found {len(data)}"])
    try:
        return json.loads(data, parse_constant=_refuse_constant)
    except RecursionError as exc:
        raise ContractError(source, ["expected JSON nested a few levels deep, found nesting "
                                     "too deep to read"]) from exc
    except (ValueError, UnicodeDecodeError) as exc:
        raise ContractError(source, [f"expected valid JSON, found {exc}"]) from exc


def _refuse_constant(name: str) -> Any:
    """``json.loads`` hook: NaN and Infinity are Python's extension, not JSON."""
    raise ValueError(f"{name} (not valid JSON: write null or a string for a non-finite number)")


def _read(path: Path, source: str) -> bytes:
    if not path.is_file():
        found = "a directory" if path.is_dir() else "no such file"
        raise ContractError(source, [f"expected a file, found {found}"])
    size = path.stat().st_size
    if size > MAX_CONTRACT_JSON_BYTES:
        raise ContractError(source, [f"expected at most {MAX_CONTRACT_JSON_BYTES} bytes, "
                                     f"found {size}"])
    return path.read_bytes()


def parse_task(data: bytes | str | dict[str, Any], *, source: str = TASK_FILE) -> TaskSpec:
    """Validate task.json content (bytes, text or a parsed dict); raise ``ContractError``.

    A ``contract_version`` this evaluator does not know is reported on its own, before any
    other problem: the rest of the file may follow another version's rules.
    """
    obj = data if isinstance(data, dict) else _load_json(data, source)
    if not isinstance(obj, dict):
        raise ContractError(source, [f"expected a JSON object, found {type(obj).__name__}"])
    version = obj.get("contract_version")
    if "contract_version" in obj and version not in SUPPORTED_CONTRACT_VERSIONS:
        raise ContractError(source, [
            f"key 'contract_version': expected one of {list(SUPPORTED_CONTRACT_VERSIONS)}, "
            f"found {json.dumps(version) if _jsonable(version) else repr(version)}"])
    try:
        return TaskSpec.model_validate(obj)
    except ValidationError as exc:
        raise ContractError(source, _problems(exc)) from exc


def read_task(path: Path | str) -> TaskSpec:
    """Read and validate a task.json file; raise ``ContractError`` naming the file."""
    path = Path(path)
    return parse_task(_read(path, str(path)), source=str(path))


def task_json(task: TaskSpec) -> str:
    """Serialize a task as the evaluator writes it (indented, keys in the model's order).

    ``limits`` is written only when known (task.json of version 1 had no such key).
    """
    return task.model_dump_json(indent=2, exclude={"limits"} if task.limits is None else None
                                ) + "\n"


def parse_model_card(data: bytes | str | dict[str, Any], *,
                     source: str = MODEL_CARD_FILE) -> ModelCard:
    """Validate model.json content; raise ``ContractError``.

    Refused: NaN or Infinity, nesting deeper than ``MAX_JSON_DEPTH``. NUL characters and lone
    surrogates (``"\\ud800"``) in strings and keys become U+FFFD, so every store can keep the
    card.
    """
    obj = data if isinstance(data, dict) else _load_json(data, source)
    if not isinstance(obj, dict):
        raise ContractError(source, [f"expected a JSON object, found {type(obj).__name__}"])
    try:
        obj = clean_json(obj)
    except JsonDepthError as exc:
        raise ContractError(source, [str(exc)]) from exc
    try:
        return ModelCard.model_validate(obj)
    except ValidationError as exc:
        raise ContractError(source, _problems(exc)) from exc


def read_model_card(path: Path | str) -> ModelCard:
    """Read and validate a model.json file; raise ``ContractError`` naming the file."""
    path = Path(path)
    return parse_model_card(_read(path, str(path)), source=str(path))


def contract_json_schemas() -> dict[str, dict[str, Any]]:
    """JSON Schemas of task.json and model.json (for authors' own tooling and the docs)."""
    return {TASK_FILE: TaskSpec.model_json_schema(), MODEL_CARD_FILE: ModelCard.model_json_schema()}
