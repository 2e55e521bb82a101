"""Transfer learning: a new sequence-classification head on a pretrained backbone, trained on ``{"text", "label"}``
rows with transformers' ``Trainer`` (cross-entropy). ``peft``: ``head`` (a linear probe: backbone frozen), ``lora``
(LoRA on the backbone, head trained in full and saved with the adapter) or ``full``.

Reported: accuracy, macro precision / recall / F1 (and per label) on ``eval_file`` before training (the random
head: chance) and after. Artifacts: ``adapter/`` or ``model/``, ``labels.json``, ``metrics.json``.
"""

from __future__ import annotations

import json

import torch
from datasets import Dataset
from transformers import (
    AutoModelForSequenceClassification,
    DataCollatorWithPadding,
    Trainer,
    TrainingArguments,
)

from . import checkpoints
from .adapters import save_trained, trainable_params, wrap
from .common import (
    Progress,
    ProgressCallback,
    ProgressFn,
    loss_span,
    quiet,
    read_jsonl,
    start_job,
    training_fields,
    write_metrics,
)
from .metrics import classification_report
from .models import load_tokenizer, resolve
from .specs_lifecycle import ClassifySpec


def read_labelled(path: str, limit: int | None = None) -> list[tuple[str, str]]:
    rows = read_jsonl(path, limit)
    out = []
    for i, row in enumerate(rows, 1):
        if not isinstance(row.get("text"), str) or not isinstance(row.get("label"), str | int):
            raise ValueError(f"{path}: row {i}: needs 'text' (string) and 'label' (string or integer)")
        out.append((row["text"], str(row["label"])))
    return out


def head_names(model) -> list[str]:
    """The classification head's module names (BERT: ``classifier``, Llama: ``score``)."""
    return [n for n in ("classifier", "score") if hasattr(model, n)]


@torch.no_grad()
def predict(model, tok, texts: list[str], batch_size: int, max_length: int) -> list[int]:
    model.eval()
    device = next(model.parameters()).device
    preds: list[int] = []
    for i in range(0, len(texts), batch_size):
        enc = tok(texts[i : i + batch_size], return_tensors="pt", padding=True, truncation=True,
                  max_length=max_length).to(device)
        preds.extend(model(**enc).logits.argmax(-1).tolist())
    return preds


def evaluate_rows(model, tok, rows, label_ids: dict[str, int], spec: ClassifySpec) -> dict:
    if not rows:
        return {}
    preds = predict(model, tok, [t for t, _ in rows], spec.batch_size * 2, spec.max_length)
    return classification_report([label_ids[y] for _, y in rows], preds, labels=list(range(len(label_ids))))


def build_model(spec: ClassifySpec, tok, labels: list[str], dtype):
    base = AutoModelForSequenceClassification.from_pretrained(
        resolve(spec.model), num_labels=len(labels), dtype=dtype,
        id2label=dict(enumerate(labels)), label2id={lab: i for i, lab in enumerate(labels)},
    )
    base.config.pad_token_id = tok.pad_token_id  # Llama-style heads read the last non-pad token
    heads = head_names(base)
    if spec.peft == "head":
        for name, p in base.named_parameters():
            p.requires_grad = name.split(".")[0] in heads
        return base
    return wrap(base, spec, "SEQ_CLS", modules_to_save=heads)


def run(spec: ClassifySpec, progress: ProgressFn | None = None) -> dict:
    out, device, dtype = start_job(spec)
    tok = load_tokenizer(spec.model)
    train = read_labelled(spec.train_file, spec.max_train_rows)
    evals = read_labelled(spec.eval_file) if spec.eval_file else []
    labels = spec.labels or sorted({y for _, y in train})
    label_ids = {lab: i for i, lab in enumerate(labels)}
    unknown = sorted({y for _, y in train + evals} - set(labels))
    if unknown:
        raise ValueError(f"labels: {unknown[:3]} appear in the data but not in labels {labels}")
    model = build_model(spec, tok, labels, dtype).to(device)
    before = evaluate_rows(model, tok, evals, label_ids, spec)

    enc = tok([t for t, _ in train], truncation=True, max_length=spec.max_length)
    dataset = Dataset.from_dict({**enc, "labels": [label_ids[y] for _, y in train]})
    trainable, total = trainable_params(model)
    args = TrainingArguments(**training_fields(spec, device, dtype, total))
    trainer = quiet(Trainer(model=model, args=args, train_dataset=dataset, data_collator=DataCollatorWithPadding(tok),
                            callbacks=[ProgressCallback(Progress(out, progress))]))
    resumed = checkpoints.train(trainer, spec)  # from a checkpoint when a worker died mid-run
    loss_first, loss_last = loss_span(trainer.state.log_history)
    after = evaluate_rows(trainer.model, tok, evals, label_ids, spec)
    saved = save_trained(trainer.model, tok, out, spec)
    (out / "labels.json").write_text(json.dumps(labels) + "\n", encoding="utf-8")

    metrics = {"kind": spec.kind, "resumed_from_step": resumed, "labels": labels, "trainable_params": trainable, "total_params": total,
               "train_rows": len(train), "eval_rows": len(evals), "steps": trainer.state.global_step,
               "loss_first": loss_first, "loss_last": loss_last,
               **{f"{name}_dir": path for name, path in saved.items()}, "device": device.type}
    for tag, report in (("before", before), ("after", after)):
        metrics.update({f"eval_{k}_{tag}": v for k, v in report.items() if k != "per_label"})
        if report:
            metrics[f"eval_per_label_{tag}"] = report["per_label"]
    return write_metrics(out, metrics)
