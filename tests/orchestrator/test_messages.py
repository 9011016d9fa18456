"""Messages a worker records for the author carry no host paths (issue 17)."""

from __future__ import annotations

from pathlib import Path

from evaluator.orchestrator.execution import scrub_paths


def test_host_paths_are_cut_and_container_paths_kept(tmp_path: Path) -> None:
    home = tmp_path / "bench"
    message = (f"job folder {home}/work/w1/spared-job-x/output: expected an empty output "
               f"folder; release {home}/releases/abc/hidden/d/truth.h5ad: unreadable; "
               "'/var/lib/docker/volumes/v/_data' refused; /output/predictions.npy: dtype; "
               "/input/task.json ok; found VOLUME /data; /tmp/x")
    scrubbed = scrub_paths(message, home)
    assert str(tmp_path) not in scrubbed and "/var/lib" not in scrubbed
    assert "hidden" not in scrubbed
    assert "found VOLUME /data; /tmp/x" in scrubbed  # container paths stay
    assert "<host path>/output: expected an empty output folder" in scrubbed
    assert "<host path>/truth.h5ad: unreadable" in scrubbed
    assert "/output/predictions.npy: dtype" in scrubbed
    assert "/input/task.json ok" in scrubbed
    assert scrub_paths("expected exit code 0, found 3", home) == "expected exit code 0, found 3"
