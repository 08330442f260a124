"""``@math`` and ``@number`` (HotMesh ``services/pipe/functions/math.ts``, ``number.ts``):
JavaScript arithmetic, so NaN and Infinity instead of exceptions, and Math.round's halves."""

from __future__ import annotations

import math
import random
import re
import struct
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from mesh.model.pipe.js import (
    INF,
    JS_WHITESPACE,
    NAN,
    UNDEFINED,
    compare,
    decimal_round,
    is_number,
    js_add,
    js_number,
    js_round,
    number_to_string,
    to_integer,
    to_number,
    to_string,
    to_uint32,
)


def _flatten(operands: tuple[Any, ...]) -> list[Any]:
    flat: list[Any] = []
    for operand in operands:
        flat.extend(operand if isinstance(operand, list) else [operand])
    if not flat:
        raise ValueError("at least one operand is required")
    return flat


def add(*operands: Any) -> Any:
    """Sum (arrays are summed first); ``+`` semantics, so a string operand concatenates."""
    total: Any = 0
    for operand in operands:
        total = js_add(total, add(*operand) if isinstance(operand, list) else operand)
    return total


def subtract(*operands: Any) -> Any:
    flat = _flatten(operands)
    result: Any = flat[0]
    for operand in flat[1:]:
        result = js_number(to_number(result) - to_number(operand))
    return result


def multiply(*operands: Any) -> Any:
    if not operands:
        raise ValueError("at least one operand is required")
    result = 1.0
    for operand in operands:
        result *= to_number(multiply(*operand) if isinstance(operand, list) else operand)
    return js_number(result)


def divide(*operands: Any) -> Any:
    """Left to right; dividing by exactly 0 gives NaN (HotMesh's rule, not Infinity)."""
    flat = _flatten(operands)
    result: Any = flat[0]
    for operand in flat[1:]:
        if is_number(operand) and operand == 0:
            result = NAN
            continue
        a, b = to_number(result), to_number(operand)
        result = _divide(a, b)
    return js_number(to_number(result)) if len(flat) > 1 else result


def _divide(a: float, b: float) -> float:
    if b == 0:
        if a == 0 or math.isnan(a):
            return NAN
        return math.copysign(INF, a) * math.copysign(1.0, b)
    return a / b


def _unary(function: Callable[[float], float]) -> Callable[..., Any]:
    def apply(value: Any = UNDEFINED, *_: Any) -> Any:
        number = to_number(value)
        if math.isnan(number):
            return NAN
        try:
            return js_number(function(number))
        except ValueError:
            return NAN  # outside the domain: JavaScript answers NaN
        except OverflowError:
            return INF

    return apply


def _acosh(x: float) -> float:
    return math.acosh(x)


def _atanh(x: float) -> float:
    if x in (1.0, -1.0):
        return math.copysign(INF, x)
    return math.atanh(x)


def _log(function: Callable[[float], float]) -> Callable[[float], float]:
    def apply(x: float) -> float:
        if x == 0:
            return -INF
        if x == INF:
            return INF
        return function(x)

    return apply


def _cbrt(x: float) -> float:
    if not math.isfinite(x) or x == 0:
        return x
    root = math.copysign(abs(x) ** (1 / 3), x)
    nearest = round(root)
    return float(nearest) if nearest**3 == x else root  # 64 ** (1/3) is 3.9999999999999996


def _ceil(x: float) -> float:
    return x if math.isinf(x) else float(math.ceil(x))


def _floor(x: float) -> float:
    return x if math.isinf(x) else float(math.floor(x))


def _trunc(x: float) -> float:
    return x if math.isinf(x) else float(math.trunc(x))


def _sign(x: float) -> float:
    return 0.0 if x == 0 else math.copysign(1.0, x)


def _fround(x: float) -> float:
    if math.isinf(x):
        return x
    try:
        return float(struct.unpack("f", struct.pack("f", x))[0])
    except OverflowError:
        return math.copysign(INF, x)


def _clz32(value: Any = UNDEFINED, *_: Any) -> int:
    return 32 - to_uint32(value).bit_length()


def _imul(a: Any = UNDEFINED, b: Any = UNDEFINED) -> int:
    product = (to_uint32(a) * to_uint32(b)) % 2**32
    return product - 2**32 if product >= 2**31 else product


