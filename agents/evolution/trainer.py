"""LoRA updates inside the serving model, several owners in one forward/backward.

Each new version is a new PEFT adapter initialised from its parent's weights (a fresh
LoRA, i.e. the identity, for a first version). All versions of one update train
together: every forward mixes owners through PEFT's `adapter_names=` routing (the model
stays in eval mode, which PEFT requires for mixed batches; LoRA dropout is 0), yet each
adapter follows exactly the trajectory it would follow if trained alone (see `train`).
"""

from __future__ import annotations

import hashlib
import tempfile
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from peft import LoraConfig, PeftModel, get_peft_model
from peft.tuners.lora import LoraLayer

from agents.backends.hf import BASE, HFBackend
from agents.evolution.data import Example
from agents.evolution.lineage import Version

Objective = Callable[..., tuple[torch.Tensor, torch.Tensor]]


def stable_seed(*parts: object) -> int:
    return int.from_bytes(hashlib.sha256(repr(parts).encode()).digest()[:4], "little")


class LoraTrainer:
    """Adds, trains and saves adapter versions on the backend's own model."""

    def __init__(
        self, backend: HFBackend, lora: dict, lr: float, steps: int, batch_size: int, seed: int
    ):
        self.backend = backend
        self.config = LoraConfig(
            r=int(lora["r"]),
            lora_alpha=int(lora["alpha"]),
            target_modules=list(lora["target_modules"]),
            lora_dropout=0.0,
            bias="none",
            task_type="CAUSAL_LM",
        )
        self.lr = lr
        self.steps = steps
        self.batch_size = batch_size
        self.seed = seed

    def add(self, v: Version) -> None:
        """A new adapter named v.name, with its parent's weights (or LoRA's identity init)."""
        torch.manual_seed(stable_seed(self.seed, v.name))
        model = self.backend.model
        if isinstance(model, PeftModel):
            model.add_adapter(v.name, self.config)
        else:
            with warnings.catch_warnings():  # PEFT reads an attribute transformers 5 deprecates
                warnings.filterwarnings("ignore", message=".is_gradient_checkpointing.")
                self.backend.model = get_peft_model(model, self.config, adapter_name=v.name)
        if v.parent is not None:
            for layer in self.backend.model.modules():
                if isinstance(layer, LoraLayer) and v.parent in layer.lora_A:
                    layer.lora_A[v.name].weight.data.copy_(layer.lora_A[v.parent].weight.data)
                    layer.lora_B[v.name].weight.data.copy_(layer.lora_B[v.parent].weight.data)
        self.backend.model.eval()

    def reference(self, jobs, use_parent: bool) -> torch.Tensor:
        """Label log-probabilities under the reference: the base model, or each parent."""
        rows = [(v, ex) for v, examples in jobs for ex in examples]
        names = [(v.parent or BASE) if use_parent else BASE for v, _ in rows]
        requests = [ex.sample.request for _, ex in rows]
        size = self.batch_size
        with torch.no_grad():
            return torch.cat(
                [
                    self.backend.label_logprob_tensor(requests[i : i + size], names[i : i + size])
                    for i in range(0, len(rows), size)
                ]
            )

    def trainable(self, names: set[str]) -> list[torch.nn.Parameter]:
        """Unfreeze exactly the named adapters' LoRA weights; returns them."""
        params = []
        for n, p in self.backend.model.named_parameters():
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
        logp = self.backend.label_logprob_tensor(
            [ex.sample.request for ex in examples], [v.name for v, _ in rows]
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
        (chunks of `batch_size` rows, gradients accumulated) and one optimiser step. Each
        row's loss is divided by its owner's batch size, and an owner absent from a step
        has no gradient, so AdamW leaves it alone: every adapter takes exactly the steps,
        on exactly the batches, it would take if trained alone.
        """
        for v, _ in jobs:
            self.add(v)
        params = self.trainable({v.name for v, _ in jobs})
        rows = [(v, ex) for v, examples in jobs for ex in examples]
        ref = self.reference(jobs, reference_is_parent)
        ends = np.cumsum([len(examples) for _, examples in jobs])
        owned = [np.arange(end - len(ex), end) for (_, ex), end in zip(jobs, ends, strict=True)]
        rngs = [np.random.default_rng(stable_seed(self.seed, v.name)) for v, _ in jobs]
        optimizer = torch.optim.AdamW(params, lr=self.lr, weight_decay=0.0)
        last = torch.zeros(len(rows), 2)
        for _ in range(self.steps):
            passes = [self.owner_batches(idx, rng) for idx, rng in zip(owned, rngs, strict=True)]
            for k in range(max(len(p) for p in passes)):
                step = [p[k] for p in passes if k < len(p)]
                index = np.concatenate(step)
                scale = torch.cat([torch.full((len(b),), 1.0 / len(b)) for b in step])
                optimizer.zero_grad()
                for i in range(0, len(index), self.batch_size):
                    chunk = index[i : i + self.batch_size]
                    batch = [rows[j] for j in chunk]
                    loss, kl = self.row_losses(batch, ref[chunk], objective, beta)
                    (loss * scale[i : i + len(chunk)].to(loss)).sum().backward()
                    last[chunk] = torch.stack([loss, kl], 1).detach().float().cpu()
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
        model = self.backend.model
        lora = {k: v for k, v in model.state_dict().items() if "lora_" in k}
        model.save_pretrained(tmp, selected_adapters=[v.name for v in versions], state_dict=lora)
        return tmp

    def retire(self, name: str) -> None:
        """Drop an adapter no agent uses any more from the model (its files stay).

        PEFT warns when the deleted adapter was its "active" one; decisions and training
        name their adapters per row, so which one PEFT calls active does not matter here.
        """
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Adapter .* was active which is now deleted")
            self.backend.model.delete_adapter(name)
