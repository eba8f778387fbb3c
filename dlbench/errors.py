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
