"""Emulators of each provider's HTTP API, for tests, benchmarks and `--sandbox`.

`Sandbox` holds one emulator per provider and serves them all from one ASGI app, each under
`/{provider id}`; `env(root)` gives the settings that point genresult-mcp at them.
"""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.routing import Mount

from sandbox.core import Emulator, Fault, Job, JobView, Timeline
from sandbox.fal import FalEmulator
from sandbox.flexstack import FlexstackEmulator
from sandbox.kling import KlingEmulator
from sandbox.luma import LumaEmulator
from sandbox.minimax import MiniMaxEmulator
from sandbox.modelslab import ModelsLabEmulator
from sandbox.replicate import ReplicateEmulator
from sandbox.runway import RunwayEmulator
from sandbox.seedance import SeedanceEmulator
from sandbox.skillsvideo import SkillsVideoEmulator
from sandbox.tensorpix import TensorPixEmulator
from sandbox.veo import VeoEmulator
from sandbox.wan import WanEmulator
from tools.clock import Clock

EMULATORS: dict[str, type[Emulator]] = {
    FalEmulator.id: FalEmulator,
    FlexstackEmulator.id: FlexstackEmulator,
    KlingEmulator.id: KlingEmulator,
    LumaEmulator.id: LumaEmulator,
    MiniMaxEmulator.id: MiniMaxEmulator,
    ModelsLabEmulator.id: ModelsLabEmulator,
    ReplicateEmulator.id: ReplicateEmulator,
    RunwayEmulator.id: RunwayEmulator,
    SkillsVideoEmulator.id: SkillsVideoEmulator,
    TensorPixEmulator.id: TensorPixEmulator,
    SeedanceEmulator.id: SeedanceEmulator,
    VeoEmulator.id: VeoEmulator,
    WanEmulator.id: WanEmulator,
}

# A host that can never resolve: in-process use routes it to the ASGI app, never to the network.
IN_PROCESS_ROOT = "http://sandbox.genresult.invalid"


class Sandbox:
    def __init__(self, clock: Clock | None = None, *, auto_create: bool = True, pace: float = 1.0) -> None:
        self.emulators: dict[str, Emulator] = {
            provider_id: cls(clock, auto_create=auto_create) for provider_id, cls in EMULATORS.items()
        }
        for emulator in self.emulators.values():
            emulator.pace = pace
        self.app = Starlette(routes=[Mount(f"/{pid}", app=emu.app) for pid, emu in self.emulators.items()])

    def __getitem__(self, provider_id: str) -> Emulator:
        return self.emulators[provider_id]

    def env(self, root: str = IN_PROCESS_ROOT) -> dict[str, str]:
        settings: dict[str, str] = {}
        for provider_id, emulator in self.emulators.items():
            settings.update(emulator.env(f"{root.rstrip('/')}/{provider_id}"))
        return settings


__all__ = ["EMULATORS", "IN_PROCESS_ROOT", "Emulator", "Fault", "Job", "JobView", "Sandbox", "Timeline"]
