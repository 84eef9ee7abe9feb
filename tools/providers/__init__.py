"""The provider registry: one line per provider. Nothing else in the code names a provider."""

from __future__ import annotations

from collections.abc import Mapping

from tools.providers.base import Adapter
from tools.providers.flexstack import Flexstack
from tools.providers.kling import Kling
from tools.providers.modelslab import ModelsLab
from tools.providers.skillsvideo import SkillsVideo
from tools.providers.tensorpix import TensorPix
from tools.redact import Redactor

ADAPTERS: dict[str, type[Adapter]] = {
    Flexstack.id: Flexstack,
    Kling.id: Kling,
    ModelsLab.id: ModelsLab,
    SkillsVideo.id: SkillsVideo,
    TensorPix.id: TensorPix,
}


def adapters_from_env(env: Mapping[str, str], redactor: Redactor) -> dict[str, Adapter]:
    """Every known provider, configured or not: an unconfigured one answers `provider_not_configured`."""
    return {provider_id: cls.from_env(env, redactor) for provider_id, cls in ADAPTERS.items()}
