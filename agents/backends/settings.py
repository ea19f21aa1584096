"""backend.*: the typed, checked settings of every backend (conf/backend/<name>.yaml).

What needs the backend's libraries (a device torch can use, a dtype, a checkpoint that
loads, the server's key) is checked as the backend loads, still before the run writes
anything. The organism's build settings, its recipes and data stay the mappings the
organism's and aligned organisms' cache keys hash, as written.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from envs.errors import InputError, Section, boolean, integer, number

RULES = ("fixed", "fermi", "imitate_best", "linear_threshold", "reward_following")
NAMES = (*RULES, "openai", "vllm", "hf", "organism")


@dataclass(frozen=True)
class BackendConfig(Section):
    """What every backend has: its name."""

    FIELD = "backend"
    name: str

    def __post_init__(self):
        if self.name not in NAMES:
            raise InputError(
                f"backend.name: unknown backend {self.name!r}; expected one of {', '.join(NAMES)}"
            )


@dataclass(frozen=True)
class FixedConfig(BackendConfig):
    """backend=fixed: one violation probability for every agent."""

    p_violate: float

    def __post_init__(self):
        super().__post_init__()
        p = number(self.p_violate, "backend.p_violate", high=1.0, above=True, below=True)
        self._set("p_violate", p)


@dataclass(frozen=True)
class RewardFollowingConfig(BackendConfig):
    """backend=reward_following: p0 moved by how well violating paid."""

    p0: float
    sensitivity: float
    imitation: float

    def __post_init__(self):
        super().__post_init__()
        self._set("p0", number(self.p0, "backend.p0", high=1.0, above=True, below=True))
        self._set("sensitivity", number(self.sensitivity, "backend.sensitivity", -np.inf))
        self._set("imitation", number(self.imitation, "backend.imitation"))


@dataclass(frozen=True)
class ImitationConfig(BackendConfig):
    """backend=imitate_best, and what every imitation rule has: p0 before a first round."""

    p0: float

    def __post_init__(self):
        super().__post_init__()
        self._set("p0", number(self.p0, "backend.p0", high=1.0))


@dataclass(frozen=True)
class FermiConfig(ImitationConfig):
    beta: float

    def __post_init__(self):
        super().__post_init__()
        self._set("beta", number(self.beta, "backend.beta"))


@dataclass(frozen=True)
class LinearThresholdConfig(ImitationConfig):
    DISTRIBUTIONS: ClassVar = ("constant", "uniform", "normal")
    threshold: float
    distribution: str
    spread: float
    progressive: bool

    def __post_init__(self):
        super().__post_init__()
        self._choice("distribution", self.DISTRIBUTIONS)
        self._set("threshold", number(self.threshold, "backend.threshold", high=1.0))
        self._set("spread", number(self.spread, "backend.spread", high=1.0))
        boolean(self.progressive, "backend.progressive")


@dataclass(frozen=True)
class SamplingConfig(Section):
    """backend.generate: temperature (0: greedy), top_p in (0, 1], max_new_tokens."""

    FIELD = "backend.generate"
    temperature: float
    top_p: float
    max_new_tokens: int

    def __post_init__(self):
        self._set("temperature", number(self.temperature, f"{self.FIELD}.temperature"))
        top_p = number(self.top_p, f"{self.FIELD}.top_p", high=1.0, above=True)
        self._set("top_p", top_p)
        integer(self.max_new_tokens, f"{self.FIELD}.max_new_tokens")

    def sampling(self, length: str) -> dict:
        """The sampling keywords of a generation API whose answer-length keyword is `length`
        (transformers: max_new_tokens, vLLM: max_tokens, OpenAI: max_completion_tokens)."""
        return {"temperature": self.temperature, "top_p": self.top_p, length: self.max_new_tokens}


@dataclass(frozen=True)
class EngineSampling(SamplingConfig):
    """backend=vllm's generate: sampling, and answers constrained to the decision's JSON."""

    constrained: bool

    def __post_init__(self):
        super().__post_init__()
        boolean(self.constrained, f"{self.FIELD}.constrained")


@dataclass(frozen=True)
class ScoreConfig(Section):
    FIELD = "backend.score"
    argmax: bool

    def __post_init__(self):
        boolean(self.argmax, "backend.score.argmax")


@dataclass(frozen=True)
class DeviceConfig(Section):
    """backend.model where the checkpoint is the organism's: device and dtype, resolved by
    agents/backends/loading.py (it needs torch to know what this machine has)."""

    FIELD = "backend.model"
    device: str
    dtype: str


@dataclass(frozen=True)
class CheckpointConfig(DeviceConfig):
    """backend=hf's model: a local checkpoint directory (checked as it loads)."""

    path: str | None
    attn_implementation: str | None


