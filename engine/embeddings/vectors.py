"""Contextual embeddings and a mini vector search with the embedded MiniLM encoder.

- A word's vector depends on its sentence: hidden states of every layer for the chosen word,
  compared by cosine similarity across layers, and a 2D PCA of all token vectors.
- Semantic search: sentence embeddings by mean pooling over the attention mask and L2
  normalisation (what sentence-transformers does for all-MiniLM-L6-v2), ranked by cosine
  similarity, next to a TF-IDF ranking from scikit-learn.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from ..core.errors import UserInputError, check_range, check_text
from ..core.lazy import torch
from ..core.models import Progress, TextModel, no_progress

ENCODER = "minilm-l6"
MAX_SENTENCES = 6
MAX_SENTENCE_TOKENS = 64
MAX_PASSAGES = 50
MAX_PASSAGE_TOKENS = 256  # all-MiniLM-L6-v2 was trained on up to 256 word pieces
MAX_QUERY_CHARS = 500

BANK_SENTENCES = (
    "We sat on the river bank and watched the boats go by.",
    "The grassy bank of the stream was slippery after the rain.",
    "She opened a savings account at the bank on Monday.",
    "The bank raised its interest rates again this year.",
)

EXAMPLE_PASSAGES = (
    "To repair a punctured bicycle tyre, remove the wheel, find the hole in the inner tube and glue a patch over it.",
    "The Eiffel Tower was completed in 1889 and stands on the Champ de Mars in Paris.",
    "Photosynthesis lets plants turn sunlight, water and carbon dioxide into sugar and oxygen.",
    "A central bank sets interest rates to keep inflation under control.",
    "Regular exercise and enough sleep both lower the risk of heart disease.",
    "Python lists keep items in order and can grow as you append to them.",
    "The Great Barrier Reef, off the coast of Australia, is the largest coral reef system on Earth.",
    "Bake the bread at 220 degrees for thirty minutes, until the crust is golden brown.",
    "Volcanoes erupt when molten rock from deep underground rises through cracks in the crust.",
    "Transformers read a whole sentence at once and use attention to relate every word to every other word.",
    "Cats sleep for twelve to sixteen hours a day, mostly in short naps.",
    "Saving a little money every month in a bank account adds up thanks to compound interest.",
)
EXAMPLE_QUERIES = (
    "How do I fix a flat tire on my bike?",
    "Which landmark in France was finished in the nineteenth century?",
    "How do neural networks relate words in a text?",
)


# --- hidden states -------------------------------------------------------------------------

@dataclass
class Encoded:
    """One sentence through the encoder: its tokens, character offsets and every hidden state."""

    text: str
    tokens: list[str]
    offsets: list[tuple[int, int]]  # (start, end) character span per token; (0, 0) for specials
    special: list[bool]
    hidden: np.ndarray  # (layers + 1, tokens, dim): embeddings output, then each layer
    shapes: dict  # tensor name -> shape, as the model returned them


def encoder(engine, progress: Progress = no_progress) -> TextModel:
    return engine.load(ENCODER, progress=progress)


def encode_sentence(bundle: TextModel, text: str, max_tokens: int = MAX_SENTENCE_TOKENS) -> Encoded:
    tok = bundle.tokenizer
    enc = tok(text, return_tensors="pt", return_offsets_mapping=True, return_special_tokens_mask=True)
    n = int(enc["input_ids"].shape[1])
    if n > max_tokens:
        raise UserInputError(f"The sentence {text[:40]!r}... is {n} tokens long: each sentence may have "
                             f"1 to {max_tokens} tokens.")
    offsets = [tuple(map(int, o)) for o in enc.pop("offset_mapping")[0].tolist()]
    special = [bool(s) for s in enc.pop("special_tokens_mask")[0].tolist()]
    inputs = {k: v.to(bundle.device) for k, v in enc.items()}
    with torch.inference_mode():
        out = bundle.model(**inputs, output_hidden_states=True, output_attentions=True)
    hidden = torch.stack(out.hidden_states)[:, 0].float().cpu().numpy()  # (layers + 1, tokens, dim)
    shapes = {
        "input_ids": list(inputs["input_ids"].shape),
        "hidden_states": f"{len(out.hidden_states)} x {list(out.hidden_states[0].shape)}",
        "last_hidden_state": list(out.last_hidden_state.shape),
        "attentions": f"{len(out.attentions)} x {list(out.attentions[0].shape)}",
    }
    tokens = tok.convert_ids_to_tokens(inputs["input_ids"][0].tolist())
    return Encoded(text, tokens, offsets, special, hidden, shapes)


def word_positions(enc: Encoded, word: str) -> list[int]:
    """Token positions that make up the first whole-word occurrence of `word` (case-insensitive);
    a word split into pieces ('em', '##bed', '##ding') gives several positions."""
    match = re.search(rf"(?<!\w){re.escape(word)}(?!\w)", enc.text, flags=re.I)
    if match is None:
        return []
    lo, hi = match.span()
    return [i for i, (s, e) in enumerate(enc.offsets)
            if not enc.special[i] and e > s and s < hi and e > lo]


def parse_lines(name: str, text: str, max_items: int, max_chars: int) -> list[str]:
    check_text(name, text, max_chars=max_items * max_chars)
    items = [line.strip() for line in text.splitlines() if line.strip()]
    if len(items) > max_items:
        raise UserInputError(f"{name}: {len(items)} lines given; use 1 to {max_items} (one per line).")
    return items


def _cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b) + 1e-12))


def encode_sentences(engine, sentences: list[str] | str, word: str,
                     progress: Progress = no_progress) -> tuple[list[Encoded], str]:
    """Encode 2..MAX_SENTENCES sentences that each contain `word` as a whole word."""
    if isinstance(sentences, str):
        sentences = parse_lines("sentences", sentences, MAX_SENTENCES, 400)
    word = check_text("word", word, max_chars=40).strip()
    if not 2 <= len(sentences) <= MAX_SENTENCES:
        raise UserInputError(f"Give 2 to {MAX_SENTENCES} sentences (one per line); got {len(sentences)}.")
    bundle = encoder(engine, progress)
    encoded = []
    for i, s in enumerate(sentences):
        check_text(f"sentence {i + 1}", s, max_chars=400)
        enc = encode_sentence(bundle, s)
        if not word_positions(enc, word):
            raise UserInputError(f"The word {word!r} is not in sentence {i + 1}: {s!r}. Every sentence "
                                 f"must contain it as a whole word.")
        encoded.append(enc)
    return encoded, word


def word_similarity_of(encoded: list[Encoded], word: str) -> dict:
    """Cosine similarity of `word`'s vector between every pair of sentences, at every layer
    (layer 0 = the embedding layer's output). A word split into several pieces is the mean of
    its pieces. Plain lists: pairs, layers, cosine[pair][layer], and the tensor shapes."""
    vectors = [enc.hidden[:, word_positions(enc, word)].mean(axis=1) for enc in encoded]  # (layers + 1, dim)
    n_layers = vectors[0].shape[0]
    pairs, cosine = [], []
    for i in range(len(encoded)):
        for j in range(i + 1, len(encoded)):
            pairs.append([i + 1, j + 1])
            cosine.append([round(_cosine(vectors[i][l], vectors[j][l]), 5) for l in range(n_layers)])
    first = encoded[0]
    shapes = dict(first.shapes)
    shapes[f"{word!r} vector, each layer"] = [int(vectors[0].shape[1])]
    return dict(word=word, sentences=[e.text for e in encoded], layers=list(range(n_layers)), pairs=pairs,
                cosine=cosine, pieces=[[e.tokens[p] for p in word_positions(e, word)] for e in encoded],
                shapes=shapes, shapes_of=first.text)


def word_similarity(engine, sentences: list[str] | str, word: str = "bank",
                    progress: Progress = no_progress) -> dict:
    encoded, word = encode_sentences(engine, sentences, word, progress)
    return word_similarity_of(encoded, word)


def pca_2d(encoded: list[Encoded], word: str, layer: int) -> dict:
    """2D PCA of every (non-special) token vector of the sentences at one layer; the chosen
    word's tokens are flagged so a plot can highlight them."""
    n_layers = encoded[0].hidden.shape[0] - 1
    layer = check_range("layer", layer, 0, n_layers, integer=True)
    points, labels, sentence_of, is_word = [], [], [], []
    for k, enc in enumerate(encoded):
        mark = set(word_positions(enc, word))
        for i, tok in enumerate(enc.tokens):
            if enc.special[i]:
                continue
            points.append(enc.hidden[layer, i])
            labels.append(tok)
            sentence_of.append(k + 1)
            is_word.append(i in mark)
    x = np.stack(points)  # (points, dim)
    x = x - x.mean(axis=0, keepdims=True)
    _, sv, vt = np.linalg.svd(x, full_matrices=False)
    xy = x @ vt[:2].T  # (points, 2)
    explained = (sv[:2] ** 2 / (sv**2).sum()).tolist()
    return dict(layer=layer, x=xy[:, 0].tolist(), y=xy[:, 1].tolist(), labels=labels, sentence=sentence_of,
                is_word=is_word, explained=explained)


def contextual(engine, sentences: list[str] | str, word: str = "bank", layer: int = 6,
               progress: Progress = no_progress) -> tuple[dict, dict]:
    """Both views from one encoding pass: (similarity across layers, PCA at `layer`)."""
    encoded, word = encode_sentences(engine, sentences, word, progress)
    return word_similarity_of(encoded, word), pca_2d(encoded, word, layer)


# --- semantic search -----------------------------------------------------------------------

def sentence_embeddings(bundle: TextModel, texts: list[str], batch_size: int = 16) -> np.ndarray:
    """Mean of the last hidden states over real (non-padding) tokens, then L2-normalised."""
    out = []
    for start in range(0, len(texts), batch_size):
        enc = bundle.tokenizer(texts[start:start + batch_size], padding=True, truncation=True,
                               max_length=MAX_PASSAGE_TOKENS, return_tensors="pt").to(bundle.device)
        with torch.inference_mode():
            hidden = bundle.model(**enc).last_hidden_state  # (batch, tokens, dim)
        mask = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)  # (batch, tokens, 1)
        mean = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)  # (batch, dim)
        out.append(torch.nn.functional.normalize(mean, dim=-1).float().cpu().numpy())
    return np.concatenate(out)  # (texts, dim)