def _atan2(y: Any = UNDEFINED, x: Any = UNDEFINED) -> Any:
    a, b = to_number(y), to_number(x)
    return NAN if math.isnan(a) or math.isnan(b) else js_number(math.atan2(a, b))


def _hypot(*values: Any) -> Any:
    numbers = [to_number(v) for v in values]
    if any(math.isinf(n) for n in numbers):
        return INF
    return NAN if any(math.isnan(n) for n in numbers) else js_number(math.hypot(*numbers))


def js_max(*values: Any) -> Any:
    numbers = [to_number(v) for v in values]
    if any(math.isnan(n) for n in numbers):
        return NAN
    return js_number(max(numbers, default=-INF))


def js_min(*values: Any) -> Any:
    numbers = [to_number(v) for v in values]
    if any(math.isnan(n) for n in numbers):
        return NAN
    return js_number(min(numbers, default=INF))


def js_pow(base: Any = UNDEFINED, exponent: Any = UNDEFINED) -> Any:
    x, y = to_number(base), to_number(exponent)
    if math.isnan(y):
        return NAN
    if y == 0:
        return 1
    if math.isnan(x) or (abs(x) == 1 and math.isinf(y)):
        return NAN
    try:
        result = math.pow(x, y)
    except ValueError:
        return NAN  # negative base, fractional exponent
    except OverflowError:
        return INF if x > 0 or (float(y).is_integer() and int(y) % 2 == 0) else -INF
    except ZeroDivisionError:
        return INF
    return js_number(result)


def _random(*_: Any) -> float:
    return random.random()


MATH: dict[str, Callable[..., Any]] = {
    "add": add,
    "subtract": subtract,
    "multiply": multiply,
    "divide": divide,
    "abs": _unary(abs),
    "acos": _unary(math.acos),
    "acosh": _unary(_acosh),
    "asin": _unary(math.asin),
    "asinh": _unary(math.asinh),
    "atan": _unary(math.atan),
    "atan2": _atan2,
    "atanh": _unary(_atanh),
    "cbrt": _unary(_cbrt),
    "ceil": _unary(_ceil),
    "clz32": _clz32,
    "cos": _unary(math.cos),
    "cosh": _unary(math.cosh),
    "exp": _unary(lambda x: 0.0 if x == -INF else math.exp(x)),
    "expm1": _unary(lambda x: -1.0 if x == -INF else math.expm1(x)),
    "floor": _unary(_floor),
    "fround": _unary(_fround),
    "hypot": _hypot,
    "imul": _imul,
    "log": _unary(_log(math.log)),
    "log10": _unary(_log(math.log10)),
    "log1p": _unary(lambda x: -INF if x == -1 else INF if x == INF else math.log1p(x)),
    "log2": _unary(_log(math.log2)),
    "max": js_max,
    "min": js_min,
    "pow": js_pow,
    "random": _random,
    "round": js_round,
    "sign": _unary(_sign),
    "sin": _unary(math.sin),
    "sinh": _unary(math.sinh),
    "sqrt": _unary(math.sqrt),
    "tan": _unary(math.tan),
    "tanh": _unary(math.tanh),
    "trunc": _unary(_trunc),
}


# -- @number ------------------------------------------------------------------------------

_FLOAT_PREFIX = re.compile(r"[+-]?(?:Infinity|\d+\.?\d*(?:[eE][+-]?\d+)?|\.\d+(?:[eE][+-]?\d+)?)")
_DIGITS = "0123456789abcdefghijklmnopqrstuvwxyz"


def parse_float(value: Any = UNDEFINED) -> Any:
    """JavaScript parseFloat: the longest numeric prefix of the trimmed text, else NaN."""
    match = _FLOAT_PREFIX.match(to_string(value).lstrip(JS_WHITESPACE))
    if not match:
        return NAN
    text = match.group(0)
    if text.endswith("Infinity"):
        return -INF if text.startswith("-") else INF
    return js_number(float(text))


