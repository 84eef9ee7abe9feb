"""The provider registry: one line per provider. Nothing else in the code names a provider."""

from __future__ import annotations

from collections.abc import Mapping

from tools.providers.base import Adapter
from tools.providers.fal import Fal
from tools.providers.flexstack import Flexstack
from tools.providers.modelslab import ModelsLab
from tools.providers.replicate import Replicate
from tools.providers.runway import Runway
from tools.providers.skillsvideo import SkillsVideo
from tools.providers.tensorpix import TensorPix
from tools.providers.veo import Veo
from tools.redact import Redactor

ADAPTERS: dict[str, type[Adapter]] = {
    Fal.id: Fal,
    Flexstack.id: Flexstack,
    ModelsLab.id: ModelsLab,
    Replicate.id: Replicate,
    Runway.id: Runway,
    SkillsVideo.id: SkillsVideo,
    TensorPix.id: TensorPix,
    Veo.id: Veo,
}


def adapters_from_env(env: Mapping[str, str], redactor: Redactor) -> dict[str, Adapter]:
    """Every known provider, configured or not: an unconfigured one answers `provider_not_configured`."""
    return {provider_id: cls.from_env(env, redactor) for provider_id, cls in ADAPTERS.items()}
