"""User input quoted in answers and logs, at a bounded length.

A 5 MB input name once came back whole in the 400 and was logged as one 5 MB line (logs rotate at 10 MB x 3: a
few requests wiped them), and over gRPC the same error exceeded the metadata limit, so the client got
RESOURCE_EXHAUSTED instead of INVALID_ARGUMENT. Every message the server sends or logs goes through `message`;
every piece of user input quoted inside one through `quote`.
"""

from __future__ import annotations

QUOTE = 64  # characters of one user-supplied value inside a message
LIMIT = 1024  # characters of a whole message (answer body, gRPC status details, log line)


def quote(value: object, limit: int = QUOTE) -> str:
    """repr() of `value`'s text, cut to `limit` characters with the full length said."""
    text = value if isinstance(value, str) else str(value)
    if len(text) <= limit:
        return repr(text)
    return f"{text[:limit]!r}… ({len(text)} characters)"


def message(text: str, limit: int = LIMIT) -> str:
    """`text` cut to `limit` characters with the full length said."""
    return text if len(text) <= limit else f"{text[:limit]}… ({len(text)} characters in all)"
