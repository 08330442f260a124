"""Graphs: apps of YAML workflow graphs, decided purely.

The manifest model and everything read from it: ``manifest`` (the YAML app, graphs of
activities), ``validation`` (every problem reported with its path, before anything is
stored), ``refs`` (``$ref`` resolution), ``schema`` (the JSON Schema subset of graph input),
``app`` (a compiled version). The engine's core: ``state`` (a job in memory), ``batch``
(a batch of engine messages applied to the jobs it names), ``executor`` (what each message
does to a job: HotMesh's activity legs, transitions and completion), one module per activity
type in ``activities/``, ``mapping`` (``@pipe`` input and output maps), ``effects`` (signals,
child interrupts and announcements) and ``client`` (the messages clients send). No I/O:
:mod:`mesh.pg.jobs` loads and saves the state, :mod:`mesh.pg.graphs` runs a batch in one
transaction, :mod:`mesh.runtime.graphs` runs batches for a node.
"""
