"""Workflow graphs: the manifest model (YAML apps of graphs of activities), its validation
(every problem reported with its path, before anything is stored), ``$ref`` resolution and
the JSON Schema subset used for graph input. Pure: no I/O."""

from mesh.model.graph.manifest import Activity, App, Graph, HookRule, Manifest, Transition
from mesh.model.graph.schema import schema_problems
from mesh.model.graph.validation import ManifestInvalid, validate_manifest

__all__ = [
    "Activity",
    "App",
    "Graph",
    "HookRule",
    "Manifest",
    "ManifestInvalid",
    "Transition",
    "schema_problems",
    "validate_manifest",
]
