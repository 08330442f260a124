"""JavaScript value semantics for ``@pipe`` functions, which HotMesh defines in JavaScript.

Workflow data is JSON, but JavaScript's operators coerce: ``"5" > 10`` is false, ``1 + "2"``
is ``"12"``, ``Math.round(-2.5)`` is -2, a missing property is ``undefined`` (not ``null``).
These helpers reproduce the ECMAScript rules (ToNumber, ToString, ToBoolean, ``==``, ``===``,
relational comparison, ``+``) for JSON-shaped Python values. Known gap: string indices count
code points, where JavaScript counts UTF-16 units (only characters outside the BMP differ).
"""

from __future__ import annotations

import math
import re
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, Final

from mesh.model.pipe.jsdate import JSDate, full_string

NAN: Final = float("nan")
INF: Final = float("inf")


class Undefined:
    """JavaScript's ``undefined``: a missing property or argument. Falsy; JSON drops it."""

    _instance: Undefined | None = None

    def __new__(cls) -> Undefined:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __bool__(self) -> bool:
        return False

    def __repr__(self) -> str:
        return "undefined"


UNDEFINED: Final = Undefined()

# ECMAScript WhiteSpace and LineTerminator code points (what trim() removes).
JS_WHITESPACE: Final = (
    "\t\n\v\f\r \u00a0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009"
    "\u200a\u2028\u2029\u202f\u205f\u3000\ufeff"
)


def is_nullish(value: Any) -> bool:
    return value is None or value is UNDEFINED


def is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def truthy(value: Any) -> bool:
    """ToBoolean: false, 0, NaN, "", null and undefined are falsy; [] and {} are truthy."""
    if is_nullish(value) or value is False:
        return False
    if is_number(value):
        return not (value == 0 or math.isnan(value))
    if isinstance(value, str):
        return value != ""
    return True


_NUMERIC = re.compile(r"[+-]?(?:\d+\.?\d*(?:[eE][+-]?\d+)?|\.\d+(?:[eE][+-]?\d+)?)")


def to_number(value: Any) -> float:
    """ToNumber."""
    if value is True:
        return 1.0
    if value is False or value is None:
        return 0.0
    if value is UNDEFINED:
        return NAN
    if is_number(value):
        return float(value)
    if isinstance(value, str):
        text = value.strip(JS_WHITESPACE)
        if text == "":
            return 0.0
        if text in ("Infinity", "+Infinity"):
            return INF
        if text == "-Infinity":
            return -INF
        if re.fullmatch(r"0[xX][0-9a-fA-F]+", text):
            return float(int(text[2:], 16))
        if re.fullmatch(r"0[oO][0-7]+", text):
            return float(int(text[2:], 8))
        if re.fullmatch(r"0[bB][01]+", text):
            return float(int(text[2:], 2))
        return float(text) if _NUMERIC.fullmatch(text) else NAN
    if isinstance(value, JSDate):
        return value.ms
    if isinstance(value, list):
        return to_number(to_string(value))
    return NAN  # objects (ToPrimitive gives "[object Object]")


def to_integer(value: Any) -> float:
    """ToIntegerOrInfinity."""
    number = to_number(value)
    if math.isnan(number):
        return 0.0
    if math.isinf(number):
        return number
    return float(math.trunc(number))


def to_int32(value: Any) -> int:
    number = to_number(value)
    if math.isnan(number) or math.isinf(number):
        return 0
    unsigned = math.trunc(number) % 2**32
    return unsigned - 2**32 if unsigned >= 2**31 else unsigned


def to_uint32(value: Any) -> int:
    number = to_number(value)
    if math.isnan(number) or math.isinf(number):
        return 0
    return math.trunc(number) % 2**32


def number_to_string(number: float) -> str:
    """Number::toString for finite and non-finite numbers (shortest round-trip digits)."""
    number = float(number)
    if math.isnan(number):
        return "NaN"
    if math.isinf(number):
        return "Infinity" if number > 0 else "-Infinity"
    if number == 0:
        return "0"
    if number.is_integer() and abs(number) < 1e21:
        return str(int(number))
    text = repr(number)  # shortest round-trip, as JavaScript; only the exponent style differs
    if "e" in text:
        mantissa, exponent = text.split("e")
        exponent_value = int(exponent)
        if -7 < exponent_value < 21:
            return format(Decimal(text), "f")
        return f"{mantissa.removesuffix('.0')}e{'+' if exponent_value > 0 else '-'}{abs(exponent_value)}"
    return text


def to_string(value: Any) -> str:
    """ToString (with Array.prototype.join for arrays and "[object Object]" for objects)."""
    if isinstance(value, str):
        return value
    if value is None:
        return "null"
    if value is UNDEFINED:
        return "undefined"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if is_number(value):
        return number_to_string(float(value))
    if isinstance(value, list):
        return ",".join("" if is_nullish(item) else to_string(item) for item in value)
    if isinstance(value, JSDate):
        return full_string(value)
    return "[object Object]"


