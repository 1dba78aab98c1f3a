"""The offline fallbacks of the Pipelines tab: honest stand-ins built from the embedded
models, each labelled in the UI with what it replaces (see engine/pipelines/tasks.py for the tasks).

    zero-shot      -> MiniLM sentence embeddings, cosine similarity to each hypothesis
    fill-mask      -> SmolLM2 proposes words at the mask, then scores whole sentences
    summarization  -> SmolLM2-Instruct asked to summarize through its chat template
    NER            -> spaCy en_core_web_sm, labels mapped to CoNLL's PER/ORG/LOC/MISC
"""
from __future__ import annotations

import re

from ..core.chat import chat_ids
from ..core.errors import UserInputError
from ..core.lazy import from_transformers, torch
from ..core.models import TextModel
from .base import Prepared


def lm_pipeline(bundle: TextModel):
    """transformers' text-generation pipeline around an already loaded causal LM (cheap: ~2 ms)."""
    pipeline = from_transformers("pipeline")

    return pipeline("text-generation", model=bundle.model, tokenizer=bundle.tokenizer)


ZS_SCALE = 20.0  # MiniLM was trained with cosine similarities scaled by 20 before the softmax


def mean_pooled(bundle: TextModel, texts: list[str]) -> torch.Tensor:
    """Sentence embeddings as all-MiniLM-L6-v2 makes them: mean over tokens, L2-normalized."""
    enc = bundle.tokenizer(texts, padding=True, truncation=True, max_length=256, return_tensors="pt")
    enc = {k: v.to(bundle.device) for k, v in enc.items()}
    with torch.inference_mode():
        hidden = bundle.model(**enc).last_hidden_state  # (batch, seq, hidden)
    mask = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)  # (batch, seq, 1)
    pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)  # (batch, hidden)
    return torch.nn.functional.normalize(pooled.float(), dim=-1)


def zero_shot_by_similarity(engine, opt, p: Prepared, progress):
    bundle = engine.load(opt.key, progress=progress)
    labels = p.extra["labels"]
    hypotheses = [p.extra["template"].replace("{}", label) for label in labels]  # template checked: one {}, no other brace
    emb = mean_pooled(bundle, [p.text] + hypotheses)  # (1 + labels, hidden)
    cos = emb[1:] @ emb[0]  # (labels,)
    if p.extra["multi_label"] or len(labels) == 1:
        scores = cos.clamp(min=0.0)  # each label on its own: its cosine similarity, 0..1
    else:
        scores = torch.softmax(cos * ZS_SCALE, dim=0)  # the labels share 1.0
    order = torch.argsort(scores, descending=True).tolist()
    p.extra["cosine"] = {labels[i]: round(float(cos[i]), 4) for i in range(len(labels))}
    return {"sequence": p.text, "labels": [labels[i] for i in order], "scores": [float(scores[i]) for i in order]}


MASK_RE = re.compile(r"\[MASK\]|<mask>")


WORD_RE = re.compile(r"^\s?[^\W_][\w'\-]*$")


def sentence_logprobs(bundle: TextModel, sentences: list[str], start_id: int) -> torch.Tensor:
    """Sum of log p(token | tokens before it) over each whole sentence, batched."""
    tok = bundle.tokenizer
    rows = [[start_id] + tok(s, add_special_tokens=False)["input_ids"] for s in sentences]
    width = max(len(r) for r in rows)
    pad = tok.pad_token_id if tok.pad_token_id is not None else start_id
    ids = torch.tensor([r + [pad] * (width - len(r)) for r in rows], device=bundle.device)  # (n, width)
    mask = torch.tensor([[1] * len(r) + [0] * (width - len(r)) for r in rows], device=bundle.device)
    with torch.inference_mode():
        logits = bundle.model(input_ids=ids, attention_mask=mask).logits.float()  # (n, width, vocab)
    logp = torch.log_softmax(logits[:, :-1], dim=-1)  # (n, width-1, vocab): predicts tokens 1..
    picked = logp.gather(-1, ids[:, 1:].unsqueeze(-1)).squeeze(-1)  # (n, width-1)
    return (picked * mask[:, 1:]).sum(-1)  # (n,)


