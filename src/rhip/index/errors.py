"""Errors of the index engine (指数引擎).

`rhip.index` stands apart from the platform, so it does not derive from
`rhip.kernel.errors`; one plain family is enough: every bad input names the
file, the row, the column and the reason, so an analyst can fix it without
reading code.
"""

from __future__ import annotations


class IndexInputError(ValueError):
    """Bad framework, data or pipeline input.

    >>> str(IndexInputError("reason here", file="iMeta.csv", row=4, column="Weight"))
    'iMeta.csv, row 4, column Weight: reason here'
    """

    def __init__(
        self,
        reason: str,
        *,
        file: str | None = None,
        row: int | str | None = None,
        column: str | None = None,
    ) -> None:
        self.reason = reason
        self.file = file
        self.row = row
        self.column = column
        super().__init__(self._message())

    def _message(self) -> str:
        where = []
        if self.file:
            where.append(str(self.file))
        if self.row is not None:
            where.append(f"row {self.row}")
        if self.column:
            where.append(f"column {self.column}")
        return f"{', '.join(where)}: {self.reason}" if where else self.reason


class IndexMethodError(IndexInputError):
    """A method cannot run on the data it was given (e.g. geometric mean over zeros)."""
