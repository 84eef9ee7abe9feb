"""The declared-provider file format: one TOML table per provider, read into a validated model.

A table's name is the provider id; its keys say where the API is, where the key goes, which request reads
a job (and an optional second one), and where in the JSON reply each part of the normalized result sits.
The README's "Add your own provider" explains every key with a worked example.

JSON paths are a tiny dotted syntax of our own: `output.task_status` reads a key inside a key,
`data.videos[].url` reads `url` of every item of the list `data.videos`, `data.videos[0].url` only of the
first. Keys are letters, digits and `_ - $ @`. A path may also be a list of paths, the first that finds a
value wins (`["usage.duration", "usage.video_duration"]`).

Anything wrong in a file is a `DeclaredSpecError` naming the file, the table, the key and what is wrong.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from tools.providers.declared import DeclaredSpecError
from tools.result import OutputKind, Status

ID = re.compile(r"[a-z][a-z0-9_-]{0,39}")
ENV_NAME = re.compile(r"[A-Z][A-Z0-9_]{0,99}")
_KEY = r"[A-Za-z0-9_$@-]+"
_SEGMENT = re.compile(rf"({_KEY})((?:\[\d*\])*)")
_INDEX = re.compile(r"\[(\d*)\]")
_PLACEHOLDER = re.compile(r"\{([^{}]*)\}")
# What may stand in a path template's literal segments: what an URL path carries unescaped.
_LITERAL_SEGMENT = re.compile(r"[A-Za-z0-9._~:@!$&'()*+,;=-]*")

StatusWord = Literal["queued", "running", "succeeded", "failed", "canceled", "not_found"]


@dataclass(frozen=True)
class JsonPath:
    """A compiled dotted path; `find` yields every value it reaches in a JSON document."""

    text: str
    steps: tuple[tuple[str, tuple[int | None, ...]], ...]

    def find(self, document: Any) -> Iterator[Any]:
        values = [document]
        for key, indexes in self.steps:
            values = [value[key] for value in values if isinstance(value, dict) and key in value]
            for index in indexes:
                values = [
                    item
                    for value in values
                    if isinstance(value, list)
                    for item in (value if index is None else value[index : index + 1])
                ]
        yield from values

    def first(self, document: Any) -> Any:
        return next((value for value in self.find(document) if value is not None), None)

    @property
    def fans_out(self) -> bool:
        return any(None in indexes for _, indexes in self.steps)

    def split_at_list(self) -> tuple[JsonPath, JsonPath]:
        """The path up to and including its last `[]`, and the rest (relative to each item)."""
        last = max(i for i, (_, indexes) in enumerate(self.steps) if None in indexes)
        head, tail = self.steps[: last + 1], self.steps[last + 1 :]
        return JsonPath(_text(head), head), JsonPath(_text(tail), tail)

    def relative_to(self, items: JsonPath) -> JsonPath | None:
        """This path below `items` (a path ending in `[]`), or None when it does not start there."""
        size = len(items.steps)
        if self.steps[:size] != items.steps:
            return None
        rest = self.steps[size:]
        return JsonPath(_text(rest), rest)


def _text(steps: tuple[tuple[str, tuple[int | None, ...]], ...]) -> str:
    return ".".join(key + "".join("[]" if i is None else f"[{i}]" for i in indexes) for key, indexes in steps)


def compile_path(text: str) -> JsonPath:
    if not isinstance(text, str) or not text.strip():
        raise ValueError("a JSON path must be a non-empty string such as 'data.status' or 'data.videos[].url'")
    steps: list[tuple[str, tuple[int | None, ...]]] = []
    for part in text.strip().split("."):
        match = _SEGMENT.fullmatch(part)
        if match is None:
            raise ValueError(
                f"{text!r} is not a JSON path: {part!r} should be a key (letters, digits, _ - $ @), optionally "
                "followed by [] (every item of a list) or [N] (item N, from 0)"
            )
        indexes = tuple(int(i) if i else None for i in _INDEX.findall(match.group(2)))
        steps.append((match.group(1), indexes))
    return JsonPath(text.strip(), tuple(steps))


@dataclass(frozen=True)
class Paths:
    """One path, or alternatives tried in order."""

    options: tuple[JsonPath, ...]

    def first(self, document: Any) -> Any:
        for path in self.options:
            value = path.first(document)
            if value is not None:
                return value
        return None


def _paths(value: Any) -> Paths:
    if isinstance(value, Paths):
        return value
    texts = value if isinstance(value, list) else [value]
    if not texts:
        raise ValueError("an empty list: give one JSON path, or a list of paths to try in order")
    return Paths(tuple(compile_path(text) for text in texts))


def _one_path(value: Any) -> JsonPath:
    return value if isinstance(value, JsonPath) else compile_path(value)


PathsField = Annotated[Paths, BeforeValidator(_paths)]
PathField = Annotated[JsonPath, BeforeValidator(_one_path)]


def _env_name(value: str) -> str:
    if not ENV_NAME.fullmatch(value):
        raise ValueError(
            f"{value!r} is not an environment variable name: use capitals, digits and _, e.g. ACME_API_KEY"
        )
    return value


def _http_url(value: str) -> str:
    try:
        parts = urlsplit(value)
        port_ok = parts.port is None or 0 < parts.port < 65536
    except ValueError:
        port_ok = False
    if parts.scheme not in ("http", "https") or not parts.hostname or not port_ok or parts.query or parts.fragment:
        raise ValueError(f"{value!r} is not an http(s) base URL: write it in full, e.g. https://api.example.com/v1")
    return value.rstrip("/")


def _http_codes(codes: list[int]) -> list[int]:
    for code in codes:
        if not 400 <= code < 500 or code == 429:
            raise ValueError(f"{code} cannot be declared: only 4xx codes other than 429 (429 and 5xx are retried)")
    return codes


EnvName = Annotated[str, AfterValidator(_env_name)]
HttpCodes = Annotated[list[int], AfterValidator(_http_codes)]


class _Spec(BaseModel):
    # A misspelt key is an error, not a silently ignored line.
    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True, arbitrary_types_allowed=True)


def _template(text: str, placeholders: frozenset[str], *, whole_segments: bool) -> str:
    names = set(_PLACEHOLDER.findall(text))
    unknown = names - placeholders
    if unknown or text.count("{") != text.count("}") or len(_PLACEHOLDER.findall(text)) != text.count("{"):
        allowed = " and ".join("{" + name + "}" for name in sorted(placeholders))
        raise ValueError(f"{text!r} has a placeholder we do not fill: use {allowed} only")
    if whole_segments:
        if not text.startswith("/"):
            raise ValueError(f"{text!r} must start with / (it is added to the base URL)")
        for segment in text.split("/")[1:]:
            bare = _PLACEHOLDER.fullmatch(segment) is not None
            if not bare and ("{" in segment or not _LITERAL_SEGMENT.fullmatch(segment)):
                raise ValueError(
                    f"{text!r}: the segment {segment!r} must be plain text or exactly one placeholder; "
                    "put a query string in the `query` table"
                )
            if segment in (".", ".."):
                raise ValueError(f"{text!r}: . and .. segments are not allowed")
    return text


class Credentials(_Spec):
    env: EnvName
    """The environment variable that holds the key."""
    in_: Literal["header", "query", "body"] = Field("header", alias="in")
    name: str = "Authorization"
    """The header, query parameter or JSON body key that carries it."""
    scheme: str | None = None
    """Written before the key in a header, e.g. "Bearer"."""

    @model_validator(mode="after")
    def _scheme_only_in_a_header(self) -> Credentials:
        if self.scheme is not None and self.in_ != "header":
            raise ValueError('scheme is only for a key sent in a header (in = "header")')
        if not re.fullmatch(r"[A-Za-z0-9_.$@-]{1,100}", self.name):
            raise ValueError(f"name {self.name!r} must be a plain header, parameter or key name")
        return self


class _Request(_Spec):
    method: Literal["GET", "POST"] = "GET"
    query: dict[str, str] = Field(default_factory=dict)
    headers: dict[str, str] = Field(default_factory=dict)
    body: dict[str, str] | None = None
    """A JSON object sent with POST; a value may be a placeholder."""

    @field_validator("headers")
    @classmethod
    def _literal_headers(cls, headers: dict[str, str]) -> dict[str, str]:
        for name, value in headers.items():
            if "{" in value or "\n" in value or "\r" in value:
                raise ValueError(f"header {name!r}: header values are sent as written, without placeholders")
        return headers


_READ_PLACEHOLDERS = frozenset({"task_id"})
_THEN_PLACEHOLDERS = frozenset({"value"})


class ReadRequest(_Request):
    path: str
    """Under the base URL, e.g. "/tasks/{task_id}"; the id travels as one escaped path segment."""
    task_id_pattern: str | None = None
    """A regular expression every id must match whole, checked before anything is sent."""

    @model_validator(mode="after")
    def _placeholders(self) -> ReadRequest:
        _template(self.path, _READ_PLACEHOLDERS, whole_segments=True)
        for value in (*self.query.values(), *(self.body or {}).values()):
            _template(value, _READ_PLACEHOLDERS, whole_segments=False)
        if self.task_id_pattern is not None:
            try:
                re.compile(self.task_id_pattern)
            except re.error as exc:
                raise ValueError(
                    f"task_id_pattern {self.task_id_pattern!r} is not a regular expression: {exc}"
                ) from None
        return self


class OutputSpec(_Spec):
    url: PathField
    kind: OutputKind | None = None
    """video, image, audio or file; when left out, read from the MIME type or the URL's extension."""
    mime_type: PathsField | None = None
    size: PathsField | None = None
    width: PathsField | None = None
    height: PathsField | None = None
    duration: PathsField | None = None


