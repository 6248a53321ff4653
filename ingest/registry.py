"""The document registry: what is indexed, at which version, under which pipeline.

It is what makes re-ingest a no-op for unchanged documents and what ``reconcile``
compares with the vector index.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import ColumnElement, Connection, Engine, and_, delete, exists, func, or_, select, true, update

from ingest.tables import document_access_tags, documents


@dataclass(frozen=True)
class DocumentRecord:
    tenant: str
    document_id: str
    version: str
    source_uri: str
    media_type: str | None
    pipeline_fingerprint: str
    collection: str
    chunk_count: int
    status: str
    last_error: str | None
    access_tags: list[str]
    title: str | None
    metadata: dict[str, Any]
    created_at: datetime
    updated_at: datetime
    source_root: str | None = None  # the local folder (or file) it was read from; None: not from disk
    pii_redacted: dict[str, int] | None = None  # values redacted per PII entity type (None: not recorded)


class DocumentRegistry:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def get(self, tenant: str, document_id: str, reader_tags: tuple[str, ...] | None = None) -> DocumentRecord | None:
        """The document, if ``reader_tags`` may see it (None: every document of the tenant)."""
        with self._engine.connect() as conn:
            row = conn.execute(
                select(documents).where(documents.c.tenant == tenant, documents.c.document_id == document_id,
                                        visible_to(reader_tags))
            ).mappings().first()
        return DocumentRecord(**row) if row else None

    def readable(self, tenant: str, document_ids: list[str], reader_tags: tuple[str, ...] | None) -> set[str]:
        """Which of ``document_ids`` the reader may see (unknown ids are not readable)."""
        if not document_ids:
            return set()
        with self._engine.connect() as conn:
            rows = conn.execute(select(documents.c.document_id).where(
                documents.c.tenant == tenant, documents.c.document_id.in_(set(document_ids)),
                visible_to(reader_tags))).scalars().all()
        return set(rows)

    def record_indexed(self, *, tenant: str, document_id: str, version: str, source_uri: str, media_type: str,
                       pipeline_fingerprint: str, collection: str, chunk_count: int, access_tags: list[str],
                       title: str | None, metadata: dict[str, Any],
                       pii_redacted: dict[str, int] | None = None, source_root: str | None = None) -> None:
        self._upsert(tenant, document_id, {
            "version": version, "source_uri": source_uri, "media_type": media_type,
            "pipeline_fingerprint": pipeline_fingerprint, "collection": collection, "chunk_count": chunk_count,
            "status": "indexed", "last_error": None, "access_tags": access_tags, "title": title,
            "metadata": metadata, "pii_redacted": pii_redacted, "source_root": source_root,
        })

    def record_failed(self, *, tenant: str, document_id: str, version: str, source_uri: str, error: str,
                      pipeline_fingerprint: str, collection: str, source_root: str | None = None) -> None:
        """A failure on a document that is already indexed keeps its indexed version."""
        existing = self.get(tenant, document_id)
        if existing and existing.status == "indexed":
            self._update(tenant, document_id, {"last_error": error})
            return
        self._upsert(tenant, document_id, {
            "version": version, "source_uri": source_uri, "pipeline_fingerprint": pipeline_fingerprint,
            "collection": collection, "chunk_count": 0, "status": "failed", "last_error": error,
            "access_tags": [], "metadata": {}, "source_root": source_root,
        })

    def record_stale(self, tenant: str, document_id: str, reason: str) -> None:
        """Force the next ingest of this document to re-index it (reconcile repair)."""
        self._update(tenant, document_id, {"status": "stale", "last_error": reason})

    def record_deleted(self, tenant: str, document_id: str) -> None:
        self._update(tenant, document_id, {"status": "deleted", "chunk_count": 0})

    def record_source_root(self, tenant: str, document_id: str, source_root: str | None) -> None:
        """An unchanged document read again from another root (or no longer from disk)."""
        self._update(tenant, document_id, {"source_root": source_root})

    def under_root(self, tenant: str, root: str) -> Iterator[DocumentRecord]:
        """The tenant's documents read from local files whose source lies under the folder
        ``root`` (a resolved absolute path; compared by whole path components), not deleted."""
        prefix = root.rstrip("/") + "/"
        query = select(documents).where(
            documents.c.tenant == tenant, documents.c.status != "deleted", documents.c.source_root.is_not(None),
            documents.c.source_uri.startswith(prefix, autoescape=True)).order_by(documents.c.source_uri)
        with self._engine.connect() as conn:
            for row in conn.execute(query.execution_options(yield_per=1000)).mappings():
                yield DocumentRecord(**row)

    def record_forgotten(self, tenant: str, document_id: str) -> None:
        """An erasure: the row stays (ids, version hash, source) so lineage can still name
        the document, but nothing taken from its content (title, metadata, errors) does."""
        self._update(tenant, document_id, {"status": "deleted", "chunk_count": 0, "title": None, "metadata": {},
                                           "last_error": None})

    def indexed(self, collection: str | None = None) -> Iterator[DocumentRecord]:
        query = select(documents).where(documents.c.status == "indexed")
        if collection:
            query = query.where(documents.c.collection == collection)
        with self._engine.connect() as conn:
            for row in conn.execute(query.execution_options(yield_per=1000)).mappings():
                yield DocumentRecord(**row)

    def indexed_per_collection(self) -> dict[str, int]:
        """Indexed documents per collection (index generation), to tell when one is complete."""
        query = (select(documents.c.collection, func.count()).where(documents.c.status == "indexed")
                 .group_by(documents.c.collection))
        with self._engine.connect() as conn:
            return {str(c): int(n) for c, n in conn.execute(query)}

    def list(self, tenant: str, *, status: str | None = None, source_prefix: str | None = None,
             limit: int = 50, offset: int = 0,
             reader_tags: tuple[str, ...] | None = None) -> tuple[list[DocumentRecord], int]:
        conds = [documents.c.tenant == tenant, visible_to(reader_tags)]
        if status:
            conds.append(documents.c.status == status)
        if source_prefix:
            conds.append(documents.c.source_uri.startswith(source_prefix, autoescape=True))
        with self._engine.connect() as conn:
            total = conn.execute(select(func.count()).select_from(documents).where(and_(*conds))).scalar_one()
            rows = conn.execute(
                select(documents).where(and_(*conds))
                .order_by(documents.c.updated_at.desc(), documents.c.document_id).limit(limit).offset(offset)
            ).mappings().all()
        return [DocumentRecord(**r) for r in rows], int(total)

    def _update(self, tenant: str, document_id: str, values: dict[str, Any]) -> None:
        with self._engine.begin() as conn:
            conn.execute(update(documents).where(documents.c.tenant == tenant, documents.c.document_id == document_id)
                         .values(**values, updated_at=datetime.now(UTC)))

    def _upsert(self, tenant: str, document_id: str, values: dict[str, Any]) -> None:
        now = datetime.now(UTC)
        with self._engine.begin() as conn:
            changed = conn.execute(
                update(documents).where(documents.c.tenant == tenant, documents.c.document_id == document_id)
                .values(**values, updated_at=now)
            ).rowcount
            if not changed:
                conn.execute(documents.insert().values(
                    tenant=tenant, document_id=document_id, created_at=now, updated_at=now, **values))
            if "access_tags" in values:
                _replace_tags(conn, tenant, document_id, values["access_tags"])


def _replace_tags(conn: Connection, tenant: str, document_id: str, tags: list[str]) -> None:
    conn.execute(delete(document_access_tags).where(document_access_tags.c.tenant == tenant,
                                                    document_access_tags.c.document_id == document_id))
    rows = [{"tenant": tenant, "document_id": document_id, "tag": t} for t in dict.fromkeys(tags)]
    if rows:
        conn.execute(document_access_tags.insert(), rows)


def visible_to(reader_tags: tuple[str, ...] | None) -> ColumnElement[bool]:
    """SQL form of ``schemas.access.can_read``: untagged, or sharing one of the reader's tags."""
    if reader_tags is None:
        return true()
    tags = document_access_tags.c
    same_document = and_(tags.tenant == documents.c.tenant, tags.document_id == documents.c.document_id)
    untagged = ~exists().where(same_document)
    if not reader_tags:
        return untagged
    return or_(untagged, exists().where(same_document, tags.tag.in_(reader_tags)))
