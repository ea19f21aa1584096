"""LoRA updates inside the serving model, several owners in one forward/backward.

The trainer works through a `LabelScorer` (the backend's `trainable()` view): it adds
versions to the scorer's adapter table, which the backend decides from, and computes
label log-probabilities exactly as score mode reads them.

Each owner's versions live in one PEFT adapter of the model: a new version trains in
its parent's adapter, starting from the parent's weights (a first version in a fresh
LoRA, i.e. the identity), and is saved under its own name; the parent's name then
stops resolving. So an update adds no PEFT adapters and deletes none (both cost more
the more adapters a model holds). All versions of one update train together: every
forward mixes owners through PEFT's `adapter_names=` routing (the model stays in eval
mode, which PEFT requires for mixed batches; LoRA dropout is 0), yet each adapter
follows exactly the trajectory it would follow if trained alone (see `train`).
"""

from __future__ import annotations

import hashlib
import tempfile
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path

import numpy as np
import torch
from peft import LoraConfig

from agents.backends.adapters import BASE
from agents.backends.batching import within_memory
from agents.backends.label_scorer import LabelScorer
from agents.evolution.data import Example
from agents.evolution.lineage import Version
from agents.evolution.settings import LoraSettings

Objective = Callable[..., tuple[torch.Tensor, torch.Tensor]]


def stable_seed(*parts: object) -> int:
    return int.from_bytes(hashlib.sha256(repr(parts).encode()).digest()[:4], "little")


