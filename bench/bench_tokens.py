"""Tokens tab: tokenizing 100 kB through the tab's engine function (exact ids of the whole text,
display pieces and the coloured HTML for the first tokens) vs the raw library's encode call."""
from __future__ import annotations

import gzip
import os
from pathlib import Path


from bench.run import Row, interleaved

KEYS = ["tok-gpt2", "tok-cl100k", "tok-o200k", "tok-p50k", "tok-bert-uncased", "tok-smollm2", "tok-llama2",
        "tok-phi3", "tok-starcoder", "tok-qwen2", "tok-llama3", "tok-deepseek-llm", "tok-deepseek-coder", "tok-falcon",
        "tok-mpt", "tok-command-r", "tok-mistral-v3", "tok-tekken"]


def raw_encoder(engine, key):
    """The library's own encode, loaded without engine/tokens/."""
    from engine import tokens
    source = engine.registry.resolve(key)
    if source.filename in tokens.TIKTOKEN_FILES:
        import tiktoken

        os.environ["TIKTOKEN_CACHE_DIR"] = source.path
        enc = tiktoken.get_encoding(tokens.TIKTOKEN_FILES[source.filename])
        return lambda text: enc.encode(text, allowed_special="all")
    if source.spec.loader.startswith("engine.tokens.mistral:"):  # mistral-common's own encoders
        from mistral_common.tokens.tokenizers.sentencepiece import SentencePieceTokenizer
        from mistral_common.tokens.tokenizers.tekken import Tekkenizer

        path = Path(source.path) / source.filename
        ref = Tekkenizer.from_file(path) if path.suffix == ".json" else SentencePieceTokenizer(path)
        return lambda text: ref.encode(text, bos=False, eos=False)
    from tokenizers import Tokenizer

    folder = Path(source.path)
    gz = folder / "tokenizer.json.gz"
    tok = Tokenizer.from_str(gzip.decompress(gz.read_bytes()).decode()) if gz.exists() else \
        Tokenizer.from_file(str(folder / "tokenizer.json"))
    tok.no_truncation()  # MiniLM's tokenizer.json truncates at 128 tokens; we count them all
    tok.no_padding()
    return lambda text: tok.encode(text, add_special_tokens=False).ids


def run(ctx) -> list[Row]:
    from engine import tokens
    engine = ctx.engine
    text = tokens.long_text(100_000)
    rows = []
    for key in KEYS:
        raw = raw_encoder(engine, key)
        engine.load(key)  # loading is not what is measured

        def ours():
            r = tokens.tokenize(engine, key, text, max_render=800)
            tokens.render_side_by_side([r])
            return r

        n = ours().n_tokens
        assert n == len(raw(text))
        t_ours, t_raw = interleaved(ours, lambda: raw(text), repeat=15)
        rows.append(Row(f"tokens: 100 kB, {key} (+render 800) vs raw encode", t_ours, t_raw, target=1.5,
                        note=f"{n:,} tokens"))
    return rows
