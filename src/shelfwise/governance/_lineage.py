"""Lineage: OpenLineage run events (START / COMPLETE / FAIL) through the client's file transport.

Every job (ingestion, training, erasure...) is one OpenLineage run with its input and output
datasets, their row counts and content hashes. The events are appended as JSON lines to
`<workdir>/lineage/openlineage.jsonl`; a shop that runs Marquez or DataHub swaps the transport
(OpenLineage HTTP) without touching the jobs.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from openlineage.client import OpenLineageClient
from openlineage.client.event_v2 import InputDataset, Job, OutputDataset, Run, RunEvent, RunState
from openlineage.client.facet_v2 import (
    dataset_version_dataset,
    error_message_run,
    input_statistics_input_dataset,
    lifecycle_state_change_dataset,
    output_statistics_output_dataset,
    schema_dataset,
)
from openlineage.client.transport.file import FileConfig, FileTransport
from openlineage.client.uuid import generate_new_uuid

PRODUCER = "https://github.com/shelfwise/shelfwise"
JOB_NAMESPACE = "shelfwise"
LINEAGE_FILE = "lineage/openlineage.jsonl"


@dataclass(frozen=True)
class DatasetRef:
    """A dataset a run reads or writes: a source file or a warehouse table."""

    namespace: str  # "file" for source files, "duckdb://<path>" for warehouse tables
    name: str
    rows: int | None = None
    content_hash: str | None = None
    size_bytes: int | None = None
    columns: tuple[str, ...] = ()
    # how a run changed an output table: OVERWRITE (a full load) or ALTER (rows appended/upserted)
    lifecycle: str | None = None


def warehouse_namespace(workdir: Path) -> str:
    return f"duckdb://{(Path(workdir) / 'warehouse.duckdb').resolve().as_posix()}"


class LineageRun:
    """One OpenLineage run: `start()`, then `complete(outputs)` or `fail(error)`."""

    def __init__(self, workdir: str | Path, job_name: str, inputs: list[DatasetRef] | None = None):
        self.workdir = Path(workdir)
        self.job_name = job_name
        self.run_id = str(generate_new_uuid())
        self.inputs = list(inputs or [])
        path = self.workdir / LINEAGE_FILE
        path.parent.mkdir(parents=True, exist_ok=True)
        self._client = OpenLineageClient(
            transport=FileTransport(FileConfig(log_file_path=str(path), append=True))
        )

    def _emit(
        self, state: RunState, outputs: list[DatasetRef] | None = None, error: str | None = None
    ) -> None:
        run_facets: dict[str, Any] = {}
        if error:
            run_facets["errorMessage"] = error_message_run.ErrorMessageRunFacet(
                message=error, programmingLanguage="python"
            )
        event = RunEvent(
            eventType=state,
            eventTime=datetime.now(UTC).isoformat(),
            run=Run(runId=self.run_id, facets=run_facets),
            job=Job(namespace=JOB_NAMESPACE, name=self.job_name),
            producer=PRODUCER,
            inputs=[_input(d) for d in self.inputs],
            outputs=[_output(d) for d in (outputs or [])],
        )
        self._client.emit(event)

    def start(self) -> LineageRun:
        self._emit(RunState.START)
        return self

    def complete(self, outputs: list[DatasetRef]) -> None:
        self._emit(RunState.COMPLETE, outputs)

    def fail(self, error: str) -> None:
        self._emit(RunState.FAIL, error=error)


def _dataset_facets(d: DatasetRef) -> dict[str, Any]:
    facets: dict[str, Any] = {}
    if d.content_hash:
        facets["version"] = dataset_version_dataset.DatasetVersionDatasetFacet(datasetVersion=d.content_hash)
    if d.lifecycle:
        facets["lifecycleStateChange"] = lifecycle_state_change_dataset.LifecycleStateChangeDatasetFacet(
            lifecycleStateChange=lifecycle_state_change_dataset.LifecycleStateChange(d.lifecycle)
        )
    if d.columns:
        facets["schema"] = schema_dataset.SchemaDatasetFacet(
            fields=[schema_dataset.SchemaDatasetFacetFields(name=c) for c in d.columns]
        )
    return facets


def _input(d: DatasetRef) -> InputDataset:
    stats = input_statistics_input_dataset.InputStatisticsInputDatasetFacet(
        rowCount=d.rows, size=d.size_bytes
    )
    return InputDataset(
        namespace=d.namespace, name=d.name, facets=_dataset_facets(d), inputFacets={"inputStatistics": stats}
    )


def _output(d: DatasetRef) -> OutputDataset:
    stats = output_statistics_output_dataset.OutputStatisticsOutputDatasetFacet(
        rowCount=d.rows, size=d.size_bytes
    )
    return OutputDataset(
        namespace=d.namespace,
        name=d.name,
        facets=_dataset_facets(d),
        outputFacets={"outputStatistics": stats},
    )


def read_lineage(workdir: str | Path) -> list[dict[str, Any]]:
    """All run events of a workdir, oldest first."""
    path = Path(workdir) / LINEAGE_FILE
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
