"""Your own models: small random models of six families (Llama, Qwen2, Gemma 3, GPT-2, Phi-3, Mistral)
saved with save_pretrained and added through --model, as an operator adds a folder. For each: the
Inside-the-model journey vs the raw forward with hidden states and attentions; for the largest:
Generate (greedy) vs model.generate. The same targets as the embedded model's rows (bench_inside,
bench_decoding): the architecture table adds no cost of its own."""
from __future__ import annotations

import tempfile

import torch

from bench.run import Row, interleaved

SIZES = dict(vocab_size=49152, hidden_size=256, intermediate_size=768, num_hidden_layers=4, num_attention_heads=8,
             num_key_value_heads=4, max_position_embeddings=512)
FAMILIES = {"llama": {}, "qwen2": {}, "gemma3_text": dict(head_dim=32), "gpt2": dict(n_inner=768, bos_token_id=0, eos_token_id=0), "phi3": {},
            "mistral": {}}
PROMPT = "The history of the printing press begins in the fifteenth century, when"
N = 32


def _engine(folder: str, tokenizer):
    from transformers import AutoConfig, AutoModelForCausalLM

    from engine import Engine
    from engine.core.config import AppConfig

    paths = []
    for model_type, extra in FAMILIES.items():
        torch.manual_seed(0)
        model = AutoModelForCausalLM.from_config(AutoConfig.for_model(model_type, **{**SIZES, **extra}))
        path = f"{folder}/{model_type.split('_')[0]}"
        model.save_pretrained(path)
        tokenizer.save_pretrained(path)
        paths.append(path)
    return Engine(config=AppConfig(device="cpu", offline=True, models=tuple(paths), home=folder))


def run(ctx, repeat: int = 3) -> list[Row]:
    from engine import inside
    from engine.core.settings import make
    from engine.decoding import generation
    from engine.inside import plots

    tokenizer = ctx.engine.load("smollm2-135m-instruct").tokenizer
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        engine = _engine(folder, tokenizer)
        keys = [k for k in engine.registry.keys("causal-lm") if k.startswith("own-")]
        for key in keys:
            bundle = inside.load(engine, key)

            def ours():
                j, _ = inside.journey(engine, PROMPT, key)
                return plots.journey_html(j)

            def raw():
                enc = bundle.tokenizer(PROMPT, return_tensors="pt")
                with torch.inference_mode():
                    return bundle.model(**enc, output_hidden_states=True, output_attentions=True)

            ours(), raw()  # warm-up
            t_ours, t_raw = interleaved(ours, raw, repeat)
            rows.append(Row(f"journey view, added {key[4:]} ({bundle.model.num_parameters() / 1e6:.0f}M) vs raw forward",
                            t_ours, t_raw, target=1.3, note=f"best of {repeat} alternating, HTML included"))
        largest = max(keys, key=lambda k: engine.load(k).model.num_parameters())
        tm = engine.load(largest)
        s = make(generation.DecodingSettings, temperature=0.0, max_new_tokens=N, num_return_sequences=1)
        ids = tm.tokenizer(PROMPT, return_tensors="pt").input_ids

        def raw_generate():
            with torch.inference_mode():
                out = tm.model.generate(ids, attention_mask=torch.ones_like(ids), do_sample=False, max_new_tokens=N,
                                        min_new_tokens=N, pad_token_id=tm.tokenizer.eos_token_id)
            return out[0, ids.shape[1]:].tolist()

        generation.generate(tm, PROMPT, s), raw_generate()  # warm-up
        t_ours, t_raw = interleaved(lambda: generation.generate(tm, PROMPT, s), raw_generate, repeat)
        made = [t.id for t in generation.generate(tm, PROMPT, s).sequences[0].tokens]
        same = made == raw_generate()[:len(made)]
        rows.append(Row(f"generate {len(made)} tokens (greedy), added {largest[4:]} vs model.generate", t_ours, t_raw,
                        target=1.1, note=f"same tokens: {'yes' if same else 'NO'}"))
    return rows
