"""Tokens lesson: real tokenizers and teaching toys behind one interface, and what the Tokens tab
shows (pieces, ids, stats, the decode round trip, padded batches, chat templates, fill-in-the-middle).

    base.py     Tok (the interface), Piece, Tokenized, RoundTrip, Batch
    loading.py  real tokenizers: tiktoken and Hugging Face tokenizers folders
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
from .plots import (CSS, DIFF_LIMIT, card_html, colour, diff_html, diff_units, invisible_code,  # noqa: F401
                    piece_html, render_batch_html, render_round_trips, render_side_by_side)
from .toys import TOY_SPECIALS, ByteTok, CharTok, ToyTok, WordTok, load_toy  # noqa: F401
from .views import (CHAT_KEYS, CSV_HEADERS, EXAMPLES, FIM_KEYS, STATS_HEADERS, chat_view, compare,  # noqa: F401
                    fim_view, get, long_text, round_trip, stats_rows, token_csv, token_table, tokenize,
                    tokenizer_keys)
