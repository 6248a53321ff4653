"""The shape of the lineage package: its public surface, its imports, its migration."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine

import lineage
from lineage.tables import metadata


def test_public_surface_is_pinned() -> None:
    assert sorted(lineage.__all__) == sorted([
        "AnswerPage", "AnswerStateError", "AnswerTrace", "AnswerUse", "ArchivedText", "DuplicateAnswerError",
        "ForgetReport", "IcebergLanding", "InvalidCursorError", "InvalidEventError", "LandingError", "LineageError",
        "LineageQueries", "LineageStoreError", "OutboxEvent", "OutboxRelay", "RelayReport", "RelayTarget",
        "RelayWorker", "SourceTrace", "SqlChunkArchive", "SqlLineageStore", "build_answer_event",
        "build_document_event", "default_catalog_properties", "parse", "resolve_catalog_properties", "serialize",
        "validate_event"])
    assert all(hasattr(lineage, name) for name in lineage.__all__)


def test_lineage_imports_only_schemas_of_the_core() -> None:
    code = ("import sys, lineage; bad = sorted({m.split('.')[0] for m in sys.modules} & "
            "{'services', 'ingest', 'retrieval'}); print(','.join(bad))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == ""


def test_migration_0002_matches_the_table_definitions(engine: Engine) -> None:
    ours = {t.name for t in metadata.sorted_tables}

    def lineage_only(obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any) -> bool:
        return (name in ours) if type_ == "table" else obj.table.name in ours

    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"include_object": lineage_only})
        assert compare_metadata(context, metadata) == []
