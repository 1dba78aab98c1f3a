"""Build assets/quotes/quotes.txt, the LoRA tab's training set, from Debian's `fortunes` package.

    apt-get install -y fortunes          # BSD licence: /usr/share/doc/fortunes/copyright
    python scripts/build_quotes.py       # writes assets/quotes/quotes.txt (one "<quote> — <author>" a line)

Each fortune file holds entries separated by a line "%"; an attributed entry ends with a line
"-- Author, "Work"". We keep only attributed, single-speaker entries from topic files that
suit a classroom, 15-220 characters long, with the author cut at the first comma, and drop
duplicates. The off-colour collection (fortunes-off) is never read.
"""
from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SOURCE = Path("/usr/share/games/fortunes")
OUT = ROOT / "assets" / "quotes" / "quotes.txt"

# Topic files read; the others (drugs, ethnic, men-women, politics, miscellaneous, chat logs,
# riddles, definitions, zippy, ...) are left out as unsuitable or as not being quotes.
TOPICS = ("art", "computers", "cookie", "education", "food", "humorists", "kids", "literature",
          "love", "magic", "people", "platitudes", "science", "songs-poems", "sports", "tao",
          "wisdom", "work", "pets", "linux", "debian", "startrek", "medicine", "miscellaneous")

MIN_CHARS, MAX_CHARS, MAX_AUTHOR = 15, 220, 40
DASH = " — "

# A speaker label ("Q:", "Bob:", "[Joe]") at the start of a line means a dialogue.
SPEAKER = re.compile(r"^\s*(\[?[A-Z][\w.' -]{0,24}\]?|<\w+>)\s*:\s", re.MULTILINE)
# Words that have no place on a classroom projector, plus topics we would rather not train on.
UNSUITABLE = re.compile(
    r"\b(sex\w*|fuck\w*|shit\w*|damn\w*|hell|bitch\w*|bastard\w*|whore\w*|prostitut\w*|rape\w*|"
    r"nigg\w*|negro\w*|jew\w*|fag\w*|gay|homosexual\w*|lesbian\w*|breast\w*|nud\w*|naked|penis\w*|"
    r"vagina\w*|virgin\w*|orgasm\w*|porn\w*|erotic\w*|ass|asses|arse|piss\w*|crap\w*|suicid\w*|kill\w*|"
    r"murder\w*|drunk\w*|beer|whisk[e]?y|vodka|booze|liquor|drug\w*|marijuana|cocaine|heroin|"
    r"god|gods|jesus|christ\w*|church\w*|bibles?|satan|devil|religio\w*|pope|hitler|nazi\w*|slave\w*|"
    r"wives|wife|husband\w*|mistress\w*|adulter\w*|bed|seduc\w*|lust\w*|bra|kiss\w*|"
    r"fat|ugly|stupid\w*|idiot\w*|moron\w*|retard\w*|dumb|gun\w*|shoot\w*|bomb\w*|war|wars|"
    r"blood\w*|drown\w*|amyl\w*|toke|ludes|cheech|butt|goetz|midget\w*|prostate|tortur\w*|terror\w*|"
    r"fetish\w*|suck\w*|dope|lsd|cancer\w*|f-word|tequil\w*|handgun\w*|miniskirt\w*|naughty|mug|"
    r"knocked|desalvo|behind|shotgun|shot|alzado|cardiac|protestants?|biblical|krishna|used by you|disease|gag|puked?|buried|indian\w*|firearms?|horsewhip|squealers?|anastasia|junkies|trash|"
    r"imbeciles?|slob|pants|obituar\w*|warned you|barker|dog meat|no feet|love without|nipple\w*|whip|knees|addict\w*|swears|ahrimanes|strangle\w*|gin|coffin|dying|leary|trump|getraenke|hanged|backside|beast|subhuman|assas+ination|gwine|yigarette|priests?|allah|lord|carried by six|"
    r"hades|aborigin\w*|monsters?|spastic|insane|throats?|executioner|kidnap\w*|halter\w*|witch\w*|hootch\w*|females?|feminine|cock|pallbearer\w*|"
    r"bartender\w*|scab|suffocat\w*|invasion|male|magazine|burn|shorter by the head|bondage|chastity|continence|nympho\w*|atrocious|homicid\w*|maniac\w*|crowley|flesh|turn-on|"
    r"contract|tapeworm\w*|depraved|sins|sinners?|revenge|blackmail|hatred|organ|caress\w*|obscen\w*|tart|swine|pregnan\w*|funeral\w*|knife|voodoo|flog\w*|naked\w*|belch\w*|intimate|"
    r"consenting|puritan\w*|hated|pot|died|baby|nuke\w*|bending|orgy|dogfood|punch\w*|ram|blackout|pervers\w*|sin|toilet\w*|"
    r"drink\w*|primitive|faith|pray\w*|preacher\w*|theolog\w*|saints?|infidel\w*|evolution|lunatic\w*|"
    r"lunacy|madm[ae]n|stinks|snot\w*|unnatural|slap\w*|deadly|lethal|psycho\w*|sadist\w*|hot tub|crippl\w*|love life|jerk|scum|stench|garbage|gross\w*|catholic|alcohol\w*|hash|dirty|sucks|hate|girdle\w*|armageddon|weapon\w*|die|dies|dead|death|corpse\w*|grave|insult\w*|women|woman|girl\w*|men)\b",
    re.IGNORECASE,
)
BAD_AUTHOR = re.compile(r"(unknown|anonymous|fortune|usenet|\bfrom\b|\bsign\b|\bon\b|http|@|\d{3,}|"
                        r"\bnet\b|\bcomp\.|\balt\.)", re.IGNORECASE)


