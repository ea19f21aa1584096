"""Self-evolution in weights: periodic LoRA updates from each agent's own rewarded experience.

Data (buffer.py, data.py), objectives (objectives.py) and trainer (trainer.py) are kept
apart as in TRL; lineage.py names and stores adapter versions; evolution.py runs them.
"""

from agents.evolution.evolution import Evolution, check_settings, make_evolution

__all__ = ["Evolution", "check_settings", "make_evolution"]
