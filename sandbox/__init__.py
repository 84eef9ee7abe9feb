"""Emulators of each provider's HTTP API, for tests, benchmarks and `--sandbox`.

`Sandbox` holds one emulator per provider and serves them all from one ASGI app, each under
`/{provider id}`; `env(root)` gives the settings that point genresult-mcp at them.
"""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.routing import Mount

from sandbox.core import Emulator, Fault, Job, JobView, Timeline
from sandbox.flexstack import FlexstackEmulator
from sandbox.kling import KlingEmulator
from sandbox.modelslab import ModelsLabEmulator
from sandbox.skillsvideo import SkillsVideoEmulator
from sandbox.tensorpix import TensorPixEmulator
from tools.clock import Clock

EMULATORS: dict[str, type[Emulator]] = {
    FlexstackEmulator.id: FlexstackEmulator,
    KlingEmulator.id: KlingEmulator,
    ModelsLabEmulator.id: ModelsLabEmulator,
    SkillsVideoEmulator.id: SkillsVideoEmulator,
    TensorPixEmulator.id: TensorPixEmulator,
}

# A host that can never resolve: in-process use routes it to the ASGI app, never to the network.
IN_PROCESS_ROOT = "http://sandbox.genresult.invalid"


class Sandbox:
    def __init__(self, clock: Clock | None = None, *, auto_create: bool = True) -> None:
        self.emulators: dict[str, Emulator] = {
            provider_id: cls(clock, auto_create=auto_create) for provider_id, cls in EMULATORS.items()
        }
        self.app = Starlette(routes=[Mount(f"/{pid}", app=emu.app) for pid, emu in self.emulators.items()])

    def __getitem__(self, provider_id: str) -> Emulator:
        return self.emulators[provider_id]

    def env(self, root: str = IN_PROCESS_ROOT) -> dict[str, str]:
        settings: dict[str, str] = {}
        for provider_id, emulator in self.emulators.items():
            settings.update(emulator.env(f"{root.rstrip('/')}/{provider_id}"))
        return settings


__all__ = ["EMULATORS", "IN_PROCESS_ROOT", "Emulator", "Fault", "Job", "JobView", "Sandbox", "Timeline"]
