"""The artifact engine: canonical hashing, pure stages, a content-addressed store and the engine that
resolves stage calls against it. It is the bottom layer of cirkit and imports nothing else from it."""

from .arrays import ArrayStream, CorruptArray, StoredArray
from .codec import CodecError, artifact_type, lazy_fields
from .executor import Artifact, Engine, Pending, StageOutputError, Step
from .fingerprint import code_fingerprint, source_fingerprint
from .hashing import FileRef, HashError, digest, file_digest
from .partial import PartialShard
from .stage import Stage, StageDefinitionError, stage
from .store import CorruptionWarning, MissingContent, Store

__all__ = [
    "ArrayStream", "Artifact", "CodecError", "CorruptArray", "StoredArray", "lazy_fields", "CorruptionWarning", "Engine", "FileRef", "HashError", "MissingContent",
    "PartialShard", "Pending", "Stage", "StageDefinitionError", "StageOutputError", "Step", "Store", "artifact_type",
    "code_fingerprint", "digest", "file_digest", "source_fingerprint", "stage",
]
