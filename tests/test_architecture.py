"""The layout in DESIGN.md is the architecture: who may import whom, checked by parsing
every source file's imports with ``ast`` (nothing is imported), and each package's
curated public surface (``__all__``) pinned."""

from __future__ import annotations

import ast
import importlib
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
CORE = ("ingest", "retrieval", "lineage", "schemas")
STDLIB = set(sys.stdlib_module_names) | {"__future__"}

#: Each package's public surface. Changing one is a decision: update it here on purpose.
PUBLIC_SURFACE = {
    "ingest.chunk": [
        "ChunkerConfig", "CodeChunker", "CodeConfig", "FixedConfig", "FixedTokenChunker", "RecursiveChunker",
        "RecursiveConfig", "available_chunkers", "count_tokens", "get_encoding", "load_chunker",
    ],
    "ingest.embed": [
        "BatchingConfig", "CostEstimate", "EmbeddingCache", "EmbeddingClient", "EmbeddingStats",
        "OverLongInputError", "OverLongPolicy", "SparseConfig",
    ],
    "ingest.dedup": ["DedupConfig", "Match", "MinHashSketcher", "NearDuplicates", "Promotion", "Retirement", "Retirer",
                     "SignatureStore", "Sketches", "StoredChunk"],
    "ingest.extract": ["ExtractionLimits", "detect_media_type", "extract_document", "supported_media_types"],
    "ingest.redact": ["ENTITY_TYPES", "MODES", "Finding", "Mode", "PiiPolicy", "PiiRedactor", "TenantRule",
                      "redact_document", "redact_value"],
    "lineage": [
        "AnswerPage", "AnswerStateError", "AnswerTrace", "AnswerUse", "ArchivedText", "DuplicateAnswerError",
        "ForgetReport", "IcebergLanding", "InvalidCursorError", "InvalidEventError", "LandingError", "LineageError",
        "LineageQueries", "LineageStoreError", "OutboxEvent", "OutboxRelay", "RelayReport", "RelayTarget",
        "RelayWorker", "SourceTrace", "SqlChunkArchive", "SqlLineageStore", "build_answer_event",
        "build_document_event", "default_catalog_properties", "parse", "resolve_catalog_properties", "serialize",
        "validate_event",
    ],
    "retrieval": ["Retrieval", "RetrievalConfig", "RetrievalTimings", "Retriever"],
    "retrieval.generation": ["ExtractiveGenerator", "OpenAIChatGenerator"],
    "retrieval.index": ["HnswConfig", "QdrantEdgeIndex", "QdrantServerIndex", "collection_name"],
    "retrieval.rerank": ["HttpReranker", "RerankError"],
}


def module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def sources(package: str) -> list[Path]:
    return sorted((REPO / package).rglob("*.py"))


def imports(path: Path) -> Iterator[tuple[int, str]]:
    package = module_name(path) if path.name == "__init__.py" else module_name(path).rpartition(".")[0]
    return imports_in(path.read_text(encoding="utf-8"), package)


def imports_in(source: str, package: str) -> Iterator[tuple[int, str]]:
    """(line, absolute dotted name) of every import in ``source`` (a module of ``package``),
    lazy ones inside functions included; ``from a import b`` yields ``a.b`` so that
    submodules imported by name are seen."""
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                yield node.lineno, base if alias.name == "*" else f"{base}.{alias.name}"


def violations(package: str, allowed: object) -> list[str]:
    """Imports of ``package``'s files for which ``allowed(name)`` is false."""
    found = []
    for path in sources(package):
        for line, name in imports(path):
            if not allowed(name):  # type: ignore[operator]
                found.append(f"{path.relative_to(REPO)}:{line} imports {name}")
    return found


def top(name: str) -> str:
    return name.split(".", 1)[0]


