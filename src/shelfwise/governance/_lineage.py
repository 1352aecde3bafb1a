"""Lineage: OpenLineage run events (START / COMPLETE / FAIL) through the client's file transport.

Every job (ingestion, training, erasure...) is one OpenLineage run with its input and output
datasets, their row counts and content hashes. The events are appended as JSON lines to
`<workdir>/lineage/openlineage.jsonl`; a shop that runs Marquez or DataHub swaps the transport
(OpenLineage HTTP) without touching the jobs.

The OpenLineage client is imported when the first event is emitted (its import, every
transport's libraries with it, is ~0.25 s CPU): `shelfwise ingest` imports it in the background
and writes its START event from a thread while the warehouse reads (`LineageRun(...,
background=True)`).
"""

from __future__ import annotations

import json
import secrets
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from openlineage.client import OpenLineageClient
    from openlineage.client.event_v2 import InputDataset, OutputDataset

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


def new_run_id() -> str:
    """A run id as the OpenLineage client makes them (`openlineage.client.uuid.generate_new_uuid`):
    a UUIDv7 (RFC 9562: the Unix time in milliseconds, then random bits), so ids sort by time;
    made here so that a run's id does not wait for the client's import."""
    value = (time.time_ns() // 1_000_000 & 0xFFFF_FFFF_FFFF) << 80 | secrets.randbits(80)
    value = value & ~(0xF << 76) | 7 << 76  # the version, 7
    value = value & ~(0x3 << 62) | 0x2 << 62  # the variant, RFC 4122/9562
    return str(uuid.UUID(int=value))


def warehouse_namespace(workdir: Path) -> str:
    return f"duckdb://{(Path(workdir) / 'warehouse.duckdb').resolve().as_posix()}"


class LineageRun:
    """One OpenLineage run: `start()`, then `complete(outputs)` or `fail(error)`.

    `background`, while a command's preload runs (`_lazy.preload`, which imports the client
    first: `shelfwise ingest`): `start()` returns at once and its START event (stamped with the
    time of the call, its inputs as they were then) is written from a thread once the preload is
    done; `complete` and `fail` wait for it, so the run's events stay in order in the file, and
    `complete` raises what writing it raised. With no preload running, START is written at once
    (a thread importing the client itself could meet the caller's own imports)."""

    def __init__(
        self,
        workdir: str | Path,
        job_name: str,
        inputs: list[DatasetRef] | None = None,
        *,
        background: bool = False,
    ):
        self.workdir = Path(workdir)
        self.job_name = job_name
        self.run_id = new_run_id()
        self.inputs = list(inputs or [])
        self.background = background
        self._path = self.workdir / LINEAGE_FILE
        self._path.parent.mkdir(parents=True, exist_ok=True)
        self._client: OpenLineageClient | None = None
        self._starting: threading.Thread | None = None
        self._start_error: BaseException | None = None

    def _emit(
        self,
        state: str,
        outputs: list[DatasetRef] | None = None,
        error: str | None = None,
        *,
        at: str | None = None,
        inputs: list[DatasetRef] | None = None,
    ) -> None:
        from openlineage.client.event_v2 import Job, Run, RunEvent, RunState
        from openlineage.client.facet_v2 import error_message_run

        if self._client is None:
            from openlineage.client import OpenLineageClient
            from openlineage.client.transport.file import FileConfig, FileTransport

            self._client = OpenLineageClient(
                transport=FileTransport(FileConfig(log_file_path=str(self._path), append=True))
            )
        run_facets: dict[str, Any] = {}
        if error:
            run_facets["errorMessage"] = error_message_run.ErrorMessageRunFacet(
                message=error, programmingLanguage="python"
            )
        event = RunEvent(
            eventType=RunState(state),
            eventTime=at or datetime.now(UTC).isoformat(),
            run=Run(runId=self.run_id, facets=run_facets),
            job=Job(namespace=JOB_NAMESPACE, name=self.job_name),
            producer=PRODUCER,
            inputs=[_input(d) for d in (self.inputs if inputs is None else inputs)],
            outputs=[_output(d) for d in (outputs or [])],
        )
        self._client.emit(event)

    def start(self) -> LineageRun:
        from .._lazy import preloading

        if not (self.background and preloading()):
            self._emit("START")
            return self
        at, inputs = datetime.now(UTC).isoformat(), list(self.inputs)

        def emit() -> None:
            from .._lazy import preloaded

            try:
                preloaded()  # (the client is imported there: not by two threads at once)
                self._emit("START", at=at, inputs=inputs)
            except BaseException as exc:  # noqa: BLE001 - raised by `complete`, in the job's thread
                self._start_error = exc

        self._starting = threading.Thread(target=emit, name="shelfwise-lineage-start", daemon=True)
        self._starting.start()
        return self

    def _started(self) -> BaseException | None:
        """Wait for a START written in the background; what writing it raised, if anything."""
        if self._starting is not None:
            self._starting.join()
            self._starting = None
        return self._start_error

    def complete(self, outputs: list[DatasetRef]) -> None:
        failed = self._started()
        if failed is not None:
            raise failed
        self._emit("COMPLETE", outputs)

    def fail(self, error: str) -> None:
        self._started()  # (the job's own error is the one to raise, not a START's)
        self._emit("FAIL", error=error)


def _dataset_facets(d: DatasetRef) -> dict[str, Any]:
    from openlineage.client.facet_v2 import (
        dataset_version_dataset,
        lifecycle_state_change_dataset,
        schema_dataset,
    )

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
    from openlineage.client.event_v2 import InputDataset
    from openlineage.client.facet_v2 import input_statistics_input_dataset

    stats = input_statistics_input_dataset.InputStatisticsInputDatasetFacet(
        rowCount=d.rows, size=d.size_bytes
    )
    return InputDataset(
        namespace=d.namespace, name=d.name, facets=_dataset_facets(d), inputFacets={"inputStatistics": stats}
    )


def _output(d: DatasetRef) -> OutputDataset:
    from openlineage.client.event_v2 import OutputDataset
    from openlineage.client.facet_v2 import output_statistics_output_dataset

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
