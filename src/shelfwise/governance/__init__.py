"""Governance: contracts, cleaning with a quarantine, privacy, lineage, governed ingestion.

Names are imported from their modules on first use (PEP 562): a command that checks a permission
or reads the audit log does not pay for the ingestion stack (ibis, pyarrow, OpenLineage).
"""

from typing import TYPE_CHECKING

from .._lazy import lazy_exports

if TYPE_CHECKING:
    from ._access import PERMISSIONS, AccessDenied, People, Person, Role, authorize
    from ._audit import ACTIONS, AuditLog, Verification
    from ._consent import Consents, consent_withdrawn
    from ._contracts import (
        CONTRACTS,
        EVENT_TYPES,
        LOAD_ORDER,
        UNKNOWN_CURRENCY,
        Classification,
        ColumnSpec,
        Kind,
        TableContract,
    )
    from ._ingest import Ingestor, IngestReport, IngestSettings, TableReport, ingest
    from ._lineage import DatasetRef, LineageRun, read_lineage
    from ._mapping import MAP_FILE, ColumnMap, load_column_map
    from ._privacy import (
        ANONYMOUS_PREFIX,
        PII_PATTERNS,
        Pseudonymizer,
        SecretStore,
        anonymous_user_id,
        is_anonymous,
        is_anonymous_raw,
        mask_pii,
        shop_user_ids,
    )
    from ._quarantine import Quarantine
    from ._reasons import Reason
    from ._text import normalize_text, normalize_text_array

_WHERE = {
    "PERMISSIONS": "._access",
    "AccessDenied": "._access",
    "People": "._access",
    "Person": "._access",
    "Role": "._access",
    "authorize": "._access",
    "ACTIONS": "._audit",
    "AuditLog": "._audit",
    "Verification": "._audit",
    "Consents": "._consent",
    "consent_withdrawn": "._consent",
    "CONTRACTS": "._contracts",
    "EVENT_TYPES": "._contracts",
    "LOAD_ORDER": "._contracts",
    "Classification": "._contracts",
    "ColumnSpec": "._contracts",
    "Kind": "._contracts",
    "TableContract": "._contracts",
    "UNKNOWN_CURRENCY": "._contracts",
    "Ingestor": "._ingest",
    "IngestReport": "._ingest",
    "IngestSettings": "._ingest",
    "TableReport": "._ingest",
    "ingest": "._ingest",
    "DatasetRef": "._lineage",
    "LineageRun": "._lineage",
    "read_lineage": "._lineage",
    "MAP_FILE": "._mapping",
    "ColumnMap": "._mapping",
    "load_column_map": "._mapping",
    "ANONYMOUS_PREFIX": "._privacy",
    "PII_PATTERNS": "._privacy",
    "anonymous_user_id": "._privacy",
    "is_anonymous": "._privacy",
    "is_anonymous_raw": "._privacy",
    "Pseudonymizer": "._privacy",
    "SecretStore": "._privacy",
    "mask_pii": "._privacy",
    "shop_user_ids": "._privacy",
    "Quarantine": "._quarantine",
    "Reason": "._reasons",
    "normalize_text": "._text",
    "normalize_text_array": "._text",
}
__getattr__ = lazy_exports(__name__, _WHERE)

__all__ = [
    "ACTIONS",
    "ANONYMOUS_PREFIX",
    "PERMISSIONS",
    "AccessDenied",
    "People",
    "Person",
    "Role",
    "anonymous_user_id",
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
    "UNKNOWN_CURRENCY",
    "ingest",
    "is_anonymous",
    "is_anonymous_raw",
    "load_column_map",
    "mask_pii",
    "shop_user_ids",
    "normalize_text",
    "normalize_text_array",
    "read_lineage",
]
