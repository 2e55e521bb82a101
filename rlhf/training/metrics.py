"""Evaluation metrics, dependency-free and checked against the reference implementations' published numbers
(tests/rlhf/training/test_training_metrics.py):

- BLEU as sacrebleu computes it by default (13a tokenisation, 4-grams, brevity penalty against the closest
  reference, ``exp`` smoothing; ``sentence_bleu`` uses the effective order like ``sacrebleu.sentence_bleu``);
- ROUGE-1/2/L as Google's ``rouge-score`` computes them with ``use_stemmer=False`` (lower-cased alphanumeric
  tokens; ``score(target, prediction)`` order). The Porter stemmer is not reimplemented: scores equal
  ``rouge-score``'s without stemming;
- BERTScore with the shipped MiniLM-L6 encoder (``builtin:all-minilm-l6-v2``, last layer, no idf, no baseline
  rescaling), NOT roberta-large layer 17 as in the paper: compare values with each other, never with published
  BERTScores;
- perplexity of texts and of completions given prompts; accuracy / precision / recall / F1 for classifiers.
"""

from __future__ import annotations

import math
import re
from collections import Counter

import torch

# --- BLEU (sacrebleu defaults) ---------------------------------------------------------------------------------
_13A = [
    (re.compile(r"([\{-\~\[-\` -\&\(-\+\:-\@\/])"), r" \1 "),  # punctuation and symbols
    (re.compile(r"([^0-9])([\.,])"), r"\1 \2 "),  # period / comma unless preceded by a digit
    (re.compile(r"([\.,])([^0-9])"), r" \1 \2"),  # period / comma unless followed by a digit
    (re.compile(r"([0-9])(-)"), r"\1 \2 "),  # dash after a digit
]


def tokenize_13a(line: str) -> list[str]:
    """sacrebleu's default ``13a`` tokenizer (mteval-v13a.pl)."""
    line = line.replace("<skipped>", "").replace("-\n", "").replace("\n", " ")
    if "&" in line:
        line = line.replace("&quot;", '"').replace("&amp;", "&").replace("&lt;", "<").replace("&gt;", ">")
    line = f" {line} "
    for pattern, repl in _13A:
        line = pattern.sub(repl, line)
    return line.split()


def _ngrams(tokens: list[str], max_n: int) -> Counter:
    return Counter(tuple(tokens[i : i + n]) for n in range(1, max_n + 1) for i in range(len(tokens) - n + 1))


def _bleu_stats(hyp: str, refs: list[str], max_n: int = 4) -> list[int]:
    """[hyp_len, ref_len, correct_1..n, total_1..n] for one sentence."""
    h = tokenize_13a(hyp)
    ref_tokens = [tokenize_13a(r) for r in refs]
    # Closest reference length; a tie goes to the shorter reference.
    ref_len = min((abs(len(r) - len(h)), len(r)) for r in ref_tokens)[1]
    max_ref: Counter = Counter()
    for r in ref_tokens:
        max_ref |= _ngrams(r, max_n)
    hyp_ngrams = _ngrams(h, max_n)
    correct, total = [0] * max_n, [max(0, len(h) - n) for n in range(max_n)]
    for gram, count in hyp_ngrams.items():
        correct[len(gram) - 1] += min(count, max_ref.get(gram, 0))
    return [len(h), ref_len, *correct, *total]


def _bleu_from_stats(stats: list[int], max_n: int = 4, effective_order: bool = False) -> dict:
    hyp_len, ref_len = stats[0], stats[1]
    correct, total = stats[2 : 2 + max_n], stats[2 + max_n :]
    precisions = [0.0] * max_n
    bp = 1.0 if hyp_len >= ref_len else (math.exp(1 - ref_len / hyp_len) if hyp_len > 0 else 0.0)
    result = {"bp": bp, "sys_len": hyp_len, "ref_len": ref_len}
    if not any(correct):
        return {"score": 0.0, "precisions": precisions, **result}
    smooth, order = 1.0, max_n
    for n in range(max_n):
        if total[n] == 0:
            break
        if effective_order:
            order = n + 1
        if correct[n] == 0:
            smooth *= 2
            precisions[n] = 100.0 / (smooth * total[n])
        else:
            precisions[n] = 100.0 * correct[n] / total[n]
    log_sum = sum(math.log(p) if p > 0 else -9999999999 for p in precisions[:order])
    return {"score": bp * math.exp(log_sum / order), "precisions": precisions, **result}


def corpus_bleu(hypotheses: list[str], references: list[list[str]]) -> dict:
    """``references`` is a list of reference STREAMS, as in sacrebleu: ``references[k][i]`` is the k-th reference
    of hypothesis i. Returns ``score`` (0-100), the four n-gram ``precisions``, ``bp``, ``sys_len``, ``ref_len``."""
    if any(len(stream) != len(hypotheses) for stream in references):
        raise ValueError("corpus_bleu: every reference stream must have one line per hypothesis")
    totals = [0] * 10
    for i, hyp in enumerate(hypotheses):
        stats = _bleu_stats(hyp, [stream[i] for stream in references])
        totals = [a + b for a, b in zip(totals, stats, strict=True)]
    return _bleu_from_stats(totals)


