"""The normalized answer every provider's job is read into.

`JobState` is what a provider adapter's parser produces from the provider's bytes alone (no clock, no
task id bookkeeping). `GenerationResult` is what the tools return: the job state plus who, when and, for a
wait, how long. Field order is the order agents see in the compact JSON text.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_serializer

Status = Literal["queued", "running", "succeeded", "failed", "canceled"]
OutputKind = Literal["video", "image", "audio", "file"]

STATUSES: tuple[Status, ...] = ("queued", "running", "succeeded", "failed", "canceled")
DONE_STATUSES: frozenset[Status] = frozenset({"succeeded", "failed", "canceled"})


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Output(_Model):
    """One generated file."""

    url: str = Field(description="Where to download the file. Pre-signed URLs may expire: see expires_at.")
    kind: OutputKind = Field(description="video, image, audio or file.")
    mime_type: str | None = None
    width: int | None = None
    height: int | None = None
    fps: float | None = None
    frames: int | None = None
    duration_s: float | None = None
    size_bytes: int | None = None
    thumbnail_url: str | None = None
    expires_at: str | None = Field(
        default=None, description="ISO-8601 UTC time after which the URL stops working, where it can be read."
    )


class JobError(_Model):
    """Why a job failed or was canceled, in the provider's words (secrets removed)."""

    code: str
    message: str


class Cost(_Model):
    amount: float
    unit: str = Field(description="e.g. credits")


class JobState(_Model):
    """A provider's answer about one job, normalized. Produced by the adapters' pure parsers."""

    status: Status
    provider_status: str
    progress: float | None = None
    eta_s: float | None = None
    outputs: tuple[Output, ...] = ()
    error: JobError | None = None
    cost: Cost | None = None


class GenerationResult(_Model):
    """The state of one generation job at one provider."""

    provider: str = Field(description="Provider id, as given.")
    task_id: str = Field(description="Task id, as given.")
    status: Status = Field(description="queued, running, succeeded, failed or canceled.")
    done: bool = Field(description="True once the job is succeeded, failed or canceled: no need to check again.")
    provider_status: str = Field(description="The provider's own status word, untouched.")
    progress: float | None = Field(default=None, description="Percent 0..100, where the provider says it.")
    eta_s: float | None = Field(default=None, description="Seconds to completion, where the provider says it.")
    outputs: list[Output] = Field(default_factory=list, description="Generated files; empty until succeeded.")
    error: JobError | None = Field(default=None, description="Why the job failed or was canceled.")
    cost: Cost | None = None
    checked_at: str = Field(description="ISO-8601 UTC time this state was read from the provider.")
    elapsed_s: float | None = Field(default=None, description="wait_for_generation only: seconds waited.")
    polls: int | None = Field(default=None, description="wait_for_generation only: provider checks made.")
    timed_out: bool | None = Field(
        default=None,
        description="wait_for_generation only: true when time ran out before the job was done. "
        "Not an error: call wait_for_generation again with the same task_id to keep waiting.",
    )
    note: str | None = Field(default=None, description="Anything the caller should know about how the answer was made.")

    @field_serializer("progress", "eta_s")
    def _whole_numbers_without_a_fraction(self, value: float | None) -> float | int | None:
        # Percent and seconds are whole numbers at most providers; "100" reads better than "100.0".
        if value is not None and value.is_integer():
            return int(value)
        return value

    @classmethod
    def from_state(cls, provider: str, task_id: str, state: JobState, checked_at: datetime) -> GenerationResult:
        return cls(
            provider=provider,
            task_id=task_id,
            status=state.status,
            done=state.status in DONE_STATUSES,
            provider_status=state.provider_status,
            progress=state.progress,
            eta_s=state.eta_s,
            outputs=list(state.outputs),
            error=state.error,
            cost=state.cost,
            checked_at=format_utc(checked_at),
        )

    def compact_json(self) -> str:
        """The text content: the same object as the structured content, one line, no nulls."""
        return self.model_dump_json(exclude_none=True)

    def structured(self) -> dict[str, object]:
        return self.model_dump(mode="json", exclude_none=True)


class JobFailure(_Model):
    """A job of a wait_for_generations call that could not be checked; the other jobs go on."""

    provider: str = Field(description="Provider id, as given.")
    task_id: str = Field(description="Task id, as given.")
    error: JobError = Field(
        description="code: one of the tool error codes (unknown_provider, invalid_task_id, task_not_found, "
        "provider_not_configured, ...); message: what to do."
    )


class BatchResult(_Model):
    """What wait_for_generations answers: one slot per job, in the order given."""

    results: list[GenerationResult | JobFailure] = Field(
        description="One per job, in the order of jobs: its result, or {provider, task_id, error} when it could "
        "not be checked."
    )
    done: int = Field(description="Jobs that are done (succeeded, failed or canceled).")
    pending: int = Field(description="Jobs not done yet: call again with those to keep waiting.")
    elapsed_s: float = Field(description="Seconds this call waited.")
    polls: int = Field(description="Provider requests made, all jobs together.")
    timed_out: bool = Field(
        description="True when time ran out first (until=all: some job is pending; until=any: none is done)."
    )
    note: str | None = Field(default=None, description="Anything the caller should know about how the answer was made.")

    def compact_json(self) -> str:
        return self.model_dump_json(exclude_none=True)

    def structured(self) -> dict[str, object]:
        return self.model_dump(mode="json", exclude_none=True)


class JobList(_Model):
    """What list_generations answers: the jobs this server has seen, most recently checked first."""

    jobs: list[GenerationResult] = Field(description="Last known state of each; checked_at says how old it is.")
    total: int = Field(description="How many jobs match, of which at most limit are listed.")

    def compact_json(self) -> str:
        return self.model_dump_json(exclude_none=True)

    def structured(self) -> dict[str, object]:
        return self.model_dump(mode="json", exclude_none=True)


def format_utc(moment: datetime) -> str:
    """`2026-11-22T10:00:03Z`: second precision is what an agent needs, and it keeps the answer short."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