def start_id_of(tok) -> int:
    """The token a document starts after in pretraining (<|endoftext|> for SmolLM2/GPT-2 style
    vocabularies); the chat-format BOS (<|im_start|>) would make the LM expect a role name."""
    tid = tok.convert_tokens_to_ids("<|endoftext|>")
    # compare by the token itself: SmolLM2's unk token *is* <|endoftext|>, so an id check against
    # unk_token_id would wrongly reject it (and every sentence would start after <|im_start|>)
    if isinstance(tid, int) and tok.convert_ids_to_tokens(tid) == "<|endoftext|>":
        return tid
    return tok.bos_token_id if tok.bos_token_id is not None else tok.eos_token_id


CONTINUATION_RE = re.compile(r"^[a-z]+$")  # a word piece that glues on without a space


def complete_words(bundle: TextModel, start_id: int, head: str, words: list[str], steps: int = 3) -> list[str]:
    """A BPE token is often part of a word ("St"); extend each candidate greedily while the LM's
    most likely next piece continues the word (up to `steps` pieces), in one batch per step."""
    tok = bundle.tokenizer
    words = list(words)
    open_ = list(range(len(words)))
    for _ in range(steps):
        if not open_:
            break
        rows = [[start_id] + tok(head + words[i], add_special_tokens=False)["input_ids"] for i in open_]
        width = max(len(r) for r in rows)
        ids = torch.tensor([r + [start_id] * (width - len(r)) for r in rows], device=bundle.device)  # (n, width)
        mask = torch.tensor([[1] * len(r) + [0] * (width - len(r)) for r in rows], device=bundle.device)
        with torch.inference_mode():
            logits = bundle.model(input_ids=ids, attention_mask=mask).logits  # (n, width, vocab)
        last = torch.tensor([len(r) - 1 for r in rows], device=bundle.device)  # (n,)
        best = logits[torch.arange(len(rows)), last].argmax(-1).tolist()  # (n,)
        still = []
        for i, tid in zip(open_, best):
            piece = tok.decode([tid])
            if CONTINUATION_RE.match(piece):
                words[i] += piece
                still.append(i)
        open_ = still
    unique = []
    for w in words:
        if w not in unique:
            unique.append(w)
    return unique


BLANK_PROMPT = "Fill in the blank with one word.\nSentence: {sentence}\nReply with the missing word only."


def blank_candidates(bundle: TextModel, before: str, after: str, want: int) -> list[str]:
    """Words the instruct model proposes for the blank when shown the whole sentence: unlike the
    LM's distribution at the mask, this reads both sides (and works for a mask that starts the
    sentence, where the LM has nothing to go on)."""
    tok = bundle.tokenizer
    if not getattr(tok, "chat_template", None):
        return []
    messages = [{"role": "user", "content": BLANK_PROMPT.format(sentence=f"{before}___{after}")}]
    ids = chat_ids(tok, messages)  # the sentence is the user's text: a typed '<|im_end|>' stays text
    with torch.inference_mode():
        logits = bundle.model(input_ids=torch.tensor([ids], device=bundle.device)).logits  # (1, len, vocab)
    words: list[str] = []
    for tid in torch.topk(logits[0, -1].float(), 300).indices.tolist():
        piece = tok.decode([tid]).strip()
        if WORD_RE.match(piece) and piece not in words:
            words.append(piece)
            if before.strip() and piece[:1].isupper() and piece.lower() not in words:
                words.append(piece.lower())  # an answer starts with a capital; mid-sentence may not
        if len(words) >= want:
            break
    return words


