"""The ``mesh bench`` workloads, each printing JSON: ``streams`` (with the raw-SQL
``baseline``), ``scale`` (nodes as processes), ``workflows`` (the engine) and ``hotmesh``
(the same workload on HotMesh, with its pinned kit in ``kit/``)."""
