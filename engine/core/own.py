"""Models the operator adds (AppConfig.models: --model, once per model, or LLM_PLAYGROUND_MODELS,
comma-separated): registry rows made from one line each, and the checks that run before any of
their weights is read.

One entry reads [ROLE=]SOURCE. ROLE is one of ROLES (causal-lm when left out); SOURCE is
- a Hub id, with an optional revision after @: HuggingFaceTB/SmolLM2-1.7B-Instruct@31b70e2;
- a local folder (a path that exists, or that starts with /, ./, ../ or ~) saved by save_pretrained;
- a local .gguf file (transformers dequantizes it to float once, as for the embedded SmolLM2).
The role `pair` takes BASE+INSTRUCT (two sources) and adds a base and an instruct causal-LM row.
Each causal LM also adds a row for its tokenizer (the Tokens tab offers it), unless the same source
is given as a tokenizer= entry too: a folder's tokenizer.json, a GGUF file's vocabulary, a Hub id's.

Loading rules (preflight, run by the Engine before a row's loader reads anything):
- never trust_remote_code: a config with auto_map, or a model type transformers does not know,
  is refused by name;
- safetensors or GGUF only: a folder (or Hub repository) holding only pickle weights
  (pytorch_model.bin) is refused, because unpickling can run code;
- the size as loaded (parameters x bytes per parameter, from the safetensors headers, the GGUF's
  tensor table or the Hub's metadata) is checked against the model cache's budget first;
- a missing, gated or private Hub id, or a missing revision, is named with what to do.
"""
from __future__ import annotations

import json
import os
import re
import struct
from dataclasses import dataclass, replace
from pathlib import Path

from .errors import ModelUnavailableError, UserInputError
from .registry import Embedded, ModelSpec, Source
from .lazy import from_transformers

ROLES = ("causal-lm", "pair", "encoder", "tokenizer")
ORIGIN = "operator"
PICKLE_WEIGHTS = ("pytorch_model.bin", ".bin", ".pt", ".pth", ".ckpt", ".pkl")
HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,95}/[A-Za-z0-9][A-Za-z0-9_.-]{0,95}$")
REVISION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_./-]{0,99}$")
LOADERS = {"causal-lm": "engine.core.models:load_causal_lm", "encoder": "engine.core.models:load_encoder",
           "tokenizer": "engine.tokens.loading:load_hf_tokenizer"}
DTYPE_BYTES = {"F64": 8, "F32": 4, "BF16": 2, "F16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1, "BOOL": 1,
               "F8_E4M3": 1, "F8_E5M2": 1}
GIB = 1024**3
FLAG = "--model / LLM_PLAYGROUND_MODELS"


@dataclass(frozen=True)
class Entry:
    """One parsed source: kind is hub, folder or gguf."""

    kind: str
    where: str  # Hub id, or an absolute path
    revision: str = ""

    @property
    def name(self) -> str:
        if self.kind == "hub":
            return self.where.split("/", 1)[1]
        return Path(self.where).stem if self.kind == "gguf" else Path(self.where).name

    @property
    def label(self) -> str:
        """Where it comes from, as the pickers show it."""
        if self.kind == "hub":
            return f"added · Hub {self.where}" + (f"@{self.revision[:12]}" if self.revision else "")
        return f"added · {'GGUF file' if self.kind == 'gguf' else 'folder'} {self.where}"


def _looks_local(text: str) -> bool:
    return text.startswith(("/", "./", "../", "~")) or text.lower().endswith(".gguf") or Path(text).exists()


def parse_source(text: str, role: str) -> Entry:
    """One SOURCE as an Entry, or a UserInputError naming the entry and what is wrong."""
    text = text.strip()
    if _looks_local(text):
        path = Path(os.path.abspath(Path(text).expanduser()))  # named as given (a symlink keeps its name)
        if path.suffix.lower() == ".gguf":
            if not path.is_file():
                raise UserInputError(f"{FLAG}: the GGUF file {text!r} does not exist.")
            if role not in ("causal-lm", "pair"):
                raise UserInputError(f"{FLAG}: {text!r} is a GGUF file, which holds a causal LM; role {role!r} "
                                     "needs a folder or a Hub id.")
            return Entry("gguf", str(path))
        if not path.is_dir():
            raise UserInputError(f"{FLAG}: the folder {text!r} does not exist (give a folder that save_pretrained "
                                 "wrote, a .gguf file, or a Hub id such as org/name@revision).")
        return Entry("folder", str(path))
    repo, _, revision = text.partition("@")
    if not HUB_ID.match(repo) or ".." in repo or (revision and (not REVISION.match(revision) or ".." in revision)):
        raise UserInputError(f"{FLAG}: {text!r} is neither an existing folder or .gguf file nor a Hub id "
                             "(owner/name, optionally @revision).")
    return Entry("hub", repo, revision)


