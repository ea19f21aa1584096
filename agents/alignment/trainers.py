"""The three recipes as TRL's trainers: SFTTrainer, DPOTrainer, GRPOTrainer, each with a
PEFT LoRA adapter or full fine-tuning, configured by a recipe's typed view
(agents/alignment/settings.py, checked before any model loads); each trainer logs every
step, which becomes the Parquet log.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from agents.alignment.data import atp_reward
from agents.alignment.settings import GRPORecipe, LoraRecipe, Recipe


def lora_config(lora: LoraRecipe):
    from peft import LoraConfig

    targets = lora.target_modules
    return LoraConfig(
        r=lora.r,
        lora_alpha=lora.alpha,
        lora_dropout=lora.dropout,
        target_modules=targets if isinstance(targets, str) else list(targets),
        task_type="CAUSAL_LM",
    )


def trainer(
    recipe: Recipe,
    model,
    tokenizer,
    rows: Sequence[dict],
    *,
    seed: int,
    work_dir: Path,
    progress: bool,
):
    """The TRL trainer for recipe.method, ready to `.train()` on rows; without progress,
    no bar and no printed logs (the log goes to the Parquet file)."""
    import torch
    import trl
    from datasets import Dataset
    from transformers import PrinterCallback

    method = recipe.method
    cuda = next(model.parameters()).device.type == "cuda"
    batch = recipe.batch_size
    if method == "grpo":  # batch_size counts prompts; each is answered num_generations times
        batch *= recipe.num_generations
    common = dict(
        output_dir=str(work_dir),
        report_to=[],
        use_cpu=not cuda,
        bf16=cuda and torch.cuda.is_bf16_supported(),
        activation_checkpointing=False,  # transformers 5.24 name of gradient_checkpointing
        logging_steps=1,
        save_strategy="no",
        num_train_epochs=float(recipe.epochs),
        per_device_train_batch_size=batch,
        learning_rate=float(recipe.lr),
        seed=seed,
        data_seed=seed,
        disable_tqdm=not progress,
    )
    peft = lora_config(recipe.lora) if recipe.peft == "lora" else None
    data = Dataset.from_list(list(rows))
    shared = dict(model=model, train_dataset=data, processing_class=tokenizer, peft_config=peft)
    if method == "sft":
        run = trl.SFTTrainer(args=trl.SFTConfig(**common, max_length=None), **shared)
    elif method == "dpo":
        args = trl.DPOConfig(**common, beta=float(recipe.beta), max_length=None)
        run = trl.DPOTrainer(args=args, **shared)
    else:
        run = grpo(trl, recipe, common, shared)
    if not progress:
        run.remove_callback(PrinterCallback)
    return run


def grpo(trl, recipe: GRPORecipe, common: dict, shared: dict):
    """GRPOTrainer with ATP's reward rule."""
    rewards = recipe.rewards
    args = trl.GRPOConfig(
        **common,
        num_generations=recipe.num_generations,
        beta=float(recipe.beta),
        max_completion_length=recipe.max_completion_length,
        temperature=float(recipe.temperature),
        top_p=1.0,
    )
    reward = atp_reward(rewards.supervised, rewards.better, rewards.invalid)
    return trl.GRPOTrainer(reward_funcs=reward, args=args, **shared)