def entries(path: Path):
    """Raw entries of one fortune file (text between '%' lines)."""
    text = path.read_text(encoding="utf-8", errors="replace")
    for chunk in re.split(r"^%\s*$", text, flags=re.MULTILINE):
        chunk = chunk.strip("\n")
        if chunk.strip():
            yield chunk


def split_attribution(entry: str) -> tuple[str, str] | None:
    """(quote, author) when the entry ends with a '-- Author, ...' block, else None."""
    lines = entry.splitlines()
    for i in range(len(lines) - 1, -1, -1):
        if re.match(r"^\s+--\s*\S", lines[i]):
            body, attribution = lines[:i], " ".join(s.strip() for s in lines[i:])
            break
    else:
        return None
    attribution = re.sub(r"^--\s*", "", attribution)
    author = attribution.split(",")[0].strip().strip('"').strip()
    author = re.sub(r"\s+", " ", author).rstrip(".") if not re.search(r"\b[A-Z]\.$", author) else author
    if "--" in "\n".join(body) and not body:
        return None
    return "\n".join(body), author


def clean_quote(body: str) -> str | None:
    if SPEAKER.search(body) or body.count('"') > 2 or "\t\t" in body.strip() or "--" in body:
        return None
    if any(c in body for c in "<>{}|\\_#*~^"):
        return None
    text = re.sub(r"\s+", " ", body).strip()
    if len(text) > 2 and text[0] == '"' and text[-1] == '"' and text.count('"') == 2:
        text = text[1:-1].strip()  # the whole quote in quotation marks: the marks add nothing
    return text


def author_ok(author: str) -> bool:
    if not author or len(author) > MAX_AUTHOR or BAD_AUTHOR.search(author):
        return False
    if not re.match(r"^[A-Z][A-Za-z.'\- ]+$", author):
        return False
    return len(author.split()) <= 5


def build(source: Path = SOURCE, topics=TOPICS) -> list[str]:
    seen, out = set(), []
    for topic in topics:
        path = source / topic
        if not path.exists():
            print(f"missing {path}: apt-get install -y fortunes", file=sys.stderr)
            continue
        for entry in entries(path):
            parts = split_attribution(entry)
            if parts is None:
                continue
            quote, author = clean_quote(parts[0]), parts[1]
            if quote is None or not author_ok(author):
                continue
            if not MIN_CHARS <= len(quote) <= MAX_CHARS or UNSUITABLE.search(quote) or UNSUITABLE.search(author):
                continue
            key = re.sub(r"\W+", "", quote.lower())
            if key in seen:
                continue
            seen.add(key)
            out.append(f"{quote}{DASH}{author}")
    return out


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=OUT)
    args = p.parse_args(argv)
    if not SOURCE.exists():
        sys.exit(f"{SOURCE} is missing: run `apt-get install -y fortunes` first")
    quotes = build()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(quotes) + "\n", encoding="utf-8")
    print(f"wrote {len(quotes)} quotes to {args.out}")


if __name__ == "__main__":
    main()
