"""The predict contract, version 1: task.json and model.json models, file names, limits.

Output validation of predictions.npy lives in ``evaluator.scoring.load_predictions`` (the
scorer reads what the contract allows); ``evaluator.jobs`` applies both after a run.
"""

from evaluator.contract.errors import ContractError
from evaluator.contract.image import IMAGE_VOLUMES_ALLOWED, image_problem
from evaluator.contract.models import (
    CONTRACT_VERSION,
    INPUT_ENVIRONMENT,
    INPUT_FILES,
    MAX_CONTRACT_JSON_BYTES,
    MODEL_CARD_FILE,
    PREDICTIONS_FILE,
    SUPPORTED_CONTRACT_VERSIONS,
    TASK_FILE,
    TEST_FILE,
    TEST_PATCHES_FILE,
    TRAIN_FILE,
    TRAIN_PATCHES_FILE,
    JobLimits,
    ModelCard,
    TaskSpec,
    contract_json_schemas,
    parse_model_card,
    parse_task,
    read_model_card,
    read_task,
    task_json,
)

__all__ = [
    "CONTRACT_VERSION",
    "IMAGE_VOLUMES_ALLOWED",
    "INPUT_ENVIRONMENT",
    "INPUT_FILES",
    "MAX_CONTRACT_JSON_BYTES",
    "MODEL_CARD_FILE",
    "PREDICTIONS_FILE",
    "SUPPORTED_CONTRACT_VERSIONS",
    "TASK_FILE",
    "TEST_FILE",
    "TEST_PATCHES_FILE",
    "TRAIN_FILE",
    "TRAIN_PATCHES_FILE",
    "ContractError",
    "JobLimits",
    "ModelCard",
    "TaskSpec",
    "contract_json_schemas",
    "image_problem",
    "parse_model_card",
    "parse_task",
    "read_model_card",
    "read_task",
    "task_json",
]
