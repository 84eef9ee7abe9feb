"""The normalized answer every provider's job is read into.

`JobState` is what a provider adapter's parser produces from the provider's bytes alone (no clock, no
task id bookkeeping). `GenerationResult` is what the tools return: the job state plus who, when and, for a
wait, how long. Field order is the order agents see in the compact JSON text.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema, field_serializer

Status = Literal["queued", "running", "succeeded", "failed", "canceled"]
OutputKind = Literal["video", "image", "audio", "file"]

STATUSES: tuple[Status, ...] = ("queued", "running", "succeeded", "failed", "canceled")
DONE_STATUSES: frozenset[Status] = frozenset({"succeeded", "failed", "canceled"})


def _compact_schema(schema: dict[str, Any]) -> None:
    """The JSON schema as short as its meaning allows: it is sent with every tool list, and some clients put
    it into the model's context. Titles only restate field names; and since a field without a value is left
    out of every answer, never sent as null, an optional field's schema is its value's alone."""
    schema.pop("title", None)
    # Left out: no answer ever carries a field the model does not have, and the list is sent to every session.
    schema.pop("additionalProperties", None)
    # A model's docstring is for the code; what a field means is in its own description.
    schema.pop("description", None)
    for field in schema.get("properties", {}).values():
        field.pop("title", None)
        variants = field.get("anyOf")
        if field.get("default", ...) is None:
            del field["default"]
        if variants and {"type": "null"} in variants:
            rest = [variant for variant in variants if variant != {"type": "null"}]
            if len(rest) == 1:
                del field["anyOf"]
                field.update(rest[0])


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", json_schema_extra=_compact_schema)


class Output(_Model):
    """One generated file."""

    url: str
    kind: OutputKind
    mime_type: str | None = None
    width: int | None = None
    height: int | None = None
    fps: float | None = None
    frames: int | None = None
    duration_s: float | None = None
    size_bytes: int | None = None
    thumbnail_url: str | None = None
    expires_at: str | None = Field(default=None, description="UTC time the URL stops working.")
    requires_auth: bool | None = Field(
        default=None, description="Fetching needs the provider's key: use download_generation_outputs."
    )
    path: str | None = Field(default=None, description="Downloads: the saved file.")
    sha256: str | None = None


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
    note: str | None = None
    """What the provider's answer means beyond its fields (a succeeded job whose files are gone, say)."""


class GenerationResult(_Model):
    """The state of one generation job at one provider."""

    # Field descriptions are kept to what a name cannot say: the schema goes out with every tool list, and
    # the meaning of every field is in the README and in get_generation_result's description.
    provider: str
    task_id: str
    status: Status
    done: bool
    provider_status: str
    progress: float | None = Field(default=None, description="Percent, where known.")
    eta_s: float | None = Field(default=None, description="Seconds left, where known.")
    outputs: list[Output] = Field(default_factory=list)
    error: JobError | None = Field(default=None, description="Why it failed or was canceled.")
    cost: Cost | None = None
    checked_at: str
    elapsed_s: float | None = None
    polls: int | None = Field(default=None, description="Provider requests.")
    timed_out: bool | None = Field(default=None, description="Waits: time ran out; call again to keep waiting.")
    note: str | None = None

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
            note=state.note,
        )

    def compact_json(self) -> str:
        """The text content: the same object as the structured content, one line, no nulls."""
        return self.model_dump_json(exclude_none=True)

    def structured(self) -> dict[str, object]:
        return self.model_dump(mode="json", exclude_none=True)


# A list of results, as the tool list describes it: a pointer to get_generation_result's schema.
_AS_RESULTS = WithJsonSchema(
    {
        "type": "array",
        "items": {"type": "object"},
        "description": "Each as get_generation_result gives it (or "
        "{provider, task_id, error} for a job that could not be checked); checked_at says how old it is.",
    }
)


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

    # Each item's schema is get_generation_result's, which the tool list already carries: said, not repeated.
    results: Annotated[list[GenerationResult | JobFailure], _AS_RESULTS]
    done: int
    pending: int = Field(description="Not done yet: call again with those.")
    elapsed_s: float
    polls: int = Field(description="Provider requests, all jobs.")
    timed_out: bool = Field(description="Time ran out first.")
    note: str | None = None

    def compact_json(self) -> str:
        return self.model_dump_json(exclude_none=True)

    def structured(self) -> dict[str, object]:
        return self.model_dump(mode="json", exclude_none=True)


class JobList(_Model):
    """What list_generations answers: the jobs this server has seen, most recently checked first."""

    jobs: Annotated[list[GenerationResult], _AS_RESULTS]
    total: int = Field(description="Jobs that match; at most limit are listed.")

    def compact_json(self) -> str:
        return self.model_dump_json(exclude_none=True)

    def structured(self) -> dict[str, object]:
        return self.model_dump(mode="json", exclude_none=True)


def format_utc(moment: datetime) -> str:
    """`2026-11-22T10:00:03Z`: second precision is what an agent needs, and it keeps the answer short."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
