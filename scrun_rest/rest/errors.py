"""The exceptions a slurmrestd call can raise: one base type, a few kinds."""
from ..errors import UserError


class RestError(UserError):
    """slurmrestd failed or refused; the message is one readable line.

    http_status is None when no answer came back; slurm_errno is the first
    Slurm error number in the answer, if any; text is Slurm's own wording.
    """

    def __init__(self, message, url=None, http_status=None, slurm_errno=None, text=None):
        super().__init__(message)
        self.url = url
        self.http_status = http_status
        self.slurm_errno = slurm_errno
        self.text = text


class RestUnreachable(RestError):
    """No HTTP answer at all: refused, timed out, TLS failure, no socket."""


class AuthRejected(RestError):
    """slurmrestd or slurmctld refused the token."""


class JobNotFound(RestError):
    """Slurm does not know the job (never existed, or purged after MinJobAge)."""


class UnsupportedField(UserError):
    """The connected API version has no way to express a job request field."""

    def __init__(self, field, api_version, detail=None):
        message = "slurmrestd API %s cannot express the job field %r" % (api_version, field)
        if detail:
            message += " (%s)" % detail
        super().__init__(message)
        self.field = field
        self.api_version = api_version


class InvalidField(UserError):
    """A job request field holds a value of the wrong kind."""

    def __init__(self, field, problem):
        super().__init__("job field %r: %s" % (field, problem))
        self.field = field
