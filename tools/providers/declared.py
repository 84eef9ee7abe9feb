"""Declared providers: one generic adapter for every API whose result is "GET or POST a JSON status document".

Each table of a declaration file (`declared_spec` says the format) becomes a subclass of `DeclaredAdapter`
with the table's id, names and settings as its class attributes, so the registry, the service and the
tests treat it like a built-in adapter: the same id checks, retries, redaction of its key, poll policy and
result cleaning. The files shipped with the package (`declared/*.toml`) are read at start-up, but a table is
only validated the first time its provider is used; a user's `GENRESULT_PROVIDERS_FILE` is validated whole at
start-up, so a mistake stops the start with its place named.
"""

from __future__ import annotations

import functools
import json
import re
import tomllib
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import quote

import httpx

from tools.errors import InvalidTaskId, ProviderProtocolError
from tools.providers.base import (
    NOT_JSON,
    SAFE_TASK_ID,
    KeyedAdapter,
    Reply,
    Then,
    finite_number,
    mime_of,
    normalize_status,
    presigned_url_expiry,
)
from tools.result import Cost, JobError, JobState, Output, OutputKind

if TYPE_CHECKING:
    from tools.providers.declared_spec import JsonPath, OutputSpec, Paths, ProviderSpec

PROVIDERS_FILE_ENV = "GENRESULT_PROVIDERS_FILE"
SHIPPED_DIR = Path(__file__).with_name("declared")

_PLACEHOLDER = re.compile(r"\{([a-z_]+)\}")
_KINDS: Mapping[str, OutputKind] = {"video": "video", "image": "image", "audio": "audio"}
_MESSAGE_LIMIT = 1000


class DeclaredSpecError(ValueError):
    """A declared-provider file that cannot be used: where (file, table, key) and what is wrong."""

    def __init__(self, source: str, problem: str, table: str | None = None, key: str | None = None) -> None:
        where = source + (f", table [{table}]" if table else "") + (f", key {key}" if key else "")
        super().__init__(f"{where}: {problem}")
        self.source, self.table, self.key, self.problem = source, table, key, problem


@dataclass
class Declaration:
    """One provider table as read from its file; validated on first use (`spec`)."""

    source: str
    table: str
    raw: Mapping[str, Any]
    _spec: ProviderSpec | None = field(default=None, repr=False)

    def spec(self) -> ProviderSpec:
        if self._spec is None:
            # Imported here: defining the format's models costs more start-up time than every other part of
            # the declared providers together, and a shipped provider nobody uses should not pay it.
            from tools.providers.declared_spec import validate_table

            self._spec = validate_table(self.source, self.table, self.raw)
        return self._spec

    def text(self, *keys: str, default: str | None = None) -> str:
        """A text value of the table, for the class attributes (read before the table is validated)."""
        value: Any = self.raw
        for key in keys:
            value = value.get(key) if isinstance(value, dict) else None
        if value is None and default is not None:
            return default
        if not isinstance(value, str) or not value.strip():
            raise DeclaredSpecError(self.source, "is required, as text", self.table, ".".join(keys))
        return value.strip()


def _as_text(value: Any) -> str | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str) and value.strip():
        return value.strip()
    return None


def _positive(value: Any) -> float | None:
    number = finite_number(value)
    return number if number is not None and number >= 0 else None


def _whole(value: Any) -> int | None:
    number = _positive(value)
    return round(number) if number is not None and number < 2**53 else None