class ThenRequest(_Request):
    """A second request, made when the first reply's status is in `when`, from a field of that reply."""

    from_: PathField = Field(alias="from")
    path: str
    when: list[Status] = Field(default_factory=lambda: list[Status](["succeeded"]))
    outputs: list[OutputSpec] = Field(min_length=1)

    @model_validator(mode="after")
    def _placeholders(self) -> ThenRequest:
        _template(self.path, _THEN_PLACEHOLDERS, whole_segments=True)
        for value in (*self.query.values(), *(self.body or {}).values()):
            _template(value, _THEN_PLACEHOLDERS, whole_segments=False)
        return self


class ReplySpec(_Spec):
    status: PathsField
    status_words: dict[str, StatusWord] = Field(default_factory=dict)
    """The provider's words (any case) to queued, running, succeeded, failed, canceled or not_found."""
    progress: PathsField | None = None
    progress_scale: Literal[1, 100] = 100
    """What the provider's progress reaches when done: 1 (a fraction) or 100 (percent)."""
    eta: PathsField | None = None
    """Seconds until done."""
    outputs: list[OutputSpec] = Field(default_factory=list)
    error_code: PathsField | None = None
    error_message: PathsField | None = None
    cost: PathsField | None = None
    cost_unit: str = "credits"

    @field_validator("status_words")
    @classmethod
    def _any_case(cls, words: dict[str, StatusWord]) -> dict[str, StatusWord]:
        return {word.strip().lower(): status for word, status in words.items()}


