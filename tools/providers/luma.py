"""Luma Dream Machine (v1): `GET {base}/generations/{id}` with `Authorization: Bearer <key>`.

As documented (lumalabs/lumaai-api openapi.yaml 1.1.0, the lumaai-python SDK's `Generation` type):

- `state` is `queued`, `dreaming` (running), `completed` or `failed`; a failed generation says why in
  `failure_reason` (e.g. "Advanced prompt moderation failed"). There is no cancel: DELETE removes a
  generation, so a generation is never canceled, only gone (404).
- `assets` holds `video`, `image` and `progress_video` URLs. `progress_video` is the in-flight preview, never
  an output. A video generation's `image` is its thumbnail [inf]; an image generation's `image` is the output.
- No progress number, ETA, duration, dimensions or cost; the assets' lifetime is not documented either.
- Ids are UUIDs. Errors are `{"detail": "..."}` with undocumented status codes: 401/403 are read as the key
  rejected, 402 and a 400 that speaks of credits as the account refused, 404 as no such generation.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import httpx
from pydantic import BaseModel, ConfigDict, field_validator

from tools.errors import ProviderProtocolError
from tools.providers.base import KeyedAdapter, Reply, check_task_id, mime_of, normalize_status, parse_wire
from tools.result import JobError, JobState, Output, Status

_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")

STATUS_WORDS: Mapping[str, Status] = {
    "queued": "queued",
    "dreaming": "running",
    "completed": "succeeded",
    "failed": "failed",
}

_CREDITS = re.compile(r"\bcredits?\b|\bbalance\b|\binsufficient\b", re.IGNORECASE)


def _text_or_none(value: Any) -> Any:
    return value if isinstance(value, str) and value.strip() else None


class _Wire(BaseModel):
    model_config = ConfigDict(extra="ignore", defer_build=True)


class _Assets(_Wire):
    video: str | None = None
    image: str | None = None
    progress_video: str | None = None

    # A URL field that holds anything but text is dropped: the rest of the answer still reaches the agent.
    _urls = field_validator("video", "image", "progress_video", mode="before")(_text_or_none)


class _Generation(_Wire):
    state: str
    generation_type: str | None = None
    failure_reason: str | None = None
    assets: _Assets | None = None

    _reason = field_validator("failure_reason", "generation_type", mode="before")(_text_or_none)


class Luma(KeyedAdapter):
    id = "luma"
    display_name = "Luma Dream Machine"
    default_base_url = "https://api.lumalabs.ai/dream-machine/v1"
    base_url_env = "LUMA_BASE_URL"
    api_key_env = "LUMAAI_API_KEY"
    credential_hint = "set LUMAAI_API_KEY"
    credential_envs = ("LUMAAI_API_KEY",)
    example_task_id = "d1f2a3b4-5c6d-4e7f-8a9b-0c1d2e3f4a5b"
    account_page = "lumalabs.ai/api/billing"

    def validate_task_id(self, task_id: str) -> str:
        """A UUID in its 8-4-4-4-12 form, sent lowercase (the form the API returns)."""
        described = "a UUID such as d1f2a3b4-5c6d-4e7f-8a9b-0c1d2e3f4a5b"
        return check_task_id(task_id, _UUID, described).lower()

    def build_request(self, client: httpx.AsyncClient, task_id: str) -> httpx.Request:
        return client.build_request(
            "GET",
            self.url("generations", task_id),
            headers={"Authorization": f"Bearer {self.api_key}", "Accept": "application/json"},
        )

    def parse(self, reply: Reply) -> JobState:
        if reply.status_code != 200:
            raise self._http_error(reply)
        generation = parse_wire(_Generation, reply.json(), self.display_name)
        status = normalize_status(generation.state, STATUS_WORDS)
        outputs = _outputs(generation) if status == "succeeded" else ()
        if status == "succeeded" and not outputs:
            # Completed without a file to show: another read will bring it, as a completed state promises.
            status = "running"
        error = None
        if status == "failed":
            error = JobError(code=generation.state, message=generation.failure_reason or "The generation failed.")
        return JobState(
            status=status,
            provider_status=generation.state,
            outputs=outputs,
            error=error,
        )

    def _http_error(self, reply: Reply) -> Exception:
        code = reply.status_code
        said = self.error_message(reply)
        if code in (401, 403):
            return self.auth_failed(said)
        if code == 404:
            return self.not_found()
        if code == 402 or (code == 400 and _CREDITS.search(said)):
            return self.account_refused(code, said)
        if 400 <= code < 500 and said:
            return ProviderProtocolError(
                f"Luma refused the request (HTTP {code}).{self.quoted(said)} Check the task id: pass the generation "
                "id (a UUID) exactly as the create call returned it."
            )
        return ProviderProtocolError(f"Luma answered HTTP {code}, which its generations endpoint does not use.")


def _outputs(generation: _Generation) -> tuple[Output, ...]:
    assets = generation.assets
    if assets is None:
        return ()
    if assets.video:
        return (Output(url=assets.video, kind="video", mime_type=mime_of(assets.video), thumbnail_url=assets.image),)
    if assets.image and generation.generation_type != "video":
        return (Output(url=assets.image, kind="image", mime_type=mime_of(assets.image)),)
    return ()
