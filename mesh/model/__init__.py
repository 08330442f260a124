"""The pure layer: messages, identifiers, durations, and decisions (retry, restart).

Nothing here performs I/O or imports trio or psycopg, so everything here is tested with plain
function calls.
"""