def _slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:48] or "model"


def _spec(entry: Entry, task: str, key: str, suffix: str = "", base_of: str = "") -> ModelSpec:
    loader = LOADERS[task]
    common = dict(key=key, task=task, title=f"{entry.name}{suffix} ({entry.label})", loader=loader,
                  license="see the model's own card", origin=ORIGIN, base_of=base_of,
                  notes="Added by the operator (" + FLAG + ").")
    if task == "causal-lm":  # `vllm serve WHERE` (scripts/serve_vllm.sh) serves it under this name
        common["served_as"] = entry.where
    if entry.kind == "hub":
        return ModelSpec(hub_id=entry.where, revision=entry.revision, **common)
    path = Path(entry.where)
    if entry.kind == "gguf":
        return ModelSpec(embedded=Embedded(folder=str(path.parent), filename=path.name), **common)
    return ModelSpec(embedded=Embedded(folder=str(path)), **common)


def _tokenizer_of(entry: Entry, key: str, of_title: str) -> ModelSpec | None:
    """The tokenizer row that goes with causal LM `entry`, or None for a folder without tokenizer.json."""
    if entry.kind == "folder" and not (Path(entry.where) / "tokenizer.json").is_file():
        return None
    spec = _spec(entry, "tokenizer", key)
    loader = "engine.tokens.loading:load_gguf_tokenizer" if entry.kind == "gguf" else spec.loader
    return replace(spec, loader=loader, title=f"{of_title} · its tokenizer",
                   notes="The tokenizer of a causal LM added by the operator (" + FLAG + ").")


def _split(raw: str) -> tuple[str, str]:
    """(role, rest) of one entry; a bare source (whose path may hold '=') is a causal LM."""
    role, sep, rest = raw.partition("=")
    if not sep or role.strip() not in ROLES and "/" in role:
        return "causal-lm", raw
    return role.strip(), rest


def specs_from(entries, taken=()) -> tuple[ModelSpec, ...]:
    """Registry rows for the operator's entries (AppConfig.models). Keys are own-<name>, made unique
    against `taken` (the embedded rows' keys) and each other; a causal LM's tokenizer row is
    <its key>-tokenizer."""
    used, rows, models = set(taken), [], []

    def key_for(name: str) -> str:
        base = f"own-{_slug(name)}"
        key, n = base, 2
        while key in used:
            key, n = f"{base}-{n}", n + 1
        used.add(key)
        return key

    for raw in entries:
        role, rest = _split(raw)
        if role not in ROLES:
            raise UserInputError(f"{FLAG}: role {role!r} in {raw!r} is not one of {', '.join(ROLES)}.")
        if role == "pair":
            base, plus, instruct = rest.partition("+")
            if not plus or not base.strip() or not instruct.strip():
                raise UserInputError(f"{FLAG}: {raw!r}: a pair is pair=BASE+INSTRUCT (two sources).")
            base_entry, instruct_entry = parse_source(base, role), parse_source(instruct, role)
            base_key, instruct_key = key_for(base_entry.name), key_for(instruct_entry.name)
            rows.append(_spec(base_entry, "causal-lm", base_key, " · base", base_of=instruct_key))
            rows.append(_spec(instruct_entry, "causal-lm", instruct_key, " · instruct"))
            models += [(base_entry, rows[-2]), (instruct_entry, rows[-1])]
            continue
        entry = parse_source(rest, role)
        rows.append(_spec(entry, role, key_for(entry.name)))
        if role == "causal-lm":
            models.append((entry, rows[-1]))
    given = {(s.hub_id, s.revision, s.embedded) for s in rows if s.task == "tokenizer"}
    for entry, spec in models:
        if (spec.hub_id, spec.revision, spec.embedded) in given or f"{spec.key}-tokenizer" in used:
            continue
        tok = _tokenizer_of(entry, f"{spec.key}-tokenizer", spec.title)
        if tok is not None:
            used.add(tok.key)
            given.add((spec.hub_id, spec.revision, spec.embedded))
            rows.append(tok)
    return tuple(rows)


# --- preflight: before any weight is read -----------------------------------------------------

def _refuse(spec: ModelSpec, why: str) -> ModelUnavailableError:
    return ModelUnavailableError(f"{spec.title} is refused: {why}")


def check_config(spec: ModelSpec, config: dict) -> None:
    """No remote code: no auto_map, and a model type this transformers knows."""
    CONFIG_MAPPING = from_transformers("CONFIG_MAPPING")

    if config.get("auto_map") or config.get("trust_remote_code"):
        wants = sorted(config.get("auto_map") or {})
        raise _refuse(spec, f"its config asks for the model's own code (auto_map: {wants}), and this app never "
                            "runs remote code (trust_remote_code stays off). Use a model whose architecture "
                            "transformers ships.")
    model_type = config.get("model_type")
    if spec.task != "tokenizer" and model_type not in CONFIG_MAPPING:
        raise _refuse(spec, f"model type {model_type!r} is not one transformers ships, so it would need the "
                            "model's own code, which this app never runs.")


