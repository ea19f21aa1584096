"""LLM agents: the mesa.Agent, its memory and prompts, decision parsing, policy backends."""

from agents.agent import TipAgent
from agents.decision import Decision, DecisionRequest, Experience, PeerAction

__all__ = ["Decision", "DecisionRequest", "Experience", "PeerAction", "TipAgent"]
