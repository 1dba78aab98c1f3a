"""Short answers in batches, with the probability of every answer token.

The model reads a plain few-shot prompt (two solved questions that are not in the set, then the
question) and answers greedily until its first line ends:

    Question: Who painted the ceiling of the Sistine Chapel?\\nAnswer: Michelangelo\\n\\n
    Question: What colour is a ripe banana?\\nAnswer: yellow\\n\\n
    Question: <question>\\nAnswer:

Prompts of a batch are padded on the left and go through `model.generate` (greedy, or sampling
with a seed), which stops a row at its first newline. From the raw logits of each step:

    first-token probability   p(first answer token | prompt) = softmax(logits at step 1)[token]
    sequence probability      exp(mean over the answer's tokens of ln p(token | before))
                              (the line break that ends the answer is not counted)
"""
from __future__ import annotations

import math

from ..core.lazy import no_grad, torch

SHOTS = (("Who painted the ceiling of the Sistine Chapel?", "Michelangelo"),
         ("What colour is a ripe banana?", "yellow"))
BATCH = 16
MAX_PROMPT_TOKENS = 512


def qa_prompt(question: str, shots=SHOTS, context: str = "") -> str:
    """The plain prompt; `context` (passages) goes before the question when given."""
    head = "".join(f"Question: {q}\nAnswer: {a}\n\n" for q, a in shots)
    lead = f"{context.strip()}\n\n" if context.strip() else ""
    return f"{head}{lead}Question: {question}\nAnswer:"


def _pad_id(tokenizer) -> int:
    for cand in (tokenizer.pad_token_id, tokenizer.eos_token_id, 0):
        if cand is not None:
            return int(cand)
    return 0


def _encode(tokenizer, prompts: list[str]):
    """Left-padded ids and mask (batch, seq); each prompt keeps its last MAX_PROMPT_TOKENS tokens."""
    rows = [tokenizer(p, add_special_tokens=True)["input_ids"][-MAX_PROMPT_TOKENS:] for p in prompts]
    width = max(len(r) for r in rows)
    pad = _pad_id(tokenizer)
    ids = torch.full((len(rows), width), pad, dtype=torch.long)  # (B, L), left-padded
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, r in enumerate(rows):
        ids[i, width - len(r):] = torch.tensor(r)
        mask[i, width - len(r):] = 1
    return ids, mask


def _cut(tokenizer, new_ids: list[int]) -> int:
    """How many of the new tokens belong to the answer: up to the first line break or end token."""
    stops = {tokenizer.eos_token_id, tokenizer.pad_token_id} - {None}
    for i, t in enumerate(new_ids):
        if t in stops or "\n" in tokenizer.decode([t]):
            return i
    return len(new_ids)


@no_grad
def answer_batch(model, tokenizer, prompts: list[str], max_new_tokens: int = 8, samples: int = 0,
                 temperature: float = 1.0, seed: int = 0) -> list[dict]:
    """Greedy answers (text, token ids, token log-probs, first-token probability, sequence
    probability) for a batch of prompts; with samples > 0 also that many sampled answers each."""
    device = next(model.parameters()).device
    ids, mask = _encode(tokenizer, prompts)
    ids, mask = ids.to(device), mask.to(device)
    common = dict(max_new_tokens=max_new_tokens, pad_token_id=_pad_id(tokenizer), stop_strings=["\n"],
                  tokenizer=tokenizer, return_dict_in_generate=True)
    out = model.generate(input_ids=ids, attention_mask=mask, do_sample=False, output_logits=True,
                         top_k=None, top_p=None, temperature=None, **common)
    width = ids.shape[1]
    rows = []
    for r in range(len(prompts)):
        new = [int(t) for t in out.sequences[r, width:]]
        n = _cut(tokenizer, new)
        logps = [float(torch.log_softmax(out.logits[t][r].float(), -1)[new[t]]) for t in range(n)]
        first = math.exp(float(torch.log_softmax(out.logits[0][r].float(), -1)[new[0]])) if new else 0.0
        rows.append(dict(text=tokenizer.decode(new[:n]).strip(), ids=new[:n], logprobs=logps,
                         first_token_p=first if n else 0.0,
                         sequence_p=math.exp(sum(logps) / n) if n else 0.0, samples=[]))
    if samples:
        torch.manual_seed(seed)
        sampled = model.generate(input_ids=ids, attention_mask=mask, do_sample=True, temperature=temperature,
                                 top_k=0, top_p=1.0, num_return_sequences=samples, **common).sequences
        for r in range(len(prompts)):
            for s in range(samples):
                new = [int(t) for t in sampled[r * samples + s, width:]]
                rows[r]["samples"].append(tokenizer.decode(new[:_cut(tokenizer, new)]).strip())
    return rows
