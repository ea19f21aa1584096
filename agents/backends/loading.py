"""Local Hugging Face checkpoints: device, dtype, model and tokenizer (never from the hub)."""

from __future__ import annotations

from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from envs.errors import InputError

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def resolve_device(name: str) -> torch.device:
    """auto: the GPU when torch finds one, else the CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    expected = InputError(f"backend.model.device: {name!r}; expected auto, cpu or cuda[:N]")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise expected from None
    if device.type not in ("cpu", "cuda"):
        raise expected
    if device.type == "cuda" and not torch.cuda.is_available():
        raise InputError(f"backend.model.device: {name}, but torch finds no CUDA GPU here")
    return device


def resolve_dtype(name: str, device: torch.device) -> torch.dtype:
    """auto: bfloat16 on a GPU, float32 on a CPU."""
    if name == "auto":
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    if name not in DTYPES:
        raise InputError(
            f"backend.model.dtype: {name!r}; expected auto or one of {', '.join(DTYPES)}"
        )
    return DTYPES[name]


def load_checkpoint(
    path: str | Path | None,
    device: torch.device,
    dtype: torch.dtype,
    attention: str | None = None,
):
    """Model and tokenizer from a local Hugging Face directory (never from the hub).

    `attention`: transformers' attn_implementation (None: its default, sdpa).
    """
    if not path:
        raise InputError("backend.model.path: required (a local Hugging Face model directory)")
    path = Path(path).expanduser()
    if not (path / "config.json").is_file():
        raise InputError(f"backend.model.path: {path} is not a Hugging Face model directory")
    try:
        tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
        model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype, local_files_only=True)
    except (OSError, ValueError) as e:
        raise InputError(f"backend.model.path: cannot load {path}: {first_line(e)}") from None
    if attention is not None:
        try:
            model.set_attn_implementation(attention)
        except (ImportError, ValueError) as e:
            raise InputError(f"backend.model.attn_implementation: {first_line(e)}") from None
    return model.to(device).eval(), tokenizer


def first_line(error: Exception) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
