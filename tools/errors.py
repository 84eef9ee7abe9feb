"""Every way a check can fail that is not a job state, split by who must act.

    GenResultError                    code                      who acts
    ├── CallerError                                             the caller fixes the call
    │   ├── UnknownProvider           unknown_provider
    │   ├── ProviderNotConfigured     provider_not_configured   (the user sets credentials)
    │   ├── InvalidTaskId             invalid_task_id
    │   └── InvalidArgument           invalid_argument
    ├── ProviderRejected                                        the provider said no; retrying will not help
    │   ├── TaskNotFound              task_not_found
    │   ├── AuthenticationFailed      authentication_failed
    │   └── ProviderProtocolError     provider_protocol_error
    ├── ProviderUnavailable           provider_unavailable      could not get an answer; retryable
    └── DownloadFailed                download_failed           an output could not be saved; the message
                                                                says why (a refused URL, the size cap, the
                                                                transfer, the disk) and who acts
    └── RegistryUnavailable           registry_unavailable      the server's own job registry is off or
                                                                failing (its operator acts); only
                                                                list_generations raises it

A job that failed at the provider is not an error here: it is a `JobState` with status `failed`.
Foreign exceptions (httpx, JSON, pydantic) are converted once, where they happen, to the most specific type.
Messages never carry credentials: they are built from our own words plus provider text that has been
passed through the redactor.
"""

from __future__ import annotations


class GenResultError(Exception):
    """Base of the tree. `code` is the stable word agents and scripts branch on."""

    code: str = "error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"


class CallerError(GenResultError):
    """The call itself is wrong; nothing was sent to the provider."""


class UnknownProvider(CallerError):
    code = "unknown_provider"


class ProviderNotConfigured(CallerError):
    code = "provider_not_configured"


class InvalidTaskId(CallerError):
    code = "invalid_task_id"


class InvalidArgument(CallerError):
    code = "invalid_argument"


class ProviderRejected(GenResultError):
    """The provider answered, and the answer is final for this call."""


class TaskNotFound(ProviderRejected):
    code = "task_not_found"


class AuthenticationFailed(ProviderRejected):
    code = "authentication_failed"


class ProviderProtocolError(ProviderRejected):
    code = "provider_protocol_error"

    # What to do, for the many ways an answer can be unreadable; a message with its own advice keeps it.
    ADVICE = (
        "Retrying will not help: check that the provider's *_BASE_URL setting points at its API (unset means "
        "its public API); if it does, the provider has changed its answer and genresult-mcp needs an update."
    )

    def __init__(self, message: str) -> None:
        # A copy of the error (copy.copy rebuilds it from its message) already carries the advice.
        has_advice = "Check " in message or self.ADVICE in message
        super().__init__(message if has_advice else f"{message} {self.ADVICE}")


class ProviderUnavailable(GenResultError):
    """No usable answer: network trouble, timeout, 5xx or 429. Worth trying again later.

    `retry_after` is the provider's own Retry-After in seconds, when it sent one.
    """

    code = "provider_unavailable"

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class DownloadFailed(GenResultError):
    """An output of a succeeded job could not be saved. The job itself is fine; files saved whole stay saved."""

    code = "download_failed"


class RegistryUnavailable(GenResultError):
    """The job registry is off (GENRESULT_DB=off) or its database cannot be used; checks and waits go on."""

    code = "registry_unavailable"
