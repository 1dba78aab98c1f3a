"""Tokens lesson: real tokenizers and teaching toys behind one interface, and what the Tokens tab
shows (pieces, ids, stats, the decode round trip, padded batches, chat templates, fill-in-the-middle).

    base.py     Tok (the interface), Piece, Tokenized, RoundTrip, Batch
    loading.py  real tokenizers: tiktoken and Hugging Face tokenizers folders
    gguf.py     a tokenizer from any GGUF file (llama.cpp's vocabularies, a model's GGUF)
    mistral.py  Mistral's Tekken and SentencePiece files from mistral-common
    toys.py     word-, character- and byte-level toys
    batch.py    padding, truncation and attention masks on plain lists
    views.py    what the tab asks for: tokenize, compare, round trip, chat, FIM, CSV, examples
    plots.py    data -> HTML (token chips, cards, diffs, batch tables)

Every tokenizer is loaded by a registry row (task "tokenizer") through engine.load, so it is
cached once per process and shared read-only. This face re-exports the names the tab uses.
"""
from .base import (MAX_CHARS, PAD_SIDES, PAD_TO, Batch, Piece, RoundTrip, Tok, Tokenized,  # noqa: F401
                   TokensSettings, piece_of)
from .batch import batch_encode, split_sentences  # noqa: F401
from .loading import (SPECIAL_NAMES, TIKTOKEN_FILES, HFTok, TiktokenTok, bytes_label, hf_token_bytes,  # noqa: F401
                      load_hf_tokenizer, load_tiktoken, read_tokenizer_folder)
from .gguf import PRE_SPLITS, gguf_tokenizer_files, load_gguf_tokenizer  # noqa: F401
from .mistral import SentencePieceTok, TekkenTok, load_sentencepiece, load_tekken  # noqa: F401
from .plots import (CSS, DIFF_LIMIT, HOVER_JS, card_html, colour, diff_html, diff_units, invisible_code,  # noqa: F401
                    piece_html, render_batch_html, render_round_trips, render_side_by_side, source_html)
from .toys import TOY_SPECIALS, ByteTok, CharTok, ToyTok, WordTok, load_toy  # noqa: F401
from .views import (CHAT_KEYS, CSV_HEADERS, EXAMPLES, FIM_KEYS, MAX_IDS, SPAN_CHARS, STATS_HEADERS,  # noqa: F401
                    chat_build, chat_counts, chat_messages, chat_view, check_ids, compare, decode_ids, decode_view, fim_view, get, long_text, parse_ids, round_trip, stats_rows, token_csv, token_table, tokenize,
                    tokenizer_keys)
