"""The ``mesh bench`` workloads, each printing JSON: ``streams`` (with the raw-SQL
``baseline``), ``scale`` (nodes as processes), ``workflows`` (the engine), ``durable``
(workflows written as code), ``idle`` (what idle nodes cost) and ``hotmesh`` (the same
workloads on HotMesh, with its pinned kit in ``kit/``).

A package of its own, beside ``mesh``: the ``mesh bench`` command imports it when it runs,
and no node, client or other command loads it (``tests/unit/test_layout.py``). Its SQL is in
``sql/bench.sql``, loaded by :mod:`benchmarks.db`, never by the product's query registry."""