def fill_mask_by_lm(engine, opt, p: Prepared, progress):
    """Fill-mask with a left-to-right LM: candidates from the next-token distribution at the
    mask and from the instruct model asked to fill the blank, then each whole sentence (with what
    follows the mask) scored by the LM."""
    bundle = engine.load(opt.key, progress=progress)
    tok = bundle.tokenizer
    before, after = MASK_RE.split(p.text)
    prefix = before.rstrip()
    space = before != prefix  # a word after a space starts with " " in a BPE vocabulary
    start_id = start_id_of(tok)
    prefix_ids = [start_id] + tok(prefix, add_special_tokens=False)["input_ids"]
    with torch.inference_mode():
        logits = bundle.model(input_ids=torch.tensor([prefix_ids], device=bundle.device)).logits  # (1, len, vocab)
    next_logp = torch.log_softmax(logits[0, -1].float(), dim=-1)  # (vocab,)
    # A sentence-initial mask gets a flat, uninformative first-token distribution: try more words.
    want = max(3 * p.settings.top_k, 20 if prefix else 60)
    candidates: list[str] = []
    for tid in torch.topk(next_logp, 2000).indices.tolist():
        piece = tok.decode([tid])
        if not WORD_RE.match(piece) or piece.startswith(" ") != space:
            continue
        word = piece.strip()
        if word and word not in candidates:
            candidates.append(word)
        if len(candidates) >= want:
            break
    for word in blank_candidates(bundle, before, after, want=2 * p.settings.top_k + 10):
        if word not in candidates:
            candidates.append(word)
    if not candidates:
        raise UserInputError("no word candidates came out of the language model for this mask position: "
                             "put [MASK] where a word goes, e.g. 'The capital of France is [MASK].'")
    joiner = " " if space and prefix else ""
    candidates = complete_words(bundle, start_id, f"{prefix}{joiner}", candidates)
    sentences = [f"{prefix}{joiner}{w}{after}" for w in candidates]
    progress(None, f"Scoring {len(sentences)} candidate sentences...")
    totals = sentence_logprobs(bundle, sentences, start_id)  # (n,)
    probs = torch.softmax(totals, dim=0)  # shares 1.0 among the candidates
    order = torch.argsort(probs, descending=True).tolist()[: p.settings.top_k]
    p.extra["candidates_scored"] = len(candidates)
    return [{"score": float(probs[i]), "token_str": candidates[i], "sequence": sentences[i],
             "sentence_logprob": round(float(totals[i]), 3)} for i in order]


SUMMARY_PROMPT = "Summarize the following text in one or two short sentences.\n\n{text}"


def summary_messages(text: str) -> list[dict]:
    return [{"role": "user", "content": SUMMARY_PROMPT.format(text=text)}]


def summarize_by_prompt(engine, opt, p: Prepared, progress):
    bundle = engine.load(opt.key, progress=progress)
    pipe = lm_pipeline(bundle)
    progress(None, "Summarizing with the instruct model...")
    with torch.inference_mode():
        out = pipe(summary_messages(p.text), max_new_tokens=p.settings.max_length,
                   min_new_tokens=p.settings.min_length, do_sample=False)
    summary = out[0]["generated_text"][-1]["content"].strip()
    tok = bundle.tokenizer
    p.extra["input_tokens"] = len(tok(p.text, add_special_tokens=False)["input_ids"])
    p.extra["summary_tokens"] = len(tok(summary, add_special_tokens=False)["input_ids"])
    return [{"summary_text": summary}]


SPACY_TO_CONLL = {"PERSON": "PER", "ORG": "ORG", "GPE": "LOC", "LOC": "LOC", "FAC": "LOC",
                  "NORP": "MISC", "EVENT": "MISC", "WORK_OF_ART": "MISC", "LAW": "MISC",
                  "LANGUAGE": "MISC", "PRODUCT": "MISC"}


def ner_by_spacy(engine, opt, p: Prepared, progress):
    bundle = engine.load(opt.key, progress=progress)
    doc = bundle.nlp(p.text)
    if p.settings.aggregation_strategy == "none":
        # one row per word with its IOB tag, like the pipeline's "none" (spaCy has no word pieces)
        out = []
        for tok in doc:
            label = SPACY_TO_CONLL.get(tok.ent_type_)
            if tok.ent_iob_ in ("B", "I") and label:
                out.append({"entity": f"{tok.ent_iob_}-{label}", "score": None, "index": tok.i,
                            "word": tok.text, "start": tok.idx, "end": tok.idx + len(tok.text)})
        return out
    return [{"entity_group": SPACY_TO_CONLL[e.label_], "score": None, "word": e.text,
             "start": e.start_char, "end": e.end_char, "spacy_label": e.label_}
            for e in doc.ents if e.label_ in SPACY_TO_CONLL]
