"""'Was this written by a model?': GLTR's idea (Gehrmann, Strobelt and Rush, 2019). Every token of
a text gets its rank under the model: 1 + the number of vocabulary tokens the model found more
likely at that position (metrics.score_window computes it from the raw logits). Ranks fall into

    top-10    rank <= 10        top-100   11..100        top-1000  101..1000        beyond    > 1000

Text sampled from a model is mostly top-10: the sampler picks likely tokens. People choose
rarer words more often, so human text has more top-100, top-1000 and beyond. It is a hint, not a
proof: a repetitive human text is green too, and a model sampled hot is not.
"""
from __future__ import annotations

import random
from pathlib import Path

from ..core.errors import check_text
from ..core.settings import make
from ..decoding import generation
from .metrics import perplexity

BUCKETS = (("top-10", 10), ("top-100", 100), ("top-1000", 1000), ("beyond", None))
MAX_TEXT_CHARS = 4_000
QUOTES = Path(__file__).resolve().parents[2] / "assets" / "quotes" / "quotes.txt"


def bucket_of(rank: int) -> str:
    for name, top in BUCKETS:
        if top is None or rank <= top:
            return name
    return BUCKETS[-1][0]


def rank_report(model, tokenizer, text: str, model_key: str = "") -> dict:
    """Per token: piece, rank, bucket, p and the model's top guess; the bucket counts and shares."""
    text = check_text("text", text, max_chars=MAX_TEXT_CHARS)
    limit = getattr(model.config, "max_position_embeddings", None) or 1024
    window = min(1024, limit)  # a long text slides: each token still sees up to window - 1 before it
    rep = perplexity(model, tokenizer, text, window=window, stride=window // 2, model_key=model_key)
    tokens = [dict(piece=t.piece, token_id=t.token_id, rank=t.rank, bucket=bucket_of(t.rank), p=t.prob,
                   top_token=t.top_token, top_p=t.top_prob) for t in rep.tokens]
    counts = {name: 0 for name, _ in BUCKETS}
    for t in tokens:
        counts[t["bucket"]] += 1
    n = len(tokens)
    return dict(text=text, unscored=rep.unscored, model=model_key, n_tokens=n, tokens=tokens, counts=counts,
                shares={k: v / n for k, v in counts.items()}, perplexity=rep.perplexity)


def human_quote(seed: int = 0) -> str:
    """A quote from the bundled quotes (Debian fortunes), without its author."""
    lines = [ln for ln in QUOTES.read_text(encoding="utf-8").splitlines() if len(ln.split(" — ")[0]) >= 90]
    return random.Random(seed).choice(lines).rsplit(" — ", 1)[0].strip()


def model_sample(tm, prompt: str, seed: int = 0, max_new_tokens: int = 40) -> str:
    """The model's own continuation of prompt (sampled at T = 0.8, top-k 40, seeded), prompt included."""
    settings = make(generation.DecodingSettings, temperature=0.8, top_k=40, top_p=1.0, do_sample=True,
                    max_new_tokens=max_new_tokens, num_return_sequences=1, seed=seed)
    out = generation.generate(tm, prompt, settings, mode="raw")
    text = "".join(t.text for t in out.sequences[0].tokens if not t.special)  # no <|endoftext|> etc.
    return (prompt + text).strip()


def example_pair(tm, seed: int = 0) -> tuple[str, str]:
    """(a model's text, a human quote): the model continues the quote's first four words."""
    quote = human_quote(seed)
    return model_sample(tm, " ".join(quote.split()[:4]), seed), quote