def sentence_bleu(hypothesis: str, references: list[str]) -> dict:
    return _bleu_from_stats(_bleu_stats(hypothesis, references), effective_order=True)


# --- ROUGE (rouge-score, no stemming) --------------------------------------------------------------------------
def rouge_tokens(text: str) -> list[str]:
    return [t for t in re.sub(r"[^a-z0-9]+", " ", text.lower()).split() if t]


def _prf(overlap: int, n_pred: int, n_target: int) -> dict:
    p, r = overlap / max(n_pred, 1), overlap / max(n_target, 1)
    return {"precision": p, "recall": r, "fmeasure": 2 * p * r / (p + r) if p + r > 0 else 0.0}


def _lcs(a: list[str], b: list[str]) -> int:
    prev = [0] * (len(b) + 1)
    for x in a:
        cur = [0]
        for j, y in enumerate(b):
            cur.append(prev[j] + 1 if x == y else max(prev[j + 1], cur[j]))
        prev = cur
    return prev[-1]


def rouge(target: str, prediction: str) -> dict[str, dict]:
    """ROUGE-1, ROUGE-2 and ROUGE-L (precision, recall, F-measure) of one prediction against its target."""
    t, p = rouge_tokens(target), rouge_tokens(prediction)
    scores = {}
    for n in (1, 2):
        tg = Counter(tuple(t[i : i + n]) for i in range(len(t) - n + 1))
        pg = Counter(tuple(p[i : i + n]) for i in range(len(p) - n + 1))
        scores[f"rouge{n}"] = _prf(sum((tg & pg).values()), sum(pg.values()), sum(tg.values()))
    scores["rougeL"] = _prf(_lcs(t, p), len(p), len(t))
    return scores


def mean_rouge(targets: list[str], predictions: list[str]) -> dict[str, float]:
    """Mean F-measure of each ROUGE variant over pairs."""
    rows = [rouge(t, p) for t, p in zip(targets, predictions, strict=True)]
    return {k: sum(r[k]["fmeasure"] for r in rows) / max(len(rows), 1) for k in ("rouge1", "rouge2", "rougeL")}


# --- BERTScore with MiniLM -------------------------------------------------------------------------------------
class BertScorer:
    """Greedy cosine matching of contextual token embeddings (Zhang et al. 2020) with the MiniLM-L6 encoder that
    ships as a package. Special tokens ([CLS], [SEP]) are left out, as in the reference implementation."""

    def __init__(self, model: str = "builtin:all-minilm-l6-v2", device: str = "cpu"):
        from transformers import AutoModel, AutoTokenizer

        from .models import resolve

        path = resolve(model)
        self.tok = AutoTokenizer.from_pretrained(path)
        self.model = AutoModel.from_pretrained(path).to(device).eval()
        self.device = device

    @torch.no_grad()
    def _embed(self, texts: list[str]) -> list[torch.Tensor]:
        enc = self.tok(texts, return_tensors="pt", padding=True, truncation=True, max_length=256,
                       return_special_tokens_mask=True)
        special = enc.pop("special_tokens_mask").bool()
        hidden = self.model(**enc.to(self.device)).last_hidden_state.cpu()
        keep = enc["attention_mask"].cpu().bool() & ~special
        return [torch.nn.functional.normalize(hidden[i][keep[i]], dim=-1) for i in range(len(texts))]

    def score(self, candidates: list[str], references: list[str]) -> dict[str, float]:
        """Mean precision / recall / F1 over pairs."""
        if len(candidates) != len(references) or not candidates:
            raise ValueError("bertscore: candidates and references must be non-empty and of equal length")
        ps, rs, fs = [], [], []
        for c, r in zip(self._embed(candidates), self._embed(references), strict=True):
            if len(c) == 0 or len(r) == 0:
                ps.append(0.0), rs.append(0.0), fs.append(0.0)
                continue
            sim = c @ r.T
            p, rec = sim.max(dim=1).values.mean().item(), sim.max(dim=0).values.mean().item()
            ps.append(p), rs.append(rec), fs.append(2 * p * rec / (p + rec) if p + rec > 0 else 0.0)
        n = len(fs)
        return {"bertscore_precision": sum(ps) / n, "bertscore_recall": sum(rs) / n, "bertscore_f1": sum(fs) / n}