def mapping(value, field: str) -> dict:
    """`value` as a dict if it is a mapping; else an InputError naming `field`."""
    if not isinstance(value, Mapping):
        raise InputError(f"{field}: {value!r} must be a mapping, e.g. {{}}")
    return dict(value)


@dataclass(frozen=True)
class LocalConfig(BackendConfig):
    """What the two backends that run transformers in this process share (organism, hf)."""

    MODEL: ClassVar[type[DeviceConfig]] = DeviceConfig
    model: DeviceConfig
    chat_template_kwargs: dict
    batch_tokens: int
    score: ScoreConfig
    generate: SamplingConfig

    def __post_init__(self):
        super().__post_init__()
        self._set("model", self.MODEL.of(self.model))
        kwargs = mapping(self.chat_template_kwargs, "backend.chat_template_kwargs")
        self._set("chat_template_kwargs", kwargs)
        integer(self.batch_tokens, "backend.batch_tokens")
        self._set("score", ScoreConfig.of(self.score))
        self._set("generate", SamplingConfig.of(self.generate))


@dataclass(frozen=True)
class HFConfig(LocalConfig):
    """backend=hf: a checkpoint, the LoRA adapters loaded at start, a chat template file."""

    MODEL = CheckpointConfig
    adapters: dict
    chat_template: str | None

    def __post_init__(self):
        super().__post_init__()
        self._set("adapters", mapping(self.adapters, "backend.adapters"))


@dataclass(frozen=True)
class OrganismConfig(LocalConfig):
    """backend=organism: the organism's build (`organism`), the alignment it deploys and
    the recipes and data that alignment reads; checked where they are built."""

    align: str | None
    cache_dir: str
    organism: dict
    recipes: dict
    align_data: dict


@dataclass(frozen=True)
class VLLMConfig(BackendConfig):
    """backend=vllm: the engine's settings (vLLM checks their values as it starts)."""

    ENGINE: ClassVar = (
        "dtype",
        "tensor_parallel_size",
        "gpu_memory_utilization",
        "max_model_len",
        "enable_lora",
        "max_loras",
        "max_lora_rank",
        "max_cpu_loras",
        "enable_prefix_caching",
        "enforce_eager",
    )
    model: str | None
    seed: int
    dtype: str
    tensor_parallel_size: int
    gpu_memory_utilization: float
    max_model_len: int
    enforce_eager: bool
    enable_prefix_caching: bool
    enable_lora: bool
    max_loras: int
    max_lora_rank: int
    max_cpu_loras: int
    enable_sleep_mode: bool
    generate: EngineSampling
    chat_template_kwargs: dict
    chat_template: str | None

    def __post_init__(self):
        super().__post_init__()
        integer(self.seed, "backend.seed", minimum=0)
        self._set("generate", EngineSampling.of(self.generate))
        boolean(self.enable_sleep_mode, "backend.enable_sleep_mode")
        kwargs = mapping(self.chat_template_kwargs, "backend.chat_template_kwargs")
        self._set("chat_template_kwargs", kwargs)

    def engine(self) -> dict:
        """The settings vLLM's LLM takes as they are (those not null)."""
        return {k: getattr(self, k) for k in self.ENGINE if getattr(self, k) is not None}


@dataclass(frozen=True)
class OpenAIConfig(BackendConfig):
    """backend=openai: a server, its model, the client's patience."""

    base_url: str
    model: str | None
    api_key_env: str | None
    concurrency: int
    timeout_s: float
    max_retries: int
    generate: SamplingConfig
    chat_template_kwargs: dict

    def __post_init__(self):
        super().__post_init__()
        if not self.model:
            raise InputError("backend.model: required (the model name the server serves)")
        self._set("timeout_s", number(self.timeout_s, "backend.timeout_s", above=True))
        integer(self.max_retries, "backend.max_retries", minimum=0)
        integer(self.concurrency, "backend.concurrency")
        self._set("generate", SamplingConfig.of(self.generate))
        kwargs = mapping(self.chat_template_kwargs, "backend.chat_template_kwargs")
        self._set("chat_template_kwargs", kwargs)


KINDS: dict[str, type[BackendConfig]] = {
    "organism": OrganismConfig,
    "hf": HFConfig,
    "vllm": VLLMConfig,
    "openai": OpenAIConfig,
    "fixed": FixedConfig,
    "reward_following": RewardFollowingConfig,
    "imitate_best": ImitationConfig,
    "fermi": FermiConfig,
    "linear_threshold": LinearThresholdConfig,
}


def backend_config(values: Mapping) -> BackendConfig:
    """The typed backend section for its name (an unknown name is named by BackendConfig's
    check)."""
    return BackendConfig.of_kind(values, KINDS)
