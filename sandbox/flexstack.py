"""Flexstack AI ("Parrot API") emulator: login, refresh and the video result envelope under `/v1`.

Shapes follow PROVIDERS.md §1 and the two published SDKs:
- `POST /v1/user/login` with HTTP Basic answers `data.access_token` [sdk] and `data.refresh_token` [inf];
- `POST /v1/user/refresh_token` takes `refresh_token` as a form field (current SDK) or JSON (older Parrot SDK),
  and rotates both tokens [inf];
- `/v1/ai/video_generation/{task_id}` answers GET (the SDKs) and POST (the docs), Bearer auth.
Status words: COMPLETED [doc]; PENDING, PROCESSING and FAILED [inf]. No cancel call or canceled state was
found for this provider, so a canceled timeline is rendered as FAILED with a message saying it was canceled.
Errors (401, 404, 429, 5xx) use the same envelope with no task in it [inf]: the docs' "Error Response" page
could not be read.

For tests: `expire_tokens()` ends the access tokens issued so far (the configured sandbox key stays valid),
`token_lifetime_s` ends them on the clock, `echo_credentials` makes a 401 repeat the token it rejected (as
some providers do), `missing_task_status` chooses between a 404 and a 200 envelope for unknown tasks, and
`login_status` / `refresh_status` make every login or refresh answer that HTTP error.
"""

from __future__ import annotations

import base64
import binascii
import itertools
import json
import secrets
from typing import Any
from urllib.parse import parse_qs, quote

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from sandbox.core import Emulator, Job, JobView
from tools.clock import Clock

_WORDS = {
    "queued": "PENDING",
    "running": "PROCESSING",
    "succeeded": "COMPLETED",
    "failed": "FAILED",
    "canceled": "FAILED",
}


