"""Self-evolution in weights: periodic LoRA updates from each agent's own rewarded experience.

Data (buffer.py, data.py), objectives (objectives.py) and trainer (trainer.py) are kept
apart as in TRL; lineage.py names and stores adapter versions; evolution.py runs them;
settings.py is the typed, checked evolution.* config. Nothing is imported here, so the
settings are read without loading the training stack.
"""