class DeclaredAdapter(KeyedAdapter):
    """The adapter of one declared table; `declared_class` makes one subclass per table."""

    declaration: ClassVar[Declaration]

    @property
    def spec(self) -> ProviderSpec:
        return self.declaration.spec()

    def advice(self) -> str:
        return (
            f"Check {self.base_url_env} (unset means {self.default_base_url}); if it is right, {self.display_name} "
            f"answers in a way its declaration ({self.declaration.source}, table [{self.id}]) does not describe."
        )

    def validate_task_id(self, task_id: str) -> str:
        task_id = super().validate_task_id(task_id)
        pattern = self.spec.read.task_id_pattern
        if pattern is not None and re.fullmatch(pattern, task_id) is None:
            raise InvalidTaskId(
                f"The task id is not of the form {self.display_name} ids have ({pattern}). "
                "Pass the id exactly as the provider returned it."
            )
        return task_id

    def build_request(self, client: httpx.AsyncClient, task_id: str) -> httpx.Request:
        read = self.spec.read
        return self._request(client, read.method, read.path, read.query, read.headers, read.body, {"task_id": task_id})

    def _request(
        self,
        client: httpx.AsyncClient,
        method: str,
        path: str,
        query: Mapping[str, str],
        headers: Mapping[str, str],
        body: Mapping[str, str] | None,
        values: Mapping[str, str],
    ) -> httpx.Request:
        def fill(text: str) -> str:
            return _PLACEHOLDER.sub(lambda match: values[match.group(1)], text)

        segments = []
        for segment in path.split("/")[1:]:
            placeholder = _PLACEHOLDER.fullmatch(segment)
            # Each value travels as one escaped segment, whatever it holds.
            segments.append(quote(values[placeholder.group(1)], safe="") if placeholder else segment)
        params = {name: fill(value) for name, value in query.items()}
        sent_headers = {"Accept": "application/json", **headers}
        sent_body = None if body is None else {key: fill(value) for key, value in body.items()}
        credentials = self.spec.credentials
        key = self.api_key or ""
        if credentials.in_ == "header":
            sent_headers[credentials.name] = f"{credentials.scheme} {key}" if credentials.scheme else key
        elif credentials.in_ == "query":
            params[credentials.name] = key
        else:
            sent_body = {**(sent_body or {}), credentials.name: key}
        return client.build_request(
            method,
            self.base_url + "".join("/" + segment for segment in segments),
            params=params or None,
            headers=sent_headers,
            json=sent_body,
        )

    def error_message(self, reply: Reply) -> str:
        try:
            data = json.loads(reply.body)
        except NOT_JSON:
            return ""
        declared = self.spec.reply
        for paths in (declared.error_message, declared.error_code):
            text = _as_text(paths.first(data)) if paths is not None else None
            if text:
                return self.redact(text)[:300]
        return super().error_message(reply)

    def _http_errors(self, reply: Reply) -> None:
        code = reply.status_code
        http = self.spec.http
        if code in http.not_found:
            raise self.not_found()
        said = self.error_message(reply)
        if code in http.auth_failed:
            raise self.auth_failed(said)
        if code in http.account_refused:
            raise self.account_refused(code, said)
        if not 200 <= code < 300:
            raise ProviderProtocolError(
                f"{self.display_name} refused the request (HTTP {code}).{self.quoted(said)} Check the task id: pass "
                f"it exactly as {self.display_name} returned it; if it is right, check {self.base_url_env}."
            )

    def parse(self, reply: Reply) -> JobState | Then:
        self._http_errors(reply)
        data = reply.json()
        state = self._state(data)
        then = self.spec.then
        if then is None or state.status not in then.when:
            return state
        value = _as_text(then.from_.first(data))
        if value is None or len(value) > 256 or SAFE_TASK_ID.fullmatch(value) is None:
            raise ProviderProtocolError(
                f"{self.display_name} answered {state.provider_status!r} without a usable {then.from_.text} for "
                f"its next request. {self.advice()}"
            )

        def build(client: httpx.AsyncClient, task_id: str) -> httpx.Request:
            return self._request(client, then.method, then.path, then.query, then.headers, then.body, {"value": value})

        return Then(build, functools.partial(self._parse_then, state))

    def _parse_then(self, first: JobState, reply: Reply) -> JobState:
        self._http_errors(reply)
        then = self.spec.then
        assert then is not None
        if first.status != "succeeded":
            return first
        return first.model_copy(update={"outputs": self._outputs(then.outputs, reply.json())})

    def _state(self, data: Any) -> JobState:
        declared = self.spec.reply
        word = _as_text(declared.status.first(data))
        if word is None:
            where = " or ".join(path.text for path in declared.status.options)
            raise ProviderProtocolError(f"{self.display_name} answered without a status at {where}. {self.advice()}")
        mapped = declared.status_words.get(word.lower())
        if mapped == "not_found":
            raise self.not_found(f" (it answers {self.redact(word)[:40]!r}: no such task, or one past its retention)")
        status = mapped if mapped is not None else normalize_status(word)
        progress = None
        if declared.progress is not None:
            fraction = _positive(declared.progress.first(data))
            progress = None if fraction is None else min(100.0, fraction * 100 / declared.progress_scale)
        error = None
        if status in ("failed", "canceled"):
            code = _as_text(declared.error_code.first(data)) if declared.error_code else None
            message = _as_text(declared.error_message.first(data)) if declared.error_message else None
            if code or message:
                error = JobError(
                    code=(code or word.upper())[:100], message=self.redact(message or code or "")[:_MESSAGE_LIMIT]
                )
        amount = _positive(declared.cost.first(data)) if declared.cost else None
        return JobState(
            status=status,
            provider_status=word,
            progress=progress,
            eta_s=_positive(declared.eta.first(data)) if declared.eta else None,
            outputs=self._outputs(declared.outputs, data) if status == "succeeded" else (),
            error=error,
            cost=None if amount is None else Cost(amount=amount, unit=declared.cost_unit),
        )

    def _outputs(self, specs: list[OutputSpec], data: Any) -> tuple[Output, ...]:
        found: dict[str, Output] = {}
        for spec in specs:
            if spec.url.fans_out:
                items, url_path = spec.url.split_at_list()
                for item in items.find(data):
                    read = functools.partial(_read, items=items, item=item, data=data)
                    output = _output(spec, url_path.first(item), read)
                    if output is not None:
                        found.setdefault(output.url, output)
            else:
                output = _output(spec, spec.url.first(data), lambda paths: paths.first(data))
                if output is not None:
                    found.setdefault(output.url, output)
        return tuple(found.values())


