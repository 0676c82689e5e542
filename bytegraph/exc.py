"""Errors bytegraph raises, and the structured reasons a trace stops.

Unsupported carries a kind (a short stable slug), the user-facing message, a hint,
and the user's file:line; `str()` renders all of them. It is raised to the user
only under fullgraph=True; otherwise it sends the function to eager and is
counted in counters["graph_break"].
"""


class BytegraphError(Exception):
    pass


class Unsupported(BytegraphError):
    """A construct the tracer cannot capture (raised to the user with fullgraph=True)."""

    def __init__(self, msg, kind="unsupported", hint="", location=""):
        super().__init__(msg)
        self.msg = msg
        self.kind = kind
        self.hint = hint
        self.location = location

    def with_location(self, location):
        if not self.location:
            self.location = location
        return self

    def __str__(self):
        s = self.msg
        if self.location:
            s += f"\n  at {self.location}"
        if self.hint:
            s += f"\n  hint: {self.hint}"
        return s


class UserError(Unsupported):
    """The user's own code raised (or would raise) at trace time; eager reproduces it."""

    def __init__(self, exc, location=""):
        super().__init__(f"{type(exc).__name__}: {exc}", kind="user_error", location=location)
        self.exc = exc


class BackendCompilerFailed(BytegraphError, RuntimeError):
    def __init__(self, backend_name, exc):
        super().__init__(f"backend {backend_name!r} raised {type(exc).__name__}: {exc}")
        self.backend_name = backend_name
        self.inner_exception = exc


class InternalError(BytegraphError):
    pass


class UnknownOptionError(BytegraphError, AttributeError, ValueError):
    """An option name bytegraph does not know: an AttributeError (as torch's configs raise for
    unknown names) and a ValueError (a bad argument value)."""


def unsupported(msg, kind="unsupported", hint=""):
    raise Unsupported(msg, kind=kind, hint=hint)
