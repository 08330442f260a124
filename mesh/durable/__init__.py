"""Workflows written as code: the client side (handles). The in-workflow API is
``mesh.model.durable.api``; the runtime is ``mesh.runtime.durable`` and ``actors.durable``."""
