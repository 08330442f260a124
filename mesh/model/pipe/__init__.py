"""``@pipe``: HotMesh's data-mapping language, with JavaScript's value semantics.

Pure (no I/O): ``resolve(mapping, data)`` evaluates a mapping value against the job's data.
All 13 families: array, bitwise, conditional, cron, date, json, logical, math, number,
object, string, symbol, unary: 201 functions, the 197 of HotMesh's ``services/pipe/functions``
sources (``@number`` has the four arithmetic helpers too) and four short aliases in
``@conditional`` (gte, gt, lte, lt). The reference's ``@date.yyyymmdd`` is not in those
sources, so it is absent.
"""

from mesh.errors import PipeError
from mesh.model.pipe.evaluator import FUNCTIONS, Pipe, function_named, resolve
from mesh.model.pipe.js import UNDEFINED, Undefined
from mesh.model.pipe.jsdate import JSDate
from mesh.model.pipe.text import to_json_compatible

__all__ = [
    "FUNCTIONS",
    "UNDEFINED",
    "JSDate",
    "Pipe",
    "PipeError",
    "Undefined",
    "function_named",
    "resolve",
    "to_json_compatible",
]
