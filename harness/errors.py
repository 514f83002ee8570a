"""Errors that reach the user as one line and exit code 2 (never a traceback)."""

from __future__ import annotations


class UserError(Exception):
    """Bad input or configuration: the message names what is wrong, where, and the fix."""

    exit_code = 2

    def __init__(self, what: str, fix: str | None = None):
        self.what = what
        self.fix = fix
        super().__init__(self.line())

    def line(self) -> str:
        text = " ".join(self.what.split())
        if self.fix:
            text += " -- fix: " + " ".join(self.fix.split())
        return text
