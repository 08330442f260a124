"""The Postgres layer: the only code that imports psycopg.

``database`` bridges the psycopg_pool pool into trio, ``streams`` is the message bus,
``listener`` the node's one LISTEN connection, ``migrations`` and ``embedded`` set the database
up. SQL lives in ``sql/``.
"""
