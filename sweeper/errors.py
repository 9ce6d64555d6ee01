"""The one error type users meet.

Every refusal meant for a person (a bad flag, a malformed study file, an unknown study, a storage URL
that cannot be used) is a `SweeperError`: `field` names what to change, `message` says what is wrong
and what is allowed. `sweeper.cli.main` catches it once and prints `sweeper: error: FIELD: MESSAGE`
with exit status 2. Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations


class SweeperError(Exception):
    """A refusal for the user. `str(err)` is "FIELD: MESSAGE" (just MESSAGE when `field` is empty)."""

    field_default = ""
    """The field a subclass names when the raiser gives only a message (e.g. "--storage")."""

    def __init__(self, field: str, message: str | None = None):
        if message is None:  # SubError("message"): the subclass's own field
            field, message = self.field_default, field
        self.field = field
        self.message = message
        super().__init__(f"{field}: {message}" if field else message)
