"""Losses over the two labels' log-probabilities, logp[:, 0] = comply, logp[:, 1] = violate.

The policy an agent acts with is the pair normalised (what score mode samples from), so
the objectives and the KL to the reference are exact on that two-point distribution.
Each loss returns per-row values (loss, KL); the trainer averages them per adapter owner.
"""

from __future__ import annotations

import torch


def choice_logprobs(logp: torch.Tensor) -> torch.Tensor:
    """log of the two-choice policy: the label log-probabilities normalised over the pair."""
    return logp.log_softmax(-1)


def bernoulli_kl(logp: torch.Tensor, ref_logp: torch.Tensor) -> torch.Tensor:
    """KL(pi || pi_ref) per row, exact over the two choices."""
    lp, lr = choice_logprobs(logp), choice_logprobs(ref_logp)
    return (lp.exp() * (lp - lr)).sum(-1)


Rows = tuple[torch.Tensor, torch.Tensor]


def pg_loss(logp, ref_logp, labels, weights, beta: float) -> Rows:
    """GRPO-style: -A * log pi(a) + beta * KL(pi || pi_ref), pi_ref the aligned model."""
    taken = choice_logprobs(logp).gather(1, labels[:, None])[:, 0]
    kl = bernoulli_kl(logp, ref_logp)
    return -weights * taken + beta * kl, kl


def dpo_loss(logp, ref_logp, labels, weights, beta: float) -> Rows:
    """DPO: -log sigmoid(beta * ((lp_w - lr_w) - (lp_l - lr_l))), pi_ref the parent version."""
    margin = (logp - ref_logp).gather(1, torch.stack([labels, 1 - labels], 1))
    loss = -torch.nn.functional.logsigmoid(beta * (margin[:, 0] - margin[:, 1]))
    return weights * loss, bernoulli_kl(logp, ref_logp)


def sft_loss(logp, ref_logp, labels, weights, beta: float) -> Rows:
    """Negative log-likelihood of the kept decisions' labels (+ beta * KL, if asked)."""
    kl = bernoulli_kl(logp, ref_logp)
    return -weights * choice_logprobs(logp).gather(1, labels[:, None])[:, 0] + beta * kl, kl