class HttpSpec(_Spec):
    not_found: HttpCodes = Field(default_factory=lambda: [404])
    auth_failed: HttpCodes = Field(default_factory=lambda: [401])
    account_refused: HttpCodes = Field(default_factory=lambda: [402, 403])


class ProviderSpec(_Spec):
    """One `[id]` table."""

    name: str = Field(min_length=1, max_length=60)
    base_url: Annotated[str, AfterValidator(_http_url)]
    base_url_env: EnvName
    example_task_id: str = Field(min_length=1, max_length=256)
    account_page: str = ""
    credentials: Credentials
    read: ReadRequest
    then: ThenRequest | None = None
    reply: ReplySpec
    http: HttpSpec = Field(default_factory=HttpSpec)

    @model_validator(mode="after")
    def _consistent(self) -> ProviderSpec:
        if self.read.task_id_pattern is not None and not re.fullmatch(self.read.task_id_pattern, self.example_task_id):
            raise ValueError(f"example_task_id {self.example_task_id!r} does not match read.task_id_pattern")
        if self.then is None and self.reply.outputs == []:
            raise ValueError("no outputs: declare [[<id>.reply.outputs]] (or [<id>.then] with outputs)")
        posts = self.read.method == "POST" and (self.then is None or self.then.method == "POST")
        if self.credentials.in_ == "body" and not posts:
            raise ValueError('credentials.in = "body" needs method = "POST" for every request')
        return self


_FRIENDLY = {
    "extra_forbidden": "is not a key of this format (a typo?)",
    "missing": "is required",
}


def validate_table(source: str, table: str, raw: Mapping[str, Any]) -> ProviderSpec:
    """The table as a `ProviderSpec`, or the first problem with it, located."""
    if not ID.fullmatch(table):
        raise DeclaredSpecError(
            source, "a provider id (the table name) is lowercase letters, digits, _ and -, at most 40", table
        )
    try:
        return ProviderSpec.model_validate(raw)
    except ValidationError as exc:
        error = exc.errors()[0]
        key = ".".join(str(part) for part in error["loc"] if not isinstance(part, int)) or None
        words = _FRIENDLY.get(error["type"], error["msg"].removeprefix("Value error, "))
        if error["type"] not in _FRIENDLY and "input" in error and not isinstance(error["input"], dict | list):
            words += f" (got {error['input']!r})"
        raise DeclaredSpecError(source, words, table, key) from None
