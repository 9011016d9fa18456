"""Errors of the runners: the engine, the image, the container, the job's folders."""

from __future__ import annotations

from pathlib import Path

from evaluator.core.errors import BenchError


class RunnerError(BenchError):
    """Base of the runners' errors."""


class EngineUnavailable(RunnerError):
    """No Docker engine answers (socket missing, daemon down, or it went away mid-job)."""

    def __init__(self, detail: str) -> None:
        self.detail = detail
        super().__init__(
            f"expected a Docker engine answering, found none ({detail}); "
            "start one with scripts/ensure_docker.sh or set DOCKER_HOST"
        )


class ImageMissing(RunnerError):
    """The submission's image (or the local runner's command) does not exist on this machine."""

    def __init__(self, image: str) -> None:
        self.image = image
        super().__init__(
            f"image {image!r}: expected it present on this machine's engine, found no such image"
        )


class ContainerFailed(RunnerError):
    """A job ran but did not produce a usable output; carries the status and the log tail."""

    def __init__(
        self, image: str, exit_code: int | None, log_tail: str, status: str, message: str
    ) -> None:
        self.image = image
        self.exit_code = exit_code
        self.log_tail = log_tail
        self.status = status
        self.message = message
        tail = f"\n--- log tail ---\n{log_tail.rstrip()}" if log_tail.strip() else ""
        super().__init__(f"image {image!r}: {status}: {message}{tail}")


class JobFolderError(RunnerError):
    """A job's input or output folder cannot be used as given (missing, not empty, not a dir)."""

    def __init__(self, path: Path | str, expected: str, found: str) -> None:
        self.path = Path(path)
        self.expected = expected
        self.found = found
        super().__init__(f"job folder {self.path}: expected {expected}, found {found}")


class RunnerConfigError(RunnerError):
    """The engine refused the job's settings (e.g. GPUs requested with no GPU runtime)."""

    def __init__(self, image: str, detail: str) -> None:
        self.image = image
        self.detail = detail
        super().__init__(
            f"image {image!r}: expected the engine to accept the job's container settings, "
            f"found it refusing them: {detail}"
        )
