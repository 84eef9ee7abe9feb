"""The provider registry: one line per provider. Nothing else in the code names a provider.

Built-in providers are adapter classes; declared ones are TOML tables read by one generic adapter
(`tools.providers.declared`): those shipped with the package are listed here by file, and a user's own
come from `GENRESULT_PROVIDERS_FILE` when the settings are read.
"""

from __future__ import annotations

from collections.abc import Mapping

from tools.providers import declared
from tools.providers.base import Adapter, env_value
from tools.providers.fal import Fal
from tools.providers.flexstack import Flexstack
from tools.providers.kling import Kling
from tools.providers.luma import Luma
from tools.providers.minimax import MiniMax
from tools.providers.modelslab import ModelsLab
from tools.providers.replicate import Replicate
from tools.providers.runway import Runway
from tools.providers.skillsvideo import SkillsVideo
from tools.providers.tensorpix import TensorPix
from tools.providers.veo import Veo
from tools.redact import Redactor

BUILT_IN: dict[str, type[Adapter]] = {
    Fal.id: Fal,
    Flexstack.id: Flexstack,
    Kling.id: Kling,
    Luma.id: Luma,
    MiniMax.id: MiniMax,
    ModelsLab.id: ModelsLab,
    Replicate.id: Replicate,
    Runway.id: Runway,
    SkillsVideo.id: SkillsVideo,
    TensorPix.id: TensorPix,
    Veo.id: Veo,
}

SHIPPED_DECLARATIONS = ("seedance.toml", "wan.toml")

ADAPTERS: dict[str, type[Adapter]] = {
    **BUILT_IN,
    **{cls.id: cls for cls in map(declared.shipped, SHIPPED_DECLARATIONS)},
}


def adapter_classes(env: Mapping[str, str]) -> dict[str, type[Adapter]]:
    """Every known provider's adapter class: the registry's, then those of the user's declaration file."""
    path = env_value(env, declared.PROVIDERS_FILE_ENV)
    if path is None:
        return ADAPTERS
    return {**ADAPTERS, **declared.from_file(path, known=ADAPTERS)}


def adapters_from_env(env: Mapping[str, str], redactor: Redactor) -> dict[str, Adapter]:
    """Every known provider, configured or not: an unconfigured one answers `provider_not_configured`.

    A declaration file that cannot be used raises `DeclaredSpecError` (a ValueError) saying where and why.
    """
    return {provider_id: cls.from_env(env, redactor) for provider_id, cls in adapter_classes(env).items()}
