"""Governance: contracts, cleaning with a quarantine, privacy, lineage, governed ingestion."""

from ._access import PERMISSIONS, AccessDenied, People, Person, Role, authorize
from ._audit import ACTIONS, AuditLog, Verification
from ._consent import Consents, consent_withdrawn
from ._contracts import CONTRACTS, EVENT_TYPES, LOAD_ORDER, Classification, ColumnSpec, Kind, TableContract
from ._ingest import Ingestor, IngestReport, IngestSettings, TableReport, ingest
from ._lineage import DatasetRef, LineageRun, read_lineage
from ._mapping import MAP_FILE, ColumnMap, load_column_map
from ._privacy import PII_PATTERNS, Pseudonymizer, SecretStore, mask_pii
from ._quarantine import Quarantine
from ._reasons import Reason
from ._text import normalize_text, normalize_text_array

__all__ = [
    "ACTIONS",
    "PERMISSIONS",
    "AccessDenied",
    "People",
    "Person",
    "Role",
    "authorize",
    "consent_withdrawn",
    "AuditLog",
    "Verification",
    "CONTRACTS",
    "EVENT_TYPES",
    "LOAD_ORDER",
    "MAP_FILE",
    "PII_PATTERNS",
    "Classification",
    "ColumnMap",
    "ColumnSpec",
    "Consents",
    "DatasetRef",
    "IngestReport",
    "IngestSettings",
    "Ingestor",
    "Kind",
    "LineageRun",
    "Pseudonymizer",
    "Quarantine",
    "Reason",
    "SecretStore",
    "TableContract",
    "TableReport",
    "ingest",
    "load_column_map",
    "mask_pii",
    "normalize_text",
    "normalize_text_array",
    "read_lineage",
]
