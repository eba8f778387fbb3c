"""The one error type users see: bad input, reported as `file: field: message`."""

from __future__ import annotations


class InputError(Exception):
    """Bad user input: a scenario, an option, a data file.

    The CLI prints ``str(error)`` on one line and exits with code 2, so the
    message must name what is wrong and what is allowed.
    """

    def __init__(self, message: str, *, field: str | None = None, source: str | None = None):
        self.message = message
        self.field = field
        self.source = source
        super().__init__(str(self))

    def __str__(self) -> str:
        parts = [p for p in (self.source, self.field, self.message) if p]
        return ": ".join(parts)

    def within(self, *, field_prefix: str | None = None, source: str | None = None) -> "InputError":
        """The same error, located inside a larger document (a file, a table)."""
        field = self.field
        if field_prefix:
            field = f"{field_prefix}.{field}" if field else field_prefix
        return InputError(self.message, field=field, source=source or self.source)


def one_of(values) -> str:
    """'expected one of a, b, c' for error messages."""
    return "expected one of " + ", ".join(str(v) for v in sorted(values))


class MissingDependency(InputError, ImportError):
    """An optional package a feature needs is not installed; the message names
    the pip command. Caught as InputError (bad input is one type) and as
    ImportError (what Python code expects of a missing module)."""


#: the most characters of an error text a row, a terminal line or a report carries
ERROR_CHARS = 2000


def capped(text: str, limit: int = ERROR_CHARS) -> str:
    """``text``, or its beginning and end with how much was cut between them
    when it is longer than ``limit`` (a worker that prints 5 MB on one line
    must not put 5 MB into a row, a terminal and every report)."""
    if len(text) <= limit:
        return text
    keep = limit // 2
    return f"{text[:keep]} [... {len(text) - 2 * keep:,} characters cut ...] {text[-keep:]}"
