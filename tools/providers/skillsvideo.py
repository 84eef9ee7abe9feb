"""skills.video open platform: `GET {base}/generation/{id}` with `Authorization: Bearer <key>`.

Two status vocabularies are documented: the QueueState enum (IN_QUEUE, IN_PROGRESS, COMPLETED, FAILED,
CANCELED) and, on some model pages, PredictionStatus (starting, processing, succeeded, failed, canceled).
`data` is null until the job completes; a FAILED job carries sanitized `code` and `message`; `usage.total`
is the credits charged. HTTP errors carry `{"error", "code", "message"}`.
"""

from __future__ import annotations

import mimetypes
from collections.abc import Mapping
from typing import Self

import httpx
from pydantic import BaseModel, ConfigDict

from tools.errors import ProviderProtocolError
from tools.providers.base import Adapter, Reply, env_value, normalize_status, parse_wire
from tools.redact import Redactor
from tools.result import Cost, JobError, JobState, Output, OutputKind, Status

STATUS_WORDS: Mapping[str, Status] = {
    "in_queue": "queued",
    "in_progress": "running",
    "completed": "succeeded",
    "failed": "failed",
    "canceled": "canceled",
    "cancelled": "canceled",
    "starting": "queued",
    "processing": "running",
    "succeeded": "succeeded",
}


class _Wire(BaseModel):
    model_config = ConfigDict(extra="ignore")


class _Media(_Wire):
    url: str
    file_name: str | None = None
    content_type: str | None = None
    width: int | None = None
    height: int | None = None
    duration: float | None = None
    fps: float | None = None
    size: int | None = None
    thumbnail_url: str | None = None


class _Data(_Wire):
    type: str | None = None
    videos: list[_Media] | None = None
    video: _Media | None = None
    images: list[_Media] | None = None
    image: _Media | None = None
    audios: list[_Media] | None = None
    audio: _Media | None = None
    url: str | None = None


class _Usage(_Wire):
    total: float | None = None


class _Generation(_Wire):
    id: str | None = None
    status: str
    data: _Data | None = None
    usage: _Usage | None = None
    code: str | None = None
    message: str | None = None


class SkillsVideo(Adapter):
    id = "skillsvideo"
    display_name = "skills.video"
    default_base_url = "https://open.skills.video/api/v1"
    base_url_env = "SKILLSVIDEO_BASE_URL"
    credential_hint = "set SKILLSVIDEO_API_KEY"

    def __init__(self, base_url: str, redactor: Redactor, api_key: str | None) -> None:
        super().__init__(base_url, redactor)
        self._api_key = api_key

    @classmethod
    def from_env(cls, env: Mapping[str, str], redactor: Redactor) -> Self:
        key = env_value(env, "SKILLSVIDEO_API_KEY")
        redactor.add(key)
        return cls(env_value(env, cls.base_url_env) or cls.default_base_url, redactor, key)

    @property
    def configured(self) -> bool:
        return self._api_key is not None

    def build_request(self, client: httpx.AsyncClient, task_id: str) -> httpx.Request:
        return client.build_request(
            "GET",
            self.url("generation", task_id),
            headers={"Authorization": f"Bearer {self._api_key}", "Accept": "application/json"},
        )

    def parse(self, reply: Reply) -> JobState:
        if reply.status_code in (401, 402, 403):
            raise self.auth_failed(self.error_message(reply))
        if reply.status_code == 404:
            raise self.not_found()
        if reply.status_code != 200 and reply.status_code != 202:
            said = self.error_message(reply) or f"HTTP {reply.status_code}"
            raise ProviderProtocolError(f"skills.video refused the result request: {said}")
        gen = parse_wire(_Generation, reply.json(), self.display_name)
        status = normalize_status(gen.status, STATUS_WORDS)
        error = None
        if status in ("failed", "canceled"):
            error = JobError(
                code=gen.code or gen.status.upper(),
                message=self.redact(gen.message or f"The generation is {gen.status}."),
            )
        cost = None
        if gen.usage is not None and gen.usage.total is not None:
            cost = Cost(amount=gen.usage.total, unit="credits")
        outputs = _outputs(gen.data) if status == "succeeded" else ()
        progress = 100.0 if status == "succeeded" else None
        return JobState(
            status=status,
            provider_status=gen.status,
            progress=progress,
            outputs=outputs,
            error=error,
            cost=cost,
        )


def _outputs(data: _Data | None) -> tuple[Output, ...]:
    if data is None:
        return ()
    groups: list[tuple[OutputKind, list[_Media] | None, _Media | None]] = [
        ("video", data.videos, data.video),
        ("image", data.images, data.image),
        ("audio", data.audios, data.audio),
    ]
    outputs: list[Output] = []
    for kind, many, single in groups:
        # `image` repeats `images[0]`; the plural list is the whole answer when present.
        for media in many if many else [single] if single else []:
            outputs.append(_output(media, kind))
    if not outputs and data.url:
        outputs.append(Output(url=data.url, kind=_kind_of(data.type, None, data.url)))
    return tuple(outputs)


def _output(media: _Media, kind: OutputKind) -> Output:
    mime = media.content_type or mimetypes.guess_type(media.file_name or media.url.split("?")[0])[0]
    return Output(
        url=media.url,
        kind=kind,
        mime_type=mime,
        width=media.width,
        height=media.height,
        fps=media.fps,
        duration_s=media.duration,
        size_bytes=media.size,
        thumbnail_url=media.thumbnail_url,
    )


def _kind_of(declared: str | None, mime: str | None, url: str) -> OutputKind:
    word = (declared or mime or mimetypes.guess_type(url.split("?")[0])[0] or "").split("/")[0]
    return _KINDS.get(word, "file")


_KINDS: Mapping[str, OutputKind] = {"video": "video", "image": "image", "audio": "audio"}