def js_number(number: float) -> int | float:
    """A numeric result as JSON would carry it: integral values as int (no ``.0``)."""
    if math.isfinite(number) and number.is_integer() and abs(number) < 2**53:
        return int(number)
    return number


def to_primitive(value: Any) -> Any:
    if isinstance(value, list | dict | JSDate):
        return to_string(value)
    return value


def js_add(left: Any, right: Any) -> Any:
    """The ``+`` operator: string concatenation if either primitive is a string."""
    left, right = to_primitive(left), to_primitive(right)
    if isinstance(left, str) or isinstance(right, str):
        return to_string(left) + to_string(right)
    return js_number(to_number(left) + to_number(right))


def strict_equals(left: Any, right: Any) -> bool:
    """``===``: same type and value; objects and arrays only equal themselves."""
    if is_number(left) and is_number(right):
        return float(left) == float(right)  # NaN is never equal
    if isinstance(left, bool) or isinstance(right, bool):
        return left is right
    if isinstance(left, list | dict | JSDate) or isinstance(right, list | dict | JSDate):
        return left is right
    return type(left) is type(right) and left == right


def loose_equals(left: Any, right: Any) -> bool:
    """``==`` (IsLooselyEqual)."""
    if is_nullish(left) or is_nullish(right):
        return is_nullish(left) and is_nullish(right)
    if type(left) is type(right) or (is_number(left) and is_number(right)):
        return strict_equals(left, right)
    if isinstance(left, bool):
        return loose_equals(to_number(left), right)
    if isinstance(right, bool):
        return loose_equals(left, to_number(right))
    if is_number(left) and isinstance(right, str):
        return float(left) == to_number(right)
    if isinstance(left, str) and is_number(right):
        return to_number(left) == float(right)
    if isinstance(left, list | dict) and not isinstance(right, list | dict):
        return loose_equals(to_primitive(left), right)
    if isinstance(right, list | dict) and not isinstance(left, list | dict):
        return loose_equals(left, to_primitive(right))
    return False


def compare(left: Any, right: Any, operator: str) -> bool:
    """``<``, ``>``, ``<=``, ``>=``: strings compare as strings, anything else as numbers
    (Dates by their time value); any NaN makes the comparison false."""
    left = left.ms if isinstance(left, JSDate) else to_primitive(left)
    right = right.ms if isinstance(right, JSDate) else to_primitive(right)
    if isinstance(left, str) and isinstance(right, str):
        a: Any = left
        b: Any = right
    else:
        a, b = to_number(left), to_number(right)
        if math.isnan(a) or math.isnan(b):
            return False
    if operator == "<":
        return bool(a < b)
    if operator == ">":
        return bool(a > b)
    if operator == "<=":
        return bool(a <= b)
    return bool(a >= b)


def js_round(value: Any) -> int | float:
    """Math.round: halves round toward +Infinity (-2.5 -> -2)."""
    number = to_number(value)
    if not math.isfinite(number):
        return number
    return js_number(float(math.floor(number + 0.5)))


def decimal_round(number: float, places: int) -> Decimal:
    """``number`` rounded to ``places`` decimals, ties away from zero, on its exact binary
    value (what toFixed does: 2.5 -> 3, but 1.005 -> 1.00 because 1.005 is 1.00499...)."""
    return Decimal(number).quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP)


def relative_index(length: int, value: Any, default: int) -> int:
    """A start/end argument of slice(): negative counts from the end; clamped to [0, length]."""
    if value is UNDEFINED:
        return default
    index = to_integer(value)
    if index < 0:
        return int(max(length + index, 0))
    return int(min(index, length))


def member(target: Any, key: Any) -> Any:
    """``target[key]`` on JSON-shaped values; ``undefined`` when there is no such member."""
    if isinstance(target, dict):
        return target.get(to_string(key), UNDEFINED)
    if isinstance(target, list | str):
        if key == "length" and not isinstance(key, bool):
            return len(target)
        number = to_number(key) if not isinstance(key, str) or key.strip() else NAN
        if math.isfinite(number) and number.is_integer() and 0 <= number < len(target):
            return target[int(number)]
    return UNDEFINED


def _array_index(key: str) -> int | None:
    """The integer a canonical array-index key names ("0", "17"; not "01" or "-1")."""
    if key.isdigit() and (key == "0" or not key.startswith("0")) and int(key) < 2**32 - 1:
        return int(key)
    return None


def own_keys(target: dict[str, Any]) -> list[str]:
    """An object's keys in JavaScript's order: array-index keys ascending, then the others in
    insertion order (what Object.keys and JSON.stringify produce)."""
    indexed = sorted((index, key) for key in target if (index := _array_index(key)) is not None)
    return [key for _, key in indexed] + [key for key in target if _array_index(key) is None]
