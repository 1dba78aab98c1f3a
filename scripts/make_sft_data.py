"""Write the bundled instruction dataset for the Post-training tab:
assets/sft/train.jsonl and assets/sft/held_out.jsonl, rows {"task", "prompt", "response"}.

Every answer is computed by engine/training/sft_tasks.py from the prompt's own numbers and words
(the capitals come from a table in that module), so each can be checked by a program.

    python scripts/make_sft_data.py
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from engine.training import sft_tasks  # noqa: E402

OUT = ROOT / "assets" / "sft"


def main() -> None:
    train, held_out = sft_tasks.build(seed=0)
    OUT.mkdir(parents=True, exist_ok=True)
    for name, rows in (("train.jsonl", train), ("held_out.jsonl", held_out)):
        (OUT / name).write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), "utf-8")
        print(f"{name}: {len(rows)} examples")


if __name__ == "__main__":
    main()
