"""Platform DPO job vs a plain TRL script: same model, data and config; prints the step-throughput ratio.

    python bench/dpo_overhead.py [--model builtin:smollm2-135m-instruct] [--steps 30] [--repeats 3]

Default model: the tiny random Llama (built in a second). "Platform" is ``rlhf.training.run_job(DPOSpec)`` with a
progress callback, exactly what the worker runs (the worker adds one throttled UPDATE every 0.5 s). "Plain" is
the script a user would write with TRL: DPOConfig + LoraConfig + DPOTrainer. Throughput is measured the same way
for both: steps per second from ``on_train_begin`` to the last step (model loading and data preparation excluded
on both sides). Runs alternate platform / plain to spread machine noise; the median of each is reported.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def plain_trl(model_path: str, train_file: str, out: str, cfg: dict) -> float:
    """A plain TRL DPO script. Returns steps/s over the training loop."""
    import torch
    from datasets import load_dataset
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
    from trl import DPOConfig, DPOTrainer

    torch.manual_seed(cfg["seed"])
    tok = AutoTokenizer.from_pretrained(model_path)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    model = AutoModelForCausalLM.from_pretrained(model_path, dtype=torch.float32)
    data = load_dataset("json", data_files=train_file, split="train")

    class Clock(TrainerCallback):
        def on_train_begin(self, args, state, control, **kw):
            self.t0 = time.perf_counter()

        def on_step_end(self, args, state, control, **kw):
            self.t1, self.steps = time.perf_counter(), state.global_step

    clock = Clock()
    args = DPOConfig(
        output_dir=out, per_device_train_batch_size=cfg["batch_size"], learning_rate=cfg["lr"],
        max_steps=cfg["steps"], beta=cfg["beta"], max_length=cfg["max_length"], logging_steps=1,
        save_strategy="no", report_to="none", disable_tqdm=True, seed=cfg["seed"], bf16=False,
        gradient_checkpointing=False, use_cpu=not torch.cuda.is_available(),
    )
    trainer = DPOTrainer(model=model, args=args, train_dataset=data, processing_class=tok,
                         peft_config=LoraConfig(r=8, lora_alpha=16, target_modules="all-linear", task_type="CAUSAL_LM"),
                         callbacks=[clock])
    from transformers.trainer_callback import PrinterCallback

    trainer.remove_callback(PrinterCallback)  # keep stdout for the result (the platform removes it too)
    trainer.train()
    return clock.steps / (clock.t1 - clock.t0)


def platform(model: str, train_file: str, out: str, cfg: dict) -> float:
    from rlhf.training import run_job
    from rlhf.training.specs import DPOSpec

    records: list[dict] = []
    spec = DPOSpec(output_dir=out, model=model, train_file=train_file, max_steps=cfg["steps"], lr=cfg["lr"],
                   batch_size=cfg["batch_size"], max_length=cfg["max_length"], beta=cfg["beta"], seed=cfg["seed"])
    run_job(spec, progress=records.append)
    return records[-1]["steps_per_s"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="tiny", help="tiny (default), a folder, an HF id or builtin:...")
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--max-length", type=int, default=128)
    args = parser.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")

    from rlhf.training.common import write_jsonl
    from rlhf.training.models import resolve
    from rlhf.training.tiny import build_tiny_policy, synthetic_pairs

    root = Path(tempfile.mkdtemp(prefix="dpo-bench-"))
    model = str(build_tiny_policy(root / "tiny")) if args.model == "tiny" else args.model
    # The plain script gets text rows that already fit (as the platform's own preprocessing leaves them).
    train_file = str(root / "pairs.jsonl")
    write_jsonl(train_file, synthetic_pairs(args.steps * args.batch_size, seed=1))
    cfg = {"steps": args.steps, "lr": 1e-4, "batch_size": args.batch_size, "max_length": args.max_length,
           "beta": 0.1, "seed": 0}
    plat, plain = [], []
    for i in range(args.repeats):
        plat.append(platform(model, train_file, str(root / f"platform{i}"), cfg))
        plain.append(plain_trl(resolve(model), train_file, str(root / f"plain{i}"), cfg))
        print(f"repeat {i + 1}: platform {plat[-1]:.3f} steps/s, plain TRL {plain[-1]:.3f} steps/s", file=sys.stderr)
    p, q = statistics.median(plat), statistics.median(plain)
    result = {"model": args.model, "steps": args.steps, "batch_size": args.batch_size, "max_length": args.max_length,
              "platform_steps_per_s": round(p, 4), "plain_trl_steps_per_s": round(q, 4),
              "ratio_platform_over_plain": round(p / q, 4), "overhead_percent": round(100 * (1 - p / q), 2)}
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