def parse_int(value: Any = UNDEFINED, radix: Any = UNDEFINED) -> Any:
    """JavaScript parseInt: optional sign, 0x prefix for radix 16 (or 0), digits of the
    radix up to the first other character; NaN when there are none."""
    text = to_string(value).lstrip(JS_WHITESPACE)
    sign = -1 if text.startswith("-") else 1
    text = text[1:] if text[:1] in "+-" and text else text
    base = int(to_integer(radix)) if radix is not UNDEFINED else 0
    if base != 0 and not 2 <= base <= 36:
        return NAN
    if base in (0, 16) and text[:2].lower() == "0x":
        text, base = text[2:], 16
    base = base or 10
    digits = ""
    for character in text.lower():
        if character in _DIGITS[:base]:
            digits += character
        else:
            break
    return sign * int(digits, base) if digits else NAN


def _fraction_digits(value: Any, low: int, high: int, name: str) -> int:
    digits = int(to_integer(value))
    if not low <= digits <= high:
        raise ValueError(f"@number.{name} digits must be between {low} and {high}")
    return digits


def to_fixed(value: Any = UNDEFINED, digits: Any = UNDEFINED) -> str:
    number = to_number(value)
    places = _fraction_digits(0 if digits is UNDEFINED else digits, 0, 100, "toFixed")
    if not math.isfinite(number) or abs(number) >= 1e21:
        return number_to_string(number)
    if number == 0:
        number = 0.0  # -0 prints as 0, but a negative that rounds to zero keeps its sign
    return format(decimal_round(number, places), "f")


def to_exponential(value: Any = UNDEFINED, digits: Any = UNDEFINED) -> str:
    number = to_number(value)
    if not math.isfinite(number):
        return number_to_string(number)
    if digits is UNDEFINED:
        mantissa, _, exponent = f"{Decimal(repr(number)):e}".partition("e")
        mantissa = mantissa.rstrip("0").rstrip(".") if "." in mantissa else mantissa
    else:
        places = _fraction_digits(digits, 0, 100, "toExponential")
        mantissa, _, exponent = f"{_round_significant(number, places + 1):.{places}e}".partition(
            "e"
        )
    exponent_value = int(exponent)
    return f"{mantissa}e{'+' if exponent_value >= 0 else '-'}{abs(exponent_value)}"


def _round_significant(number: float, significant: int) -> Decimal:
    if number == 0:
        return Decimal(0)
    exact = Decimal(number)
    return decimal_round(number, significant - exact.adjusted() - 1) if significant else exact


def to_precision(value: Any = UNDEFINED, precision: Any = UNDEFINED) -> str:
    number = to_number(value)
    if precision is UNDEFINED or not math.isfinite(number):
        return number_to_string(number)
    significant = _fraction_digits(precision, 1, 100, "toPrecision")
    rounded = _round_significant(number, significant)
    exponent = rounded.adjusted() if number else 0
    if exponent < -6 or exponent >= significant:
        return to_exponential(float(rounded), significant - 1)
    return format(rounded, f".{max(significant - exponent - 1, 0)}f")


def _is_even(value: Any = UNDEFINED) -> bool:
    number = to_number(value)
    return not math.isnan(number) and math.fmod(number, 2) == 0


def _is_odd(value: Any = UNDEFINED) -> bool:
    number = to_number(value)
    return not math.isnan(number) and math.fmod(number, 2) != 0


NUMBER: dict[str, Callable[..., Any]] = {
    "isFinite": lambda value=UNDEFINED: is_number(value) and math.isfinite(value),
    "isEven": _is_even,
    "isOdd": _is_odd,
    "isInteger": lambda value=UNDEFINED: (
        is_number(value) and math.isfinite(value) and float(value).is_integer()
    ),
    "isNaN": lambda value=UNDEFINED: is_number(value) and math.isnan(value),
    "parseFloat": parse_float,
    "parseInt": parse_int,
    "toFixed": to_fixed,
    "toExponential": to_exponential,
    "toPrecision": to_precision,
    "gte": lambda a=UNDEFINED, b=UNDEFINED: compare(a, b, ">="),
    "lte": lambda a=UNDEFINED, b=UNDEFINED: compare(a, b, "<="),
    "gt": lambda a=UNDEFINED, b=UNDEFINED: compare(a, b, ">"),
    "lt": lambda a=UNDEFINED, b=UNDEFINED: compare(a, b, "<"),
    "max": js_max,
    "min": js_min,
    "pow": js_pow,
    "round": js_round,
    "add": add,
    "subtract": subtract,
    "multiply": multiply,
    "divide": divide,
}