class FlexstackEmulator(Emulator):
    id = "flexstack"
    api_prefix = "/v1"
    api_key_env = "FLEXSTACK_API_KEY"
    base_url_env = "FLEXSTACK_BASE_URL"
    sandbox_key = "fs-sandbox-access-token-0123456789"
    # No canceled state is documented: a canceled timeline is shown as FAILED.
    outcomes = ("succeeded", "failed")
    sandbox_username = "sandbox@flexstack.invalid"
    sandbox_password = "fs-sandbox-password-0123"

    def __init__(self, clock: Clock | None = None, *, auto_create: bool = True) -> None:
        super().__init__(clock, auto_create=auto_create)
        self.username = self.sandbox_username
        self.password = self.sandbox_password
        self.token_lifetime_s: float | None = 3600.0
        self.echo_credentials = False
        self.missing_task_status = 404
        self.login_status: int | None = None
        """When set, every login answers this HTTP status with the error envelope (a 503: login in trouble)."""
        self.refresh_status: int | None = None
        """Likewise for every refresh."""
        self.access_tokens: dict[str, float] = {}
        """Live access tokens issued at run time, with the clock reading when each was issued."""
        self.refresh_tokens: set[str] = set()
        self.issued: list[str] = []
        """Every token ever handed out, so a test can check that none of them leaks."""
        self._serial = itertools.count(1)

    def login_env(self, root: str) -> dict[str, str]:
        """Settings that make genresult-mcp log in with username and password rather than use a key."""
        return {
            "FLEXSTACK_USERNAME": self.username,
            "FLEXSTACK_PASSWORD": self.password,
            self.base_url_env: root.rstrip("/") + self.api_prefix,
        }

    def expire_tokens(self, *, refresh_tokens: bool = False) -> None:
        """End every access token issued so far (and the refresh tokens too, when asked)."""
        self.access_tokens.clear()
        if refresh_tokens:
            self.refresh_tokens.clear()

    def routes(self) -> list[BaseRoute]:
        return [
            Route(f"{self.api_prefix}/user/login", self.login, methods=["POST"]),
            Route(f"{self.api_prefix}/user/refresh_token", self.refresh, methods=["POST"]),
            Route(
                f"{self.api_prefix}/ai/video_generation/{{task_id:path}}",
                self.get_result,
                methods=["GET", "POST"],
            ),
        ]

    def error_body(self, status: int, message: str, job: Job | None = None) -> Any:
        return self._envelope({"is_success": False, "data": None}, errors=[message], status="failed")

    # ---- user endpoints ----

    async def login(self, request: Request) -> Response:
        await self.record(request)
        if self.login_status is not None:
            return JSONResponse(self.error_body(self.login_status, "Internal error"), self.login_status)
        if _basic_credentials(request.headers.get("authorization", "")) != (self.username, self.password):
            return JSONResponse(self.error_body(401, "Incorrect username or password."), 401)
        return JSONResponse(self._envelope(self._issue()))

    async def refresh(self, request: Request) -> Response:
        await self.record(request)
        if self.refresh_status is not None:
            return JSONResponse(self.error_body(self.refresh_status, "Internal error"), self.refresh_status)
        token = _refresh_token_field(await request.body(), request.headers.get("content-type", ""))
        if token is None or token not in self.refresh_tokens:
            return JSONResponse(self.error_body(401, "Invalid or expired refresh token."), 401)
        self.refresh_tokens.discard(token)
        return JSONResponse(self._envelope(self._issue()))

    # ---- the result endpoint ----

    async def get_result(self, request: Request) -> Response:
        await self.record(request)
        presented = _bearer(request.headers.get("authorization", ""))
        if presented is None or not self._valid(presented):
            said = "Could not validate credentials."
            if self.echo_credentials and presented:
                said = f"Could not validate credentials: token {presented} is invalid or expired."
            return JSONResponse(self.error_body(401, said), 401)
        job = self.find_job(request.path_params["task_id"])
        if job is None:
            return JSONResponse(self.error_body(404, "Task not found."), self.missing_task_status)
        if (fault := await self.take_fault(job)) is not None:
            return fault
        return JSONResponse(self.render(job, job.view(self.clock.monotonic()), request))

    def render(self, job: Job, view: JobView, request: Request) -> dict[str, Any]:
        task: dict[str, Any] = {
            "task_id": job.task_id,
            "total_tasks": 1,
            "percent": view.progress,
            "status": _WORDS[view.phase],
            "url_download": "",
        }
        if view.phase == "succeeded":
            task["url_download"] = self.file_url(request, f"videos/{quote(job.task_id, safe='')}.mp4")
            return self._envelope({"is_success": True, "data": task})
        if view.phase in ("failed", "canceled"):
            message = (
                "The task was canceled."
                if view.phase == "canceled"
                else job.detail.get("message", "Video generation failed: the worker returned no frames.")
            )
            return self._envelope({"is_success": False, "data": task}, errors=[message], status="failed")
        return self._envelope({"is_success": True, "data": task})

    # ---- tokens ----

    def _issue(self) -> dict[str, str]:
        serial = next(self._serial)
        access = f"fs-at-{serial:04d}-{secrets.token_hex(12)}"
        refresh = f"fs-rt-{serial:04d}-{secrets.token_hex(12)}"
        self.access_tokens[access] = self.clock.monotonic()
        self.refresh_tokens.add(refresh)
        self.issued += [access, refresh]
        return {"access_token": access, "refresh_token": refresh, "token_type": "bearer"}

    def _valid(self, token: str) -> bool:
        if token == self.api_key:
            return True
        issued_at = self.access_tokens.get(token)
        if issued_at is None:
            return False
        return self.token_lifetime_s is None or self.clock.monotonic() - issued_at < self.token_lifetime_s

    def _envelope(self, data: Any, *, errors: list[str] | None = None, status: str = "success") -> dict[str, Any]:
        stamp = self.clock.now().strftime("%Y-%m-%d %H:%M:%S")
        return {
            "data": data,
            "errors": errors or [],
            "error_description": "; ".join(errors or []),
            "start_time": stamp,
            "end_time": stamp,
            "host_of_client_call_request": "127.0.0.1",
            "total_time_by_second": 0.01,
            "status": status,
        }


def _bearer(header: str) -> str | None:
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer":
        return None
    return token.strip() or None


def _basic_credentials(header: str) -> tuple[str, str] | None:
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        username, sep, password = base64.b64decode(encoded.strip(), validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return None
    return (username, password) if sep else None


def _refresh_token_field(body: bytes, content_type: str) -> str | None:
    if content_type.startswith("application/json"):
        try:
            data = json.loads(body)
        except ValueError:
            return None
        value = data.get("refresh_token") if isinstance(data, dict) else None
        return value if isinstance(value, str) else None
    values = parse_qs(body.decode("latin-1")).get("refresh_token")
    return values[0] if values else None
