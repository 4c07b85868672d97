"""One root error type for everything a user can cause or fix.

The CLI catches `FleetError`, prints it and exits non-zero; anything else is a
bug and is allowed to show its traceback.
"""

from __future__ import annotations


class FleetError(Exception):
    """A problem the user can understand and act on."""

    def __init__(self, message: str, *, hint: str | None = None, host: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.host = host

    def __str__(self) -> str:
        text = f"{self.host}: {self.message}" if self.host else self.message
        if self.hint:
            text += f"\n  hint: {self.hint}"
        return text


class InventoryError(FleetError):
    """The inventory file is missing, unreadable or invalid."""


class UsageError(FleetError):
    """A bad command-line argument."""


class HostUnreachable(FleetError):
    """The host could not be reached; `reason` says why (dns, refused, timeout, auth...)."""

    def __init__(self, message: str, *, reason: str, host: str | None = None, hint: str | None = None):
        super().__init__(message, host=host, hint=hint)
        self.reason = reason


class HostKeyError(HostUnreachable):
    """The host's key is unknown or differs from the known one: we refuse to talk to it."""

    def __init__(self, message: str, *, reason: str, fingerprint: str, host: str | None = None,
                 hint: str | None = None, hop: str = ""):
        super().__init__(message, reason=reason, host=host, hint=hint)
        self.fingerprint = fingerprint
        self.hop = hop  # a ProxyJump hop on the way to `host` whose key it is ("": the host's own key)


class CommandTimeout(FleetError):
    """A remote or local command ran past its deadline."""


class StepFailed(FleetError):
    """A command exited non-zero; carries the command, exit code and output tail."""

    def __init__(self, message: str, *, command: str, exit_code: int | None, output_tail: str = "",
                 host: str | None = None, hint: str | None = None):
        super().__init__(message, host=host, hint=hint)
        self.command = command
        self.exit_code = exit_code
        self.output_tail = output_tail

    def __str__(self) -> str:
        text = super().__str__()
        text += f"\n  command: {self.command}\n  exit code: {self.exit_code}"
        if self.output_tail:
            text += "\n  output:\n" + "\n".join("    " + line for line in self.output_tail.splitlines())
        return text


class LockHeld(FleetError):
    """Another run holds the fleet lock; this run is refused (recorded as `refused` in the history)."""

    run_status = "refused"