def tfidf_scores(query: str, passages: list[str]) -> np.ndarray:
    """Cosine similarity of TF-IDF vectors (fitted on the passages) between query and each passage."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    vec = TfidfVectorizer(stop_words="english")
    try:
        docs = vec.fit_transform(passages)  # (passages, vocab), rows L2-normalised
    except ValueError:  # every word is a stop word
        return np.zeros(len(passages))
    q = vec.transform([query])  # (1, vocab)
    return (docs @ q.T).toarray()[:, 0]


def ranking(scores: np.ndarray, passages: list[str], top_k: int, unranked_at_zero: bool = False) -> list[dict]:
    """The top_k passages by score, best first (ties in input order). unranked_at_zero (TF-IDF): a
    passage that shares no word with the query scores exactly 0 and gets rank None, since its place
    among the other zeros is only the input order."""
    order = np.argsort(-scores, kind="stable")[:top_k]
    return [dict(rank=None if unranked_at_zero and scores[i] == 0 else r + 1, passage=int(i) + 1,
                 score=round(float(scores[i]), 4), text=passages[i]) for r, i in enumerate(order)]


def semantic_search(engine, query: str, passages: list[str] | str, top_k: int = 5,
                    progress: Progress = no_progress) -> dict:
    """Rank passages for a query by embedding cosine similarity and by TF-IDF."""
    query = check_text("query", query, max_chars=MAX_QUERY_CHARS).strip()
    if isinstance(passages, str):
        passages = parse_lines("passages", passages, MAX_PASSAGES, 2_000)
    passages = [p.strip() for p in passages if isinstance(p, str) and p.strip()]
    if not 1 <= len(passages) <= MAX_PASSAGES:
        raise UserInputError(f"Give 1 to {MAX_PASSAGES} passages (one per line); got {len(passages)}.")
    top_k = check_range("top_k", top_k, 1, len(passages), integer=True)
    bundle = encoder(engine, progress)
    emb = sentence_embeddings(bundle, [query] + passages)  # (1 + passages, dim)
    dense = emb[1:] @ emb[0]  # (passages,) cosine, since rows are unit length
    sparse = tfidf_scores(query, passages)
    return dict(query=query, n_passages=len(passages), embedding=ranking(dense, passages, top_k),
                tfidf=ranking(sparse, passages, top_k, unranked_at_zero=True),
                embedding_shape=[len(passages), int(emb.shape[1])])
