import math

import pytest
import torch
from transformers import AutoModelForCausalLM

from rlhf.training.metrics import (
    BertScorer,
    classification_report,
    completion_perplexity,
    corpus_bleu,
    rouge,
    sentence_bleu,
    text_perplexity,
    tokenize_13a,
)
from rlhf.training.models import load_tokenizer

pytestmark = pytest.mark.training

# sacrebleu's README example: `BLEU = 48.53 82.4/50.0/45.5/37.5 (BP = 0.943 ratio = 0.944 hyp_len = 17 ref_len = 18)`
SACREBLEU_REFS = [["The dog bit the man.", "It was not unexpected.", "The man bit him first."],
                  ["The dog had bit the man.", "No one was surprised.", "The man had bitten the dog."]]
SACREBLEU_SYS = ["The dog bit the man.", "It wasn't surprising.", "The man had just bitten him."]


def test_corpus_bleu_matches_sacrebleus_documented_example():
    b = corpus_bleu(SACREBLEU_SYS, SACREBLEU_REFS)
    assert round(b["score"], 2) == 48.53
    assert [round(p, 1) for p in b["precisions"]] == [82.4, 50.0, 45.5, 37.5]
    assert round(b["bp"], 3) == 0.943 and (b["sys_len"], b["ref_len"]) == (17, 18)


def test_bleu_edge_cases_follow_sacrebleu():
    assert tokenize_13a("It wasn't 3.5-4, right?") == ["It", "wasn't", "3.5", "-", "4", ",", "right", "?"]
    assert sentence_bleu("the cat sat on the mat", ["the cat sat on the mat"])["score"] == pytest.approx(100.0)
    assert corpus_bleu(["xyz"], [["abc"]])["score"] == 0.0
    # Values computed with sacrebleu 2.6.0 (sentence_bleu uses the effective order and exp smoothing).
    assert sentence_bleu("the cat", ["the cat sat on the mat"])["score"] == pytest.approx(13.533528, abs=1e-5)
    with pytest.raises(ValueError, match="one line per hypothesis"):
        corpus_bleu(["a", "b"], [["a"]])


def test_rouge_matches_rouge_score_on_its_readme_example():
    # rouge-score README: scorer.score('The quick brown fox jumps over the lazy dog',
    # 'The quick brown dog jumps on the log.'); values from rouge-score 0.1.2 with use_stemmer=False.
    s = rouge("The quick brown fox jumps over the lazy dog", "The quick brown dog jumps on the log.")
    assert s["rouge1"]["precision"] == 0.75 and s["rouge1"]["recall"] == pytest.approx(2 / 3)
    assert s["rouge1"]["fmeasure"] == pytest.approx(0.7058823529)
    assert s["rouge2"]["fmeasure"] == pytest.approx(0.2666666667)
    assert s["rougeL"]["precision"] == 0.625 and s["rougeL"]["fmeasure"] == pytest.approx(0.5882352941)
    assert rouge("", "anything")["rougeL"]["fmeasure"] == 0.0


def test_bertscore_with_minilm_ranks_paraphrases_above_unrelated_text():
    scorer = BertScorer()
    same = scorer.score(["The cat sat on the mat."], ["The cat sat on the mat."])
    assert same["bertscore_f1"] == pytest.approx(1.0, abs=1e-5)
    para = scorer.score(["A cat was sitting on the rug."], ["The cat sat on the mat."])["bertscore_f1"]
    other = scorer.score(["Stock prices fell sharply on Monday."], ["The cat sat on the mat."])["bertscore_f1"]
    assert para > other


def test_perplexities_agree_with_the_model_loss(tiny):
    tok = load_tokenizer(str(tiny.policy))
    model = AutoModelForCausalLM.from_pretrained(tiny.policy)
    text = "The cat and the dog walk by the river."
    with torch.no_grad():
        ids = tok(text, return_tensors="pt", add_special_tokens=False)["input_ids"]
        loss = model(input_ids=ids, labels=ids).loss.item()
    assert text_perplexity(model, tok, [text, "Hi there."])  # batching with padding works
    assert text_perplexity(model, tok, [text]) == pytest.approx(math.exp(loss), rel=1e-4)
    # Completion perplexity counts only the completion's tokens.
    prompt, completion = "The cat and the dog", " walk by the river."
    n_prompt = len(tok(prompt)["input_ids"])
    with torch.no_grad():
        labels = ids.clone()
        labels[0, :n_prompt] = -100
        c_loss = model(input_ids=ids, labels=labels).loss.item()
    assert completion_perplexity(model, tok, [prompt], [completion]) == pytest.approx(math.exp(c_loss), rel=1e-4)


def test_classification_report_macro_averages():
    r = classification_report(["a", "a", "b", "b"], ["a", "b", "b", "b"])
    assert r["accuracy"] == 0.75
    assert r["per_label"]["a"] == {"precision": 1.0, "recall": 0.5, "f1": pytest.approx(2 / 3), "support": 2}
    assert r["precision"] == pytest.approx((1 + 2 / 3) / 2) and r["recall"] == pytest.approx(0.75)
