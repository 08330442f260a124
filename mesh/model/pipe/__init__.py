"""``@pipe``: HotMesh's data-mapping language, with JavaScript's value semantics.

Pure (no I/O): ``resolve(mapping, data)`` evaluates a mapping value against the job's data.
Families so far: array, bitwise, conditional, json, logical, math, number, object, string,
symbol, unary. ``@date`` and ``@cron`` come with the engine.
"""

from mesh.model.pipe.evaluator import FUNCTIONS, Pipe, PipeError, function_named, resolve
from mesh.model.pipe.js import UNDEFINED, Undefined
from mesh.model.pipe.text import to_json_compatible

__all__ = [
    "FUNCTIONS",
    "UNDEFINED",
    "Pipe",
    "PipeError",
    "Undefined",
    "function_named",
    "resolve",
    "to_json_compatible",
]
