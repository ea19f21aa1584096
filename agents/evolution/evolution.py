"""Self-evolution in weights: every K rounds each owner's adapter learns from its experience.

Owners (`sharing`): `per_agent` (one adapter per agent), `per_group` (one per environment
group, or per graph community), `shared` (one population adapter). Objectives: `pg`
(group-relative policy gradient with a KL penalty to the aligned model), `dpo`
(preference pairs, reference = the previous version), `sft` (reward-filtered fine-tuning).
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from functools import partial
from pathlib import Path
from time import perf_counter

import networkx as nx

from agents.evolution.buffer import ExperienceBuffer, Sample
from agents.evolution.data import correction_examples, dpo_examples, pg_examples, sft_examples
from agents.evolution.lineage import Lineage
from agents.evolution.objectives import dpo_loss, pg_loss, sft_loss
from agents.evolution.settings import UpdatesConfig
from agents.evolution.trainer import LoraTrainer
from agents.learning import Learned, PlayedRound
from envs.base import Environment
from envs.errors import InputError

OBJECTIVES = {
    "pg": (pg_examples, pg_loss, False),  # builder, loss, reference is the parent version
    "dpo": (dpo_examples, dpo_loss, True),
    "sft": (None, sft_loss, False),
}


def owners(sharing: str, groups: str, env_group: Sequence[int], graph: nx.Graph, seed: int):
    """The adapter owner of every agent."""
    if sharing == "per_agent":
        return [f"agent-{i}" for i in range(len(env_group))]
    if sharing == "shared":
        return ["population"] * len(env_group)
    if groups == "env":
        return [f"group-{g}" for g in env_group]
    found = nx.community.louvain_communities(graph, seed=seed)  # groups=community
    community = {node: c for c, nodes in enumerate(sorted(found, key=min)) for node in nodes}
    return [f"community-{community[i]}" for i in range(len(env_group))]


class Evolution:
    """A learner: collects each owner's experience and trains its next adapter version
    every K rounds; the owners' agents decide with the new versions from the next round."""

    name = "evolution"

    def __init__(
        self,
        cfg: UpdatesConfig,
        trainer: LoraTrainer,
        owner_of: list[str],
        scenario_ids: list[str],
        run_dir: Path,
    ):
        self.every, self.name, self.beta = cfg.every, cfg.name, cfg.beta
        builder, self.loss, self.reference_is_parent = OBJECTIVES[self.name]
        self.examples = builder or partial(sft_examples, top_q=cfg.top_q)
        self.owner_of = owner_of
        self.scenario_ids = scenario_ids
        self.trainer = trainer
        self.buffer = ExperienceBuffer(cfg.window or self.every)
        self.lineage = Lineage(run_dir / "adapters", cfg.keep)

    def after_round(self, played: PlayedRound) -> Learned:
        """Keep the round's experience; on schedule, train and hand out new versions."""
        self.observe(played)
        if (played.round + 1) % self.every:
            return Learned()
        assigned, rows = self.update(played.round)
        return Learned(
            adapters={i: assigned[o] for i, o in enumerate(self.owner_of) if o in assigned},
            updates=rows,
        )

    def observe(self, played: PlayedRound) -> None:
        t = played.round
        corrections = played.corrections or [None] * len(played.decisions)
        for r, d, o, c in zip(
            played.requests, played.decisions, played.outcomes, corrections, strict=True
        ):
            if d.valid:
                corrected = c is not None and c.valid and c.choice != d.choice
                self.buffer.add(
                    Sample(
                        owner=self.owner_of[r.agent_id],
                        request=r,
                        violated=r.choices.is_violation(d.choice),
                        reward=o.reward,
                        p_violate=d.p_violate,
                        round=t,
                        scenario=self.scenario_ids[r.agent_id],
                        preferred=int(r.choices.is_violation(c.choice)) if corrected else None,
                    )
                )

    def update(self, t: int) -> tuple[dict[str, str], list[dict]]:
        """Train the owners with something to learn; returns {owner: new name} and update rows."""
        tic = perf_counter()
        jobs = []
        for owner in sorted(set(self.owner_of)):
            samples = self.buffer.recent(owner, t)
            examples = self.examples(samples) + correction_examples(samples)
            if examples:
                jobs.append((self.lineage.successor(owner), examples, samples))
        if not jobs:
            return {}, []
        stats = self.trainer.train(
            [(v, ex) for v, ex, _ in jobs], self.loss, self.beta, self.reference_is_parent
        )
        wall = perf_counter() - tic
        self.lineage.root.mkdir(parents=True, exist_ok=True)
        written = self.trainer.save([v for v, _, _ in jobs], self.lineage.root)
        rows = []
        for v, _, samples in jobs:
            self.lineage.commit(v, written / v.name)
            if v.parent is not None:
                self.trainer.retire(v.parent)
            rows.append(
                {
                    "round": t,
                    "owner": v.owner,
                    "version": v.version,
                    "name": v.name,
                    "parent": v.parent,
                    "objective": self.name,
                    **stats[v.name],
                    "mean_reward": sum(s.reward for s in samples) / len(samples),
                    "wall_s": wall,
                }
            )
        shutil.rmtree(written)
        return {v.owner: v.name for v, _, _ in jobs}, rows

    def adapters_in_use(self) -> dict[str, Path]:
        return {v.name: self.lineage.path(v) for v in self.lineage.current.values()}

    def state_dict(self) -> dict:
        return {"buffer": self.buffer.state_dict(), "lineage": self.lineage.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        """Restore, drop versions written after the checkpoint, reload those in use."""
        self.buffer.load_state_dict(state["buffer"])
        self.lineage.load_state_dict(state["lineage"])
        self.lineage.rewind()
        if self.lineage.current:
            self.trainer.load(self.adapters_in_use())


def check_target_modules(cfg: UpdatesConfig, module_names: set[str]) -> None:
    missing = [m for m in cfg.lora.target_modules if m not in module_names]
    if missing or not cfg.lora.target_modules:
        raise InputError(
            f"evolution.lora.target_modules: {missing or '[]'} not in the model "
            "(expected names of its linear layers, e.g. q_proj, v_proj)"
        )


def make_evolution(
    cfg: UpdatesConfig, backend, env: Environment, graph: nx.Graph, run_dir: Path, seed: int
) -> Evolution:
    """The configured evolution (cfg.evolving), training the backend's own model."""
    scorer = backend.trainable()
    if scorer is None:
        raise InputError(
            f"evolution.name={cfg.name}: LoRA updates train the backend's own model; "
            "use backend=organism, hf or vllm"
        )
    check_target_modules(cfg, scorer.module_names())
    trainer = LoraTrainer(scorer, cfg.lora, cfg.lr, cfg.steps, cfg.batch_size, seed)
    owner_of = owners(cfg.sharing, cfg.groups, env.group, graph, seed)
    return Evolution(cfg, trainer, owner_of, [s.id for s in env.scenarios], run_dir)