class LoraTrainer:
    """Adds, trains and saves adapter versions in a model's adapter table."""

    def __init__(
        self,
        scorer: LabelScorer,
        lora: LoraSettings,
        lr: float,
        steps: int,
        batch_size: int,
        seed: int,
    ):
        self.scorer = scorer
        self.adapters = scorer.adapters
        self.config = LoraConfig(
            r=lora.r,
            lora_alpha=lora.alpha,
            target_modules=list(lora.target_modules),
            lora_dropout=0.0,
            bias="none",
            task_type="CAUSAL_LM",
        )
        self.lr = lr
        self.steps = steps
        self.batch_size = batch_size
        self.rows_per_pass = batch_size  # lowered if the device runs out of memory
        self.seed = seed

    def add(self, v: Version) -> str:
        """The PEFT adapter v trains in, holding its parent's weights; returns its name.

        A first version gets a fresh adapter named after its owner, initialised from a
        seed of its own name.
        """
        if v.parent is not None:
            return self.adapters.alias(v.name, v.parent)
        torch.manual_seed(stable_seed(self.seed, v.name))
        self.adapters.add(v.name, v.owner, self.config)
        return v.owner

    def reference(self, jobs, use_parent: bool) -> torch.Tensor:
        """Label log-probabilities under the reference: the base model, or each parent
        (taken before training, while the adapter still holds the parent's weights)."""
        rows = [(v, ex) for v, examples in jobs for ex in examples]
        names = self.adapters.peft
        peft = [names[v.parent] if use_parent and v.parent else BASE for v, _ in rows]
        requests = [ex.sample.request for _, ex in rows]

        @torch.no_grad()
        def scored(part: np.ndarray) -> torch.Tensor:
            chosen = [requests[i] for i in part], [peft[i] for i in part]
            return self.scorer.label_logprob_tensor(*chosen)

        return torch.cat(self.in_passes(len(rows), scored))

    def in_passes(self, n: int, compute: Callable[[np.ndarray], object]) -> list:
        """compute(rows) over rows 0..n-1, at most `rows_per_pass` at a time; the results
        in order.

        A pass the device has no memory for is split in two (compute must leave nothing
        behind when it fails), and later passes start from what fitted.
        """
        size = self.rows_per_pass
        device = self.scorer.device
        done, halves = within_memory(
            [np.arange(i, min(i + size, n)) for i in range(0, n, size)],
            compute,
            device,
            lambda row: (
                f"evolution: one training example does not fit in {device.type} memory; "
                "use a smaller model or a shorter agents.memory_window"
            ),
        )
        self.rows_per_pass = min([size, *map(len, halves)])
        return [result for _, result, _ in done]

    def trainable(self, names: set[str]) -> list[torch.nn.Parameter]:
        """Unfreeze exactly the named adapters' LoRA weights; returns them."""
        params = []
        for n, p in self.adapters.model.named_parameters():
            p.requires_grad_(any(f".{name}." in n for name in names))
            if p.requires_grad:
                params.append(p)
        return params

    def owner_batches(self, rows: np.ndarray, rng: np.random.Generator) -> list[np.ndarray]:
        """One pass over an owner's rows: shuffled by its own RNG, cut into batches."""
        order = rows[rng.permutation(len(rows))]
        return [order[i : i + self.batch_size] for i in range(0, len(order), self.batch_size)]

    def row_losses(
        self,
        rows: Sequence[tuple[Version, Example]],
        ref: torch.Tensor,
        objective: Objective,
        beta: float,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-row loss and KL of examples, each under its own version's adapter."""
        examples = [ex for _, ex in rows]
        logp = self.scorer.label_logprob_tensor(
            [ex.sample.request for ex in examples],
            [self.adapters.peft[v.name] for v, _ in rows],
        )
        labels = torch.tensor([ex.label for ex in examples])
        weights = torch.tensor([ex.weight for ex in examples], dtype=logp.dtype)
        return objective(logp, ref, labels, weights, beta)

    def train(
        self,
        jobs: Sequence[tuple[Version, list[Example]]],
        objective: Objective,
        beta: float,
        reference_is_parent: bool,
    ) -> dict[str, dict]:
        """Train every job's new version; returns per version its loss, KL and sample count.

        Every owner shuffles its own examples with an RNG seeded by its version's name and
        cuts them into batches of `batch_size`; step k of all owners shares forward passes
        (at most `batch_size` rows each, gradients accumulated) and one optimiser step. Each
        row's loss is divided by its owner's batch size, and an owner absent from a step
        has no gradient, so AdamW leaves it alone: every adapter takes exactly the steps,
        on exactly the batches, it would take if trained alone.
        """
        params = self.trainable({self.add(v) for v, _ in jobs})
        ref = self.reference(jobs, reference_is_parent)
        rows = [(v, ex) for v, examples in jobs for ex in examples]
        ends = np.cumsum([len(examples) for _, examples in jobs])
        owned = [np.arange(end - len(ex), end) for (_, ex), end in zip(jobs, ends, strict=True)]
        rngs = [np.random.default_rng(stable_seed(self.seed, v.name)) for v, _ in jobs]
        optimizer = torch.optim.AdamW(params, lr=self.lr, weight_decay=0.0)
        last = torch.zeros(len(rows), 2)

        def accumulate(index: np.ndarray, scale: torch.Tensor, part: np.ndarray) -> None:
            """Add the part's weighted loss gradient to .grad, once all of it is computed."""
            chunk = index[part]
            loss, kl = self.row_losses([rows[j] for j in chunk], ref[chunk], objective, beta)
            total = (loss * scale[torch.from_numpy(part)].to(loss)).sum()
            grads = torch.autograd.grad(total, params, allow_unused=True)
            for p, g in zip(params, grads, strict=True):
                if g is not None:
                    p.grad = g if p.grad is None else p.grad + g
            last[chunk] = torch.stack([loss, kl], 1).detach().float().cpu()

        for _ in range(self.steps):
            passes = [self.owner_batches(idx, rng) for idx, rng in zip(owned, rngs, strict=True)]
            for k in range(max(len(p) for p in passes)):
                step = [p[k] for p in passes if k < len(p)]
                index = np.concatenate(step)
                scale = torch.cat([torch.full((len(b),), 1.0 / len(b)) for b in step])
                optimizer.zero_grad()
                self.in_passes(len(index), partial(accumulate, index, scale))
                optimizer.step()
        for p in params:
            p.requires_grad_(False)
        return {
            v.name: {
                "loss": float(last[idx, 0].mean()),
                "kl": float(last[idx, 1].mean()),
                "samples": len(examples),
            }
            for (v, examples), idx in zip(jobs, owned, strict=True)
        }

    def save(self, versions: Sequence[Version], into: Path) -> Path:
        """Write the versions in PEFT's layout to <fresh directory in `into`>/<name>.

        One `save_pretrained` call for all of them, handed the LoRA weights once (PEFT
        otherwise rebuilds the model's state dict, and its model card, per adapter).
        Returns the fresh directory; the caller moves the versions into place.
        """
        tmp = Path(tempfile.mkdtemp(prefix=".saving-", dir=into))
        model = self.adapters.model
        peft = {v.name: self.adapters.peft[v.name] for v in versions}
        lora = {k: w for k, w in model.state_dict().items() if "lora_" in k}
        model.save_pretrained(tmp, selected_adapters=list(peft.values()), state_dict=lora)
        for name, adapter in peft.items():
            (tmp / adapter).rename(tmp / name)
        return tmp

    def retire(self, name: str) -> None:
        """A version superseded in its adapter: its name no longer resolves (files stay)."""
        self.adapters.retire(name)

    def load(self, adapters: dict[str, Path]) -> None:
        """Versions saved earlier (a resumed run's), back in the table."""
        self.adapters.load(adapters)