# --- perplexity ------------------------------------------------------------------------------------------------
@torch.no_grad()
def _nll(model, ids: list[list[int]], starts: list[int], pad_id: int, batch_size: int) -> tuple[float, int]:
    """Summed NLL of tokens ``ids[j][starts[j]:]`` given what precedes them, and their count."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    total, count = 0.0, 0
    for i in range(0, len(ids), batch_size):
        chunk, first = ids[i : i + batch_size], starts[i : i + batch_size]
        width = max(len(s) for s in chunk)
        x = torch.full((len(chunk), width), pad_id, dtype=torch.long)
        mask = torch.zeros_like(x)
        for j, s in enumerate(chunk):
            x[j, : len(s)], mask[j, : len(s)] = torch.tensor(s), 1
        # Prompt tuning prepends virtual tokens to the logits: keep the last `width` positions.
        logits = model(input_ids=x.to(device), attention_mask=mask.to(device)).logits[:, -width:-1].float().cpu()
        nll = torch.nn.functional.cross_entropy(logits.transpose(1, 2), x[:, 1:], reduction="none")
        for j, s in enumerate(chunk):
            lo = max(first[j], 1) - 1
            total += nll[j, lo : len(s) - 1].sum().item()
            count += len(s) - 1 - lo
    model.train(was_training)
    return total, count


def text_perplexity(model, tok, texts: list[str], max_length: int = 512, batch_size: int = 8) -> float:
    """exp(mean NLL per predicted token) over texts (each cut to ``max_length`` tokens)."""
    ids = [tok(t, add_special_tokens=False)["input_ids"][:max_length] for t in texts]
    ids = [s for s in ids if len(s) >= 2]
    total, count = _nll(model, ids, [1] * len(ids), tok.pad_token_id, batch_size)
    return math.exp(total / max(count, 1))


def completion_perplexity(model, tok, prompts: list[str], completions: list[str], max_length: int = 512,
                          batch_size: int = 8) -> float:
    """exp(mean NLL per completion token given its prompt): what SFT lowers. Prompts are cut from the left."""
    ids, starts = [], []
    for p, c in zip(prompts, completions, strict=True):
        p_ids, c_ids = tok(p, add_special_tokens=False)["input_ids"], tok(c, add_special_tokens=False)["input_ids"]
        c_ids = c_ids[: max_length - 1]
        p_ids = p_ids[-(max_length - len(c_ids)):] if max_length > len(c_ids) else []
        ids.append(p_ids + c_ids)
        starts.append(len(p_ids))
    total, count = _nll(model, ids, starts, tok.pad_token_id, batch_size)
    return math.exp(total / max(count, 1))


# --- generation and classification -----------------------------------------------------------------------------
def greedy_answers(model, tok, prompts: list[str], max_new_tokens: int, device, max_length: int = 512,
                   batch_size: int = 8) -> list[str]:
    from .generate import encode_prompts, generation_kwargs, sample

    encoded = encode_prompts(tok, prompts, max(1, max_length - max_new_tokens))
    kwargs = generation_kwargs(tok, 0.0, 1.0, max_new_tokens)
    was_training = model.training
    model.eval()
    answers = []
    for i in range(0, len(encoded), batch_size):
        answers.extend(text for text, _ in sample(model, tok, encoded[i : i + batch_size], kwargs, device))
    model.train(was_training)
    return answers


def generation_scores(model, tok, prompts: list[str], references: list[str], max_new_tokens: int, device,
                      max_length: int = 512, bertscore: bool = True) -> dict[str, float]:
    """Greedy answers scored against references: ROUGE-1/2/L F, corpus BLEU, and BERTScore (MiniLM)."""
    answers = greedy_answers(model, tok, prompts, max_new_tokens, device, max_length)
    scores = {**mean_rouge(references, answers), "bleu": corpus_bleu(answers, [references])["score"]}
    if bertscore:
        scores.update(BertScorer().score(answers, references))
    return scores


def classification_report(y_true: list, y_pred: list, labels: list | None = None) -> dict:
    """Accuracy, and precision / recall / F1 per label and macro-averaged (an empty class scores 0)."""
    labels = labels if labels is not None else sorted(set(y_true) | set(y_pred), key=str)
    per = {}
    for label in labels:
        tp = sum(t == label and p == label for t, p in zip(y_true, y_pred, strict=True))
        fp = sum(t != label and p == label for t, p in zip(y_true, y_pred, strict=True))
        fn = sum(t == label and p != label for t, p in zip(y_true, y_pred, strict=True))
        prec = tp / (tp + fp) if tp + fp else 0.0
        rec = tp / (tp + fn) if tp + fn else 0.0
        per[str(label)] = {"precision": prec, "recall": rec,
                           "f1": 2 * prec * rec / (prec + rec) if prec + rec else 0.0, "support": tp + fn}
    n = len(labels)
    return {
        "accuracy": sum(t == p for t, p in zip(y_true, y_pred, strict=True)) / max(len(y_true), 1),
        "precision": sum(v["precision"] for v in per.values()) / n,
        "recall": sum(v["recall"] for v in per.values()) / n,
        "f1": sum(v["f1"] for v in per.values()) / n,
        "per_label": per,
    }