def _read(paths: Paths, *, items: JsonPath, item: Any, data: Any) -> Any:
    """A field of one listed output: below the list item where its path starts with the list, else anywhere."""
    for path in paths.options:
        relative = path.relative_to(items)
        value = relative.first(item) if relative is not None else path.first(data)
        if value is not None:
            return value
    return None


def _output(spec: OutputSpec, url: Any, read: Callable[[Paths], Any]) -> Output | None:
    if not isinstance(url, str) or not url.strip():
        return None
    url = url.strip()

    def field(paths: Paths | None) -> Any:
        return read(paths) if paths is not None else None

    mime = _as_text(field(spec.mime_type))
    if mime is None or "/" not in mime:
        mime = mime_of(url)
    kind = spec.kind or _KINDS.get((mime or "").split("/")[0], "file")
    return Output(
        url=url,
        kind=kind,
        mime_type=mime,
        width=_whole(field(spec.width)),
        height=_whole(field(spec.height)),
        duration_s=_positive(field(spec.duration)),
        size_bytes=_whole(field(spec.size)),
        expires_at=presigned_url_expiry(url),
    )


def declared_class(declaration: Declaration) -> type[DeclaredAdapter]:
    """The adapter class of one table: its attributes come from the table's own keys."""
    env = declaration.text("credentials", "env")
    attributes = {
        "id": declaration.table,
        "display_name": declaration.text("name"),
        "default_base_url": declaration.text("base_url").rstrip("/"),
        "base_url_env": declaration.text("base_url_env"),
        "api_key_env": env,
        "credential_hint": f"set {env}",
        "credential_envs": (env,),
        "example_task_id": declaration.text("example_task_id"),
        "account_page": declaration.text("account_page", default=""),
        "declaration": declaration,
        "__module__": __name__,
    }
    return type(f"Declared_{declaration.table.replace('-', '_')}", (DeclaredAdapter,), attributes)


def _document(path: Path, source: str) -> dict[str, Any]:
    """The TOML document at `path`; every top-level value must be a table (one provider each)."""
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise DeclaredSpecError(source, f"cannot be read ({exc.strerror or exc})") from None
    except UnicodeDecodeError:
        raise DeclaredSpecError(source, "is not UTF-8 text") from None
    except tomllib.TOMLDecodeError as exc:
        raise DeclaredSpecError(source, f"is not valid TOML: {exc}") from None
    if not document:
        raise DeclaredSpecError(source, "declares no provider: add a table such as [acme]")
    for key, value in document.items():
        if not isinstance(value, dict):
            raise DeclaredSpecError(source, f"`{key} = ...` at the top level: each provider is a table, [{key}]")
    return document


def shipped(file_name: str) -> type[DeclaredAdapter]:
    """The provider declared in one of the package's own files (one table each); validated on first use."""
    source = f"the shipped declaration {file_name}"
    ((table, raw),) = _document(SHIPPED_DIR / file_name, source).items()
    return declared_class(Declaration(source, table, raw))


def from_file(path: str, known: Collection[str]) -> dict[str, type[DeclaredAdapter]]:
    """Every provider of a user's declaration file, validated now; an id in `known` is refused."""
    source = f"{PROVIDERS_FILE_ENV} {path}"
    classes: dict[str, type[DeclaredAdapter]] = {}
    for table, raw in _document(Path(path).expanduser(), source).items():
        if table in known:
            raise DeclaredSpecError(
                source, f"the id {table!r} is already a provider of genresult-mcp: rename the table", table
            )
        declaration = Declaration(source, table, raw)
        declaration.spec()
        classes[table] = declared_class(declaration)
    return classes
