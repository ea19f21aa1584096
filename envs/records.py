"""The on-disk schema of a run's records: one definition shared by writer and readers.

`sim.recorder` writes with these schemas and `analysis` scans with them, so runs
written by older versions (missing columns) still load: absent columns read as null.
It lives in `envs`, the package everything else may import and which imports nothing
of ours, so `analysis` reads it without importing `sim`; the columns that describe a
scenario's conditions are the environments' own vocabulary.
"""

import polars as pl

CONDITIONS = pl.Schema(
    {
        "source": pl.String,  # templates | atp | generator
        "family": pl.String,
        "split": pl.String,
        "role": pl.String,
        "game": pl.String,
        "threshold": pl.Int32,
        "group_size": pl.Int32,
        "payoff_comply": pl.Float64,
        "payoff_violate": pl.Float64,
        "payoff_ratio": pl.Float64,
        "payoff_high": pl.Float64,
        "payoff_normal": pl.Float64,
        "payoff_low": pl.Float64,
        "schedule": pl.String,
    }
)
"""A scenario's conditions (the fields of `envs.base.Conditions`, described there)."""

RUN_CONDITIONS = ("method",)
"""Conditions of a whole run, read from its config beside its records (analysis.conditions):
`method`, the defences in force (the policy's alignment and the guard), what the alignment
and guard presets compare."""

GUARD = pl.Schema(
    {
        "proposed": pl.String,  # the agent's own choice, before the guard (null: invalid)
        "proposed_violated": pl.Boolean,
        "guard_changed": pl.Boolean,  # the guard's choice differs from the proposal
        "guard_p_correct": pl.Float64,  # the guard's P(the proposal is correct), if it scores
    }
)
"""A guarded run's decision columns; `choice`, `valid` and `violated` are then the
executed (reviewed) choice's. Written only by runs with a guard (records of runs without
one are unchanged); readers see them as null there."""

DECISIONS = pl.Schema(
    {
        "run_id": pl.String,
        "round": pl.Int32,
        "agent": pl.Int32,
        "group": pl.Int32,  # the environment instance the agent plays in (item or game)
        "paradigm": pl.String,  # "roleplay" | "threshold"
        "scenario": pl.String,  # scenario id, e.g. "delivery_worker/r1.05"
        **CONDITIONS,
        "supervision": pl.String,  # "supervised" | "unsupervised" | "neutral" | null
        "choice": pl.String,  # the chosen label, null when the answer was invalid
        "valid": pl.Boolean,
        "violated": pl.Boolean,  # null when invalid
        "p_violate": pl.Float64,  # model probability of the violating label, null if unknown
        "reward": pl.Float64,
        "capital": pl.Float64,  # cumulative capital after this round
        "adapter": pl.String,  # adapter version used, null for the base policy
        "n_neighbors": pl.Int32,
        "n_violating_neighbors": pl.Int32,  # among neighbours, in the previous round
        "share_violating_neighbors": pl.Float64,  # null without neighbours or history
        "mean_payoff_violating_neighbors": pl.Float64,
        "mean_payoff_complying_neighbors": pl.Float64,
        "prompt_tokens": pl.Int32,
        "completion_tokens": pl.Int32,
        "latency_s": pl.Float64,  # the agent's share of the round's batched call
        "text": pl.String,  # raw answer text
        "prompt": pl.String,  # the chat messages as JSON, when run.record_prompts is on
        **GUARD,
    }
)

ROUNDS = pl.Schema(
    {
        "run_id": pl.String,
        "round": pl.Int32,
        "n_agents": pl.Int32,
        "n_valid": pl.Int32,
        "violation_rate": pl.Float64,  # violations / valid decisions
        "mean_p_violate": pl.Float64,
        "mean_reward": pl.Float64,
        "mean_capital": pl.Float64,
        "decide_s": pl.Float64,  # wall time of the round's batched policy call
        "wall_s": pl.Float64,
    }
)

UPDATES = pl.Schema(
    {
        "run_id": pl.String,
        "round": pl.Int32,  # the round after which the update ran
        "owner": pl.String,  # agent id, group name or "population"
        "version": pl.Int32,
        "name": pl.String,  # unique adapter name, e.g. "agent-3-v2"
        "parent": pl.String,  # previous adapter name, null for the first
        "objective": pl.String,  # "pg" | "dpo" | "sft"
        "samples": pl.Int32,
        "loss": pl.Float64,
        "kl": pl.Float64,
        "mean_reward": pl.Float64,
        "wall_s": pl.Float64,
    }
)

REFERENCES = pl.Schema(
    {
        "run_id": pl.String,
        "round": pl.Int32,
        "stage": pl.String,  # "round": the adapter that decided the round | "update": the
        # version a LoRA update made after it (decides from the next round on)
        "owner": pl.String,  # adapter owner, as in updates.parquet ("population" without one)
        "adapter": pl.String,  # adapter version, null for the aligned model itself
        "probes": pl.Int32,  # probe prompts the means are over
        "p_violate": pl.Float64,  # mean P(violate) of the policy on the probes
        "kl_base": pl.Float64,  # mean two-choice KL(policy || pre-trained base); null: no base
        "dp_base": pl.Float64,  # mean P(violate) minus the base's
        "kl_aligned": pl.Float64,  # mean two-choice KL(policy || the aligned start)
        "dp_aligned": pl.Float64,  # mean P(violate) minus the aligned start's
    }
)
"""Distances of the policy to its references on the run's probe prompts (agents/reference.py)."""

GRAPH = pl.Schema(
    {
        "source": pl.Int32,  # agent ids; one row per pair of neighbours, source < target
        "target": pl.Int32,
    }
)
