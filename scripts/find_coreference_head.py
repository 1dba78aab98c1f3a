"""Which MiniLM heads send 'it' to what it refers to? Scans every layer x head of the Embeddings
tab's encoder (all-MiniLM-L6-v2, the embedded "minilm-l6", through the tab's own
engine.embeddings.attention.attention_maps) on Winograd-style pairs: two sentences that differ in
one word, which flips what 'it' means.

    python scripts/find_coreference_head.py            # the table, best heads first
    python scripts/find_coreference_head.py --all      # every head

For each head it prints the weight of the 'it' row on the referent and on the other noun in each
sentence. A head "resolves" a sentence when the referent gets more weight than the other noun;
a head that resolves both sentences of a pair follows the meaning, not merely one noun (a head
that always looks at 'trophy' is right on one sentence of the pair and wrong on the other).
The notice under the tab's heatmap is written from this table (tests/test_embeddings.py checks
the head it names).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

# (sentence, referent, other noun): each pair differs in one adjective.
PAIRS = (
    (("The trophy didn't fit in the suitcase because it was too small.", "suitcase", "trophy"),
     ("The trophy didn't fit in the suitcase because it was too big.", "trophy", "suitcase")),
    (("The animal didn't cross the street because it was too tired.", "animal", "street"),
     ("The animal didn't cross the street because it was too wide.", "street", "animal")),
)


def it_weights(maps, referent: str, other: str):
    """(layers, heads) weights of the 'it' row on the referent and on the other noun."""
    tokens = [t.lower() for t in maps.tokens]
    q, r, o = tokens.index("it"), tokens.index(referent), tokens.index(other)
    return maps.weights[:, :, q, r], maps.weights[:, :, q, o]  # each (layers, heads)


def scan(engine) -> list[dict]:
    """One row per layer x head: (sentence, referent, weight, other noun, weight) per sentence,
    how many sentences it resolves, and its mean weight on the referent."""
    import numpy as np

    from engine.embeddings.attention import attention_maps

    rows = {}
    for pair in PAIRS:
        for sentence, referent, other in pair:
            on_ref, on_other = it_weights(attention_maps(engine, sentence, "minilm-l6"), referent, other)
            for li, hi in np.ndindex(on_ref.shape):
                row = rows.setdefault((li + 1, hi + 1), dict(layer=li + 1, head=hi + 1, cells=[]))
                row["cells"].append((sentence, referent, float(on_ref[li, hi]), other, float(on_other[li, hi])))
    out = list(rows.values())
    for row in out:
        row["resolved"] = [ref > oth for _, _, ref, _, oth in row["cells"]]
        row["on_referent"] = float(np.mean([ref for _, _, ref, _, _ in row["cells"]]))
    return sorted(out, key=lambda r: (-sum(r["resolved"]), -r["on_referent"]))


def report(rows: list[dict], show: int | None = 12, floor: float = 0.10) -> str:
    """The table, then what it says: heads that follow the meaning, and the strongest 'it' heads."""
    names = [f"{c[0].split(' because ')[1][:-1]}: {c[1]} vs {c[3]}" for c in rows[0]["cells"]]
    lines = ["layer head | " + " | ".join(names) + " | resolved"]
    for row in rows[:show]:
        cells = " | ".join(f"{ref:.2f} vs {oth:.2f}{' ✓' if ref > oth else '  '}" for _, _, ref, _, oth in row["cells"])
        lines.append(f"L{row['layer']} H{row['head']:<2} | {cells} | {sum(row['resolved'])} of {len(row['cells'])}")
    every = [r for r in rows if all(r["resolved"])]
    lines += ["", "Heads that put more weight on the meant noun in every sentence: "
              + (", ".join(f"L{r['layer']} H{r['head']}" for r in every) or "none")]
    for i, pair in enumerate(PAIRS):
        both = [r for r in rows if all(ref > oth and ref >= floor for _, _, ref, _, oth in r["cells"][2 * i:2 * i + 2])]
        lines.append(f"... in both '{pair[0][1]}/{pair[0][2]}' sentences, with at least {floor:.2f} on it: "
                     + (", ".join(f"L{r['layer']} H{r['head']}" for r in both) or "none"))
    strongest = sorted(rows, key=lambda r: -max(max(c[2], c[4]) for c in r["cells"]))[:3]
    lines.append("Strongest 'it' heads, the noun each sentence's 'it' weighs most there:")
    for r in strongest:
        picks = ", ".join(f"{c[1] if c[2] > c[4] else c[3]} {max(c[2], c[4]):.2f}" for c in r["cells"])
        lines.append(f"  L{r['layer']} H{r['head']}: {picks}")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--all", action="store_true", help="print every head, not only the best 12")
    args = ap.parse_args(argv)
    from engine import Engine

    print(report(scan(Engine(device="cpu", offline=True)), show=None if args.all else 12))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
