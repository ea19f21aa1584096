"""Reward-driven environments: pure Python, no LLM, deterministic given a seed."""

from envs.base import Choices, Environment, Outcome, Scenario, Turn
from envs.errors import InputError
from envs.roleplay import RolePlayEnv
from envs.threshold import ThresholdGame, ThresholdGameEnv

__all__ = [
    "Choices",
    "Environment",
    "InputError",
    "Outcome",
    "RolePlayEnv",
    "Scenario",
    "ThresholdGame",
    "ThresholdGameEnv",
    "Turn",
]
