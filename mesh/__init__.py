"""mesh: a durable, self-coordinating workflow mesh on one Postgres database."""

from mesh.errors import MeshError, NonRetryableError
from mesh.model.messages import Pending
from mesh.model.retry import RetryPolicy

__version__ = "0.1.0"

__all__ = ["MeshError", "NonRetryableError", "Pending", "RetryPolicy", "__version__"]
