"""The one error type a user can cause.

Every mistake a user can make (a missing model, an unknown site, an empty split, malformed YAML, a NaN
loss) raises :class:`WorkbenchError` with a one-line message that names the problem and the fix. The CLI
prints it as ``error: <message>`` on stderr and exits with status 2; anything else is a bug and keeps its
traceback (exit 1).
"""

from __future__ import annotations


class WorkbenchError(Exception):
    """A user-facing error: one line, naming the problem and the fix."""

    def __init__(self, message: str):
        super().__init__(" ".join(str(message).split()))


def require(condition: bool, message: str) -> None:
    """Raise :class:`WorkbenchError` with ``message`` unless ``condition`` holds."""
    if not condition:
        raise WorkbenchError(message)
