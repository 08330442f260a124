"""The workflow engine's pure core: a job's state in memory and what each engine message
does to it (HotMesh's activity legs, transitions and completion, reference §5). No I/O:
``mesh.pg.jobs`` loads and saves the state, ``mesh.runtime.engine`` runs it per batch."""
