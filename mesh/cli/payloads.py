"""JSON given on the command line: inline, ``@path`` (a file) or ``-`` (standard input).

An argument is limited by the operating system (128 KB on Linux) and by the shell's quoting;
a file or a pipe is not. Either way the text passes :func:`~mesh.model.messages.parse_json`
(nesting, NUL characters, lone surrogates) and is at most :data:`MAX_INPUT_BYTES`.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from mesh.errors import InvalidPayload
from mesh.model.messages import parse_json

MAX_INPUT_BYTES = 16 << 20


def json_argument(text: str, what: str) -> Any:
    """The JSON value of a command-line argument ``text``: JSON itself, ``@path`` or ``-``."""
    if text == "-":
        raw = sys.stdin.buffer.read(MAX_INPUT_BYTES + 1)
        source = "standard input"
    elif text.startswith("@"):
        path = Path(text[1:])
        source = str(path)
        try:
            with path.open("rb") as file:
                raw = file.read(MAX_INPUT_BYTES + 1)
        except OSError as error:
            raise InvalidPayload(
                f"{what}: cannot read {source!r} ({error.strerror or error}); give a readable "
                "file after @, '-' for standard input, or the JSON itself"
            ) from None
    else:
        return parse_json(text, what)
    if len(raw) > MAX_INPUT_BYTES:
        raise InvalidPayload(
            f"{what} from {source} is over {MAX_INPUT_BYTES >> 20} MB; send less, or store "
            "the bulk elsewhere and pass a reference"
        )
    try:
        decoded = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise InvalidPayload(
            f"{what} from {source} is not UTF-8 (byte {error.start}); save it as UTF-8"
        ) from None
    return parse_json(decoded, f"{what} (from {source})")
