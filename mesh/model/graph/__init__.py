"""Workflow graphs: the manifest model (YAML apps of graphs of activities), its validation
(every problem reported with its path, before anything is stored), ``$ref`` resolution and
the JSON Schema subset used for graph input. Pure: no I/O. Import from the modules:
``manifest``, ``validation``, ``refs``, ``schema``."""