def is_under(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def test_every_package_has_sources() -> None:
    for package in (*CORE, "services"):
        assert sources(package), f"{package}/ has no Python files"


def test_the_import_parser_sees_relative_lazy_and_from_imports() -> None:
    source = ("import os.path\nfrom . import registry\nfrom ..schemas import ids\n"
              "def f():\n    from services.cli import app\n")
    assert sorted(name for _, name in imports_in(source, "ingest.embed")) == [
        "ingest.embed.registry", "ingest.schemas.ids", "os.path", "services.cli.app"]
    assert {n for _, n in imports(REPO / "ingest" / "pipeline.py")} >= {"ingest.embed.client.EmbeddingClient",
                                                                        "schemas.ids"}


@pytest.mark.parametrize("package", CORE)
def test_the_core_never_imports_services(package: str) -> None:
    assert violations(package, lambda name: top(name) != "services") == []


def test_schemas_import_only_the_stdlib_and_pydantic() -> None:
    assert violations("schemas", lambda name: top(name) in STDLIB | {"pydantic", "schemas"}) == []


def test_ingest_imports_neither_retrieval_nor_lineage() -> None:
    assert violations("ingest", lambda name: top(name) not in {"retrieval", "lineage"}) == []


def test_retrieval_imports_from_ingest_only_the_embedding_client() -> None:
    assert violations("retrieval", lambda name: top(name) != "ingest" or is_under(name, "ingest.embed")) == []
    assert violations("retrieval", lambda name: top(name) != "lineage") == []


def test_lineage_imports_neither_ingest_nor_retrieval() -> None:
    assert violations("lineage", lambda name: top(name) not in {"ingest", "retrieval"}) == []


#: The runnables of ``services``: they parse input, call a use case of the Application and
#: render its result. Only the composition root (services/application.py, over
#: services/wiring.py) builds stores and clients.
ADAPTERS = sorted([REPO / "services" / "cli.py", REPO / "services" / "lineage_cli.py",
                   *(REPO / "services" / "api").glob("*.py"),
                   *(p for p in (REPO / "services" / "worker.py",) if p.exists())])
#: What an adapter never imports: the wiring, the stores and the engines behind the use cases.
ADAPTER_FORBIDDEN_IMPORTS = ("services.wiring", "services.db", "sqlalchemy", "ingest.registry.DocumentRegistry",
                             "ingest.pipeline.IngestPipeline", "ingest.sources", "ingest.fetch", "ingest.reconcile",
                             "retrieval.index", "retrieval.retriever", "lineage.store", "lineage.queries",
                             "lineage.iceberg", "lineage.relay", "lineage.LineageQueries", "lineage.SqlLineageStore")
#: Attributes that mean an adapter reached past the use cases into the stores.
ADAPTER_FORBIDDEN_ATTRIBUTES = {"components", "engine", "index", "registry", "pipeline", "lineage_lake",
                                "chunk_archive", "embedder", "serving_collection"}


def adapter_violations(source: str, where: str) -> list[str]:
    found = [f"{where}:{line} imports {name}" for line, name in imports_in(source, "services")
             if any(is_under(name, banned) for banned in ADAPTER_FORBIDDEN_IMPORTS)]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Attribute) and node.attr in ADAPTER_FORBIDDEN_ATTRIBUTES:
            found.append(f"{where}:{node.lineno} reaches .{node.attr}")
    return found


@pytest.mark.parametrize("path", ADAPTERS, ids=lambda p: str(p.relative_to(REPO)))
def test_adapters_only_call_use_cases(path: Path) -> None:
    assert adapter_violations(path.read_text(encoding="utf-8"), str(path.relative_to(REPO))) == []


def test_the_adapter_rule_can_fail() -> None:
    found = adapter_violations("from services.wiring import Components\n"
                               "def f(rt):\n    return rt.components.registry.get('t', 'd')\n", "bad.py")
    assert found == ["bad.py:1 imports services.wiring.Components", "bad.py:3 reaches .registry",
                     "bad.py:3 reaches .components"]


def public_surface(package: str) -> list[str] | None:
    init = REPO / package.replace(".", "/") / "__init__.py"
    tree = ast.parse(init.read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets):
            return list(ast.literal_eval(node.value))
    return None


def bound_names(package: str) -> set[str]:
    tree = ast.parse((REPO / package.replace(".", "/") / "__init__.py").read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.Import | ast.ImportFrom):
            names.update(a.asname or a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.FunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            names.update(t.id for t in node.targets if isinstance(t, ast.Name))
    return names


@pytest.mark.parametrize("package", sorted(PUBLIC_SURFACE))
def test_public_surface_is_pinned(package: str) -> None:
    surface = public_surface(package)
    assert surface == PUBLIC_SURFACE[package]
    module = importlib.import_module(package)  # lazy (PEP 562) exports resolve through __getattr__
    missing = [n for n in surface if n not in bound_names(package) and not hasattr(module, n)]
    assert missing == [], "every exported name is defined, imported or lazily resolvable"


def test_every_package_with_all_is_pinned() -> None:
    packages = {module_name(init) for p in (*CORE, "services") for init in (REPO / p).rglob("__init__.py")}
    with_all = {p for p in packages if public_surface(p) is not None}
    assert with_all == set(PUBLIC_SURFACE), "pin the new package's __all__ in PUBLIC_SURFACE"
