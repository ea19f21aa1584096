"""LoRA updates inside the serving model, several owners in one forward/backward.

Each new version is a new PEFT adapter initialised from its parent's weights (a fresh
LoRA, i.e. the identity, for a first version). All versions of one update train
together: every batch mixes owners through PEFT's `adapter_names=` routing (the model
stays in eval mode, which PEFT requires for mixed batches; LoRA dropout is 0), and the
loss is the sum over owners of each owner's mean loss, so every adapter receives exactly
the gradient it would get if trained alone.
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

    def train(
        self,
        jobs: Sequence[tuple[Version, list[Example]]],
        objective: Objective,
        beta: float,
        reference_is_parent: bool,
    ) -> dict[str, dict]:
        """Train every job's new version; returns per version its loss, KL and sample count."""
        for v, _ in jobs:
            self.add(v)
        model = self.backend.model
        names = {v.name for v, _ in jobs}
        params = []
        for n, p in model.named_parameters():
            p.requires_grad_(any(f".{name}." in n for name in names))
            if p.requires_grad:
                params.append(p)
        ref = self.reference(jobs, reference_is_parent)
        rows = [(v, ex) for v, examples in jobs for ex in examples]
        owner_size = {v.name: len(examples) for v, examples in jobs}
        optimizer = torch.optim.AdamW(params, lr=self.lr, weight_decay=0.0)
        rng = np.random.default_rng(stable_seed(self.seed, sorted(names)))
        last: dict[str, list[tuple[float, float]]] = {}
        for _ in range(self.steps):
            order = rng.permutation(len(rows))
            last = {name: [] for name in names}
            for start in range(0, len(rows), self.batch_size):
                batch = order[start : start + self.batch_size]
                versions = [rows[i][0] for i in batch]
                examples = [rows[i][1] for i in batch]
                logp = self.backend.label_logprob_tensor(
                    [ex.sample.request for ex in examples], [v.name for v in versions]
                )
                loss, kl = objective(
                    logp,
                    ref[batch],
                    torch.tensor([ex.label for ex in examples]),
                    torch.tensor([ex.weight for ex in examples], dtype=logp.dtype),
                    beta,
                )
                scale = torch.tensor([1.0 / owner_size[v.name] for v in versions], dtype=logp.dtype)
                optimizer.zero_grad()
                (loss * scale).sum().backward()
                optimizer.step()
                for v, lo, k in zip(versions, loss.tolist(), kl.tolist(), strict=True):
                    last[v.name].append((lo, k))
        for p in params:
            p.requires_grad_(False)
        return {
            v.name: {
                "loss": float(np.mean([x[0] for x in last[v.name]])),
                "kl": float(np.mean([x[1] for x in last[v.name]])),
                "samples": len(examples),
            }
            for v, examples in jobs
        }

    def save(self, v: Version, into: Path) -> Path:
        """Write v in PEFT's layout to a fresh directory under `into`; returns it."""
        tmp = Path(tempfile.mkdtemp(prefix=".saving-", dir=into))
        self.backend.model.save_pretrained(tmp, selected_adapters=[v.name])
        return tmp / v.name

    def retire(self, name: str) -> None:
        """Drop an adapter no agent uses any more from the model (its files stay).

        PEFT warns when the deleted adapter was its "active" one; decisions and training
        name their adapters per row, so which one PEFT calls active does not matter here.
        """
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Adapter .* was active which is now deleted")
            self.backend.model.delete_adapter(name)