def safetensors_params(path: Path) -> dict[str, int]:
    """{dtype: number of values} from a .safetensors file's header (8 bytes of length, then JSON):
    no weight is read."""
    with path.open("rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        if n > 100 * 2**20:
            raise ValueError(f"{path.name}: header of {n} bytes")
        header = json.loads(f.read(n))
    counts: dict[str, int] = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        numel = 1
        for dim in info["shape"]:
            numel *= int(dim)
        counts[info["dtype"]] = counts.get(info["dtype"], 0) + numel
    return counts


def gguf_params(path: Path) -> tuple[int, str]:
    """(number of weights, architecture) of a GGUF file from its tensor table (memory-mapped; the
    weights themselves are not read)."""
    from gguf import GGUFReader

    reader = GGUFReader(str(path))
    arch_field = reader.fields.get("general.architecture")
    arch = bytes(arch_field.parts[arch_field.data[0]]).decode() if arch_field else "?"
    return sum(int(t.n_elements) for t in reader.tensors), arch


def check_size(spec: ModelSpec, n_params: int, bytes_per: int, budget: int, how: str) -> None:
    need = n_params * bytes_per
    if need > budget:
        raise _refuse(spec, f"it needs about {need / GIB:.2f} GiB as loaded ({n_params:,} parameters x {bytes_per} "
                            f"bytes, {how}), more than the model cache's budget of {budget / GIB:.2f} GiB. Raise "
                            "--cache-gb (LLM_PLAYGROUND_CACHE_GB) on a machine with that much memory, or pick a "
                            "smaller model.")


def _folder_checks(spec: ModelSpec, folder: Path, bytes_per: int, budget: int) -> None:
    config_path = folder / "config.json"
    if spec.task == "tokenizer":
        if not any((folder / n).exists() for n in ("tokenizer.json", "tokenizer.json.gz")):
            raise _refuse(spec, f"the folder {folder} holds no tokenizer.json (save a fast tokenizer there).")
        return
    if not config_path.is_file():
        raise _refuse(spec, f"the folder {folder} has no config.json: give a folder that save_pretrained wrote.")
    check_config(spec, json.loads(config_path.read_text()))
    shards = sorted(folder.glob("*.safetensors"))
    if not shards:
        pickles = sorted(p.name for p in folder.iterdir() if p.name.endswith(PICKLE_WEIGHTS))
        if pickles:
            raise _refuse(spec, f"the folder {folder} holds only pickle weights ({', '.join(pickles)}). Loading a "
                                "pickle can run any code, so this app loads safetensors or GGUF only: re-save it "
                                "with save_pretrained(folder, safe_serialization=True).")
        raise _refuse(spec, f"the folder {folder} holds no weights (*.safetensors).")
    total = sum(sum(safetensors_params(p).values()) for p in shards)
    check_size(spec, total, bytes_per, budget, f"from {len(shards)} safetensors file(s)")


def _gguf_checks(spec: ModelSpec, path: Path, budget: int) -> None:
    from transformers.integrations.ggml import GGUF_CONFIG_MAPPING

    with path.open("rb") as f:
        if f.read(4) != b"GGUF":
            raise _refuse(spec, f"{path} is not a GGUF file (its first bytes are not 'GGUF').")
    n_params, arch = gguf_params(path)
    if spec.task == "tokenizer":  # its vocabulary only is read, not the weights
        return
    if spec.task == "causal-lm" and arch not in GGUF_CONFIG_MAPPING:
        raise _refuse(spec, f"its GGUF architecture {arch!r} is not one transformers reads (it reads "
                            f"{', '.join(sorted(GGUF_CONFIG_MAPPING))}).")
    check_size(spec, n_params, 4, budget, "dequantized to float32")


def hub_api():
    from huggingface_hub import HfApi

    return HfApi()


def _hub_info(spec: ModelSpec, source: Source, api):
    from huggingface_hub.errors import GatedRepoError, RepositoryNotFoundError, RevisionNotFoundError

    rev = source.revision or "main"
    try:
        return api.model_info(source.path, revision=source.revision or None, files_metadata=True)
    except GatedRepoError:
        raise _refuse(spec, f"the Hub repository {source.path} is gated: accept its terms on "
                            f"https://huggingface.co/{source.path} and give the app a token (HF_TOKEN).") from None
    except RevisionNotFoundError:
        raise _refuse(spec, f"the Hub repository {source.path} has no revision {rev!r}: give a commit, branch or "
                            "tag that exists (owner/name@revision).") from None
    except RepositoryNotFoundError:
        raise _refuse(spec, f"the Hub has no repository {source.path} (or it is private): check the id, or give "
                            "the app a token (HF_TOKEN) that can read it.") from None


def _hub_checks(spec: ModelSpec, source: Source, bytes_per: int, budget: int, api) -> None:
    info = _hub_info(spec, source, api)
    if spec.task == "tokenizer":
        return
    check_config(spec, dict(getattr(info, "config", None) or {}))
    files = {s.rfilename: getattr(s, "size", None) or 0 for s in (info.siblings or [])}
    shards = [n for n in files if n.endswith(".safetensors") and "/" not in n]
    if not shards:
        pickles = sorted(n for n in files if n.endswith(PICKLE_WEIGHTS))
        why = f"holds only pickle weights ({', '.join(pickles)})" if pickles else "holds no safetensors weights"
        raise _refuse(spec, f"the Hub repository {source.path} {why}; this app loads safetensors or GGUF only.")
    st = getattr(info, "safetensors", None)
    n_params = int(getattr(st, "total", 0) or 0)
    if n_params:
        check_size(spec, n_params, bytes_per, budget, "the Hub's count")
    else:  # no count: the files' bytes, at 2 bytes per stored value when half precision is likelier
        check_size(spec, sum(files[n] for n in shards) // 2, bytes_per, budget, "estimated from the files' sizes")


def preflight(source: Source, budget: int, bytes_per: int, api=None) -> None:
    """The loading rules for an operator-added row, checked before anything of its weights is read
    (or downloaded). Raises ModelUnavailableError naming the model and the reason."""
    spec = source.spec
    if spec.task == "encoder":
        bytes_per = 4  # encoders run in float32 everywhere (models.load_encoder)
    if source.is_hub:
        _hub_checks(spec, source, bytes_per, budget, api or hub_api())
    elif source.filename and source.filename.lower().endswith(".gguf"):
        _gguf_checks(spec, Path(source.path) / source.filename, budget)
    else:
        _folder_checks(spec, Path(source.path), bytes_per, budget)


GGUF_TYPES = {"gemma3": "gemma3_text"}  # a GGUF architecture -> the model_type transformers gives it, where they differ
_GGUF_SCALARS = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}  # value type -> bytes


def gguf_architecture(path: Path, max_keys: int = 64) -> str | None:
    """general.architecture from a GGUF file's first metadata entries (where llama.cpp writes it),
    reading a few hundred bytes instead of the whole table; None when it is not among them."""
    with path.open("rb") as f:
        if f.read(4) != b"GGUF":
            return None
        f.read(4 + 8)  # version, tensor count
        (n_kv,) = struct.unpack("<Q", f.read(8))
        for _ in range(min(n_kv, max_keys)):
            (n,) = struct.unpack("<Q", f.read(8))
            key = f.read(n).decode("utf-8", "replace")
            (kind,) = struct.unpack("<I", f.read(4))
            if kind == 8:  # a string
                (n,) = struct.unpack("<Q", f.read(8))
                value = f.read(n)
                if key == "general.architecture":
                    return value.decode("utf-8", "replace")
            elif kind in _GGUF_SCALARS:
                f.read(_GGUF_SCALARS[kind])
            else:  # an array (the vocabulary): the architecture was not written first
                return None
    return None


def model_type_of(spec: ModelSpec) -> str | None:
    """The model_type of an operator's folder (its config.json) or GGUF file (its architecture), read
    without transformers; None for a Hub row, a row that is not the operator's, or a file that does not say."""
    emb = spec.embedded
    if spec.origin != ORIGIN or emb is None or not emb.folder:
        return None
    if emb.filename:
        arch = gguf_architecture(Path(emb.folder) / emb.filename)
        return GGUF_TYPES.get(arch, arch) if arch else None
    config_path = Path(emb.folder) / "config.json"
    try:
        return json.loads(config_path.read_text()).get("model_type")
    except (OSError, ValueError, AttributeError):
        return None


def config_of(spec: ModelSpec):
    """The transformers config of an operator's folder or GGUF row, read without any weight (a
    folder's config.json, a GGUF file's metadata), or None for a Hub row (nothing is fetched here) and
    for a row that is not the operator's. A config that asks for remote code is refused by name."""
    emb = spec.embedded
    if spec.origin != ORIGIN or emb is None or not emb.folder:
        return None
    from transformers import AutoConfig

    if emb.filename:
        return AutoConfig.from_pretrained(emb.folder, gguf_file=emb.filename)
    config_path = Path(emb.folder) / "config.json"
    if not config_path.is_file():
        raise _refuse(spec, f"the folder {emb.folder} has no config.json: give a folder that save_pretrained wrote.")
    check_config(spec, json.loads(config_path.read_text()))
    return AutoConfig.from_pretrained(emb.folder)
