"""Build assets/trust/questions.jsonl, the factual questions of the Trust & prompting tab.

    python scripts/build_trust_questions.py      # writes assets/trust/questions.jsonl (+ SOURCE.md)

Every question, gold answer and alias is written in the tables below (general-knowledge facts,
written for this project; no download). One line per question:

    {"id", "category", "question", "answer", "aliases" (other accepted spellings, gold first),
     "passage" (a sentence that states the answer, for grounding; "" where none),
     "false_answer" + "misleading_passage" (the same sentence with another item's answer)}

Facts that are disputed or changing (a country with several capitals, a capital being moved)
are left out on purpose: a gold answer must be right. The file rebuilds byte for byte (one
seeded generator picks each misleading answer from the same category).
"""
from __future__ import annotations

import json
import random
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "assets" / "trust" / "questions.jsonl"
SOURCE = ROOT / "assets" / "trust" / "SOURCE.md"
SEED = 37

# (country, capital, other accepted spellings)
CAPITALS = (
    ("France", "Paris", ()), ("Germany", "Berlin", ()), ("Italy", "Rome", ()), ("Spain", "Madrid", ()),
    ("Portugal", "Lisbon", ()), ("the United Kingdom", "London", ()), ("Ireland", "Dublin", ()),
    ("the Netherlands", "Amsterdam", ()), ("Belgium", "Brussels", ()), ("Switzerland", "Bern", ("Berne",)),
    ("Austria", "Vienna", ()), ("Poland", "Warsaw", ()), ("the Czech Republic", "Prague", ()),
    ("Hungary", "Budapest", ()), ("Greece", "Athens", ()), ("Sweden", "Stockholm", ()), ("Norway", "Oslo", ()),
    ("Denmark", "Copenhagen", ()), ("Finland", "Helsinki", ()), ("Iceland", "Reykjavik", ("Reykjavík",)),
    ("Russia", "Moscow", ()), ("Ukraine", "Kyiv", ("Kiev",)), ("Turkey", "Ankara", ()), ("Egypt", "Cairo", ()),
    ("Kenya", "Nairobi", ()), ("Nigeria", "Abuja", ()), ("Ethiopia", "Addis Ababa", ()), ("Morocco", "Rabat", ()),
    ("Ghana", "Accra", ()), ("Senegal", "Dakar", ()), ("Algeria", "Algiers", ()), ("Tunisia", "Tunis", ()),
    ("Japan", "Tokyo", ()), ("China", "Beijing", ("Peking",)), ("India", "New Delhi", ()),
    ("South Korea", "Seoul", ()), ("Thailand", "Bangkok", ()), ("Vietnam", "Hanoi", ()),
    ("the Philippines", "Manila", ()), ("Malaysia", "Kuala Lumpur", ()), ("Pakistan", "Islamabad", ()),
    ("Bangladesh", "Dhaka", ()), ("Nepal", "Kathmandu", ()), ("Iran", "Tehran", ()), ("Iraq", "Baghdad", ()),
    ("Saudi Arabia", "Riyadh", ()), ("Afghanistan", "Kabul", ()), ("Australia", "Canberra", ()),
    ("New Zealand", "Wellington", ()), ("Canada", "Ottawa", ()),
    ("the United States", "Washington, D.C.", ("Washington", "Washington DC", "Washington D.C.")),
    ("Mexico", "Mexico City", ()), ("Cuba", "Havana", ()), ("Argentina", "Buenos Aires", ()),
    ("Brazil", "Brasília", ("Brasilia",)), ("Chile", "Santiago", ()), ("Peru", "Lima", ()),
    ("Colombia", "Bogotá", ("Bogota",)), ("Venezuela", "Caracas", ()), ("Ecuador", "Quito", ()),
    ("Uruguay", "Montevideo", ()), ("Paraguay", "Asunción", ("Asuncion",)), ("Jamaica", "Kingston", ()),
    ("Mongolia", "Ulaanbaatar", ("Ulan Bator",)), ("Syria", "Damascus", ()), ("Jordan", "Amman", ()),
    ("Lebanon", "Beirut", ()), ("Qatar", "Doha", ()), ("Romania", "Bucharest", ()), ("Bulgaria", "Sofia", ()),
    ("Serbia", "Belgrade", ()), ("Croatia", "Zagreb", ()), ("Slovakia", "Bratislava", ()),
    ("Slovenia", "Ljubljana", ()), ("Estonia", "Tallinn", ()), ("Latvia", "Riga", ()), ("Lithuania", "Vilnius", ()),
    ("Cambodia", "Phnom Penh", ()),
)
# (element, symbol)
SYMBOLS = (
    ("hydrogen", "H"), ("helium", "He"), ("lithium", "Li"), ("carbon", "C"), ("nitrogen", "N"), ("oxygen", "O"),
    ("fluorine", "F"), ("neon", "Ne"), ("sodium", "Na"), ("magnesium", "Mg"), ("aluminium", "Al"),
    ("silicon", "Si"), ("phosphorus", "P"), ("sulfur", "S"), ("chlorine", "Cl"), ("argon", "Ar"),
    ("potassium", "K"), ("calcium", "Ca"), ("iron", "Fe"), ("nickel", "Ni"), ("copper", "Cu"), ("zinc", "Zn"),
    ("silver", "Ag"), ("tin", "Sn"), ("iodine", "I"), ("platinum", "Pt"), ("gold", "Au"), ("mercury", "Hg"),
    ("lead", "Pb"), ("uranium", "U"),
)
# (work, author, other accepted spellings)
AUTHORS = (
    ("Hamlet", "William Shakespeare", ("Shakespeare",)), ("Romeo and Juliet", "William Shakespeare", ("Shakespeare",)),
    ("Pride and Prejudice", "Jane Austen", ("Austen",)), ("Nineteen Eighty-Four", "George Orwell", ("Orwell",)),
    ("Animal Farm", "George Orwell", ("Orwell",)), ("War and Peace", "Leo Tolstoy", ("Tolstoy",)),
    ("Don Quixote", "Miguel de Cervantes", ("Cervantes",)), ("the Odyssey", "Homer", ()),
    ("Moby-Dick", "Herman Melville", ("Melville",)), ("Great Expectations", "Charles Dickens", ("Dickens",)),
    ("Oliver Twist", "Charles Dickens", ("Dickens",)),
    ("Crime and Punishment", "Fyodor Dostoevsky", ("Dostoevsky", "Dostoyevsky", "Fyodor Dostoyevsky")),
    ("On the Origin of Species", "Charles Darwin", ("Darwin",)), ("Frankenstein", "Mary Shelley", ("Shelley",)),
    ("Dracula", "Bram Stoker", ("Stoker",)), ("The Adventures of Tom Sawyer", "Mark Twain", ("Twain",)),
    ("Harry Potter and the Philosopher's Stone", "J. K. Rowling", ("JK Rowling", "Rowling", "J.K. Rowling")),
    ("The Hobbit", "J. R. R. Tolkien", ("Tolkien", "JRR Tolkien", "J.R.R. Tolkien")),
    ("Les Misérables", "Victor Hugo", ("Hugo",)), ("the Divine Comedy", "Dante Alighieri", ("Dante",)),
    ("The Old Man and the Sea", "Ernest Hemingway", ("Hemingway",)),
    ("One Hundred Years of Solitude", "Gabriel García Márquez",
     ("Gabriel Garcia Marquez", "García Márquez", "Garcia Marquez")),
    ("Jane Eyre", "Charlotte Brontë", ("Charlotte Bronte", "Brontë", "Bronte")),
    ("Alice's Adventures in Wonderland", "Lewis Carroll", ("Carroll",)),
    ("A Brief History of Time", "Stephen Hawking", ("Hawking",)),
)
# (country, currency, other accepted spellings)
CURRENCIES = (
    ("Japan", "yen", ("Japanese yen",)), ("the United Kingdom", "pound sterling", ("pound", "British pound", "sterling")),
    ("the United States", "US dollar", ("dollar", "United States dollar", "U.S. dollar")),
    ("India", "Indian rupee", ("rupee",)), ("China", "renminbi", ("yuan", "Chinese yuan")),
    ("Russia", "Russian ruble", ("ruble", "rouble", "Russian rouble")), ("Mexico", "Mexican peso", ("peso",)),
    ("Brazil", "Brazilian real", ("real",)), ("Switzerland", "Swiss franc", ("franc",)),
    ("South Korea", "South Korean won", ("won", "Korean won")), ("Germany", "euro", ()), ("France", "euro", ()),
    ("Italy", "euro", ()), ("Sweden", "Swedish krona", ("krona",)), ("Norway", "Norwegian krone", ("krone",)),
    ("Denmark", "Danish krone", ("krone",)), ("Poland", "Polish złoty", ("złoty", "zloty", "Polish zloty")),
    ("Turkey", "Turkish lira", ("lira",)), ("South Africa", "South African rand", ("rand",)),
    ("Thailand", "Thai baht", ("baht",)), ("Australia", "Australian dollar", ("dollar",)),
    ("Canada", "Canadian dollar", ("dollar",)), ("Egypt", "Egyptian pound", ("pound",)),
)
# (question, answer, other accepted spellings, sentence stating the answer)
NUMBERS = (
    ("How many legs does a spider have?", "8", ("eight",), "A spider has 8 legs."),
    ("How many legs does an insect have?", "6", ("six",), "An insect has 6 legs."),
    ("How many days are in a week?", "7", ("seven",), "A week has 7 days."),
    ("How many days are in a leap year?", "366", (), "A leap year has 366 days."),
    ("How many months are in a year?", "12", ("twelve",), "A year has 12 months."),
    ("How many minutes are in an hour?", "60", ("sixty",), "An hour has 60 minutes."),
    ("How many hours are in a day?", "24", ("twenty-four", "twenty four"), "A day has 24 hours."),
    ("How many sides does a hexagon have?", "6", ("six",), "A hexagon has 6 sides."),
    ("How many sides does a triangle have?", "3", ("three",), "A triangle has 3 sides."),
    ("How many players does a football (soccer) team have on the field?", "11", ("eleven",),
     "A football (soccer) team has 11 players on the field."),
    ("How many planets are in the Solar System?", "8", ("eight",), "The Solar System has 8 planets."),
    ("How many continents are there?", "7", ("seven",), "There are 7 continents."),
    ("How many keys does a standard piano have?", "88", ("eighty-eight",), "A standard piano has 88 keys."),
    ("How many bones are in the adult human body?", "206", (), "The adult human body has 206 bones."),
    ("How many degrees are in a right angle?", "90", ("ninety",), "A right angle has 90 degrees."),
    ("How many degrees are in a full circle?", "360", (), "A full circle has 360 degrees."),
    ("At how many degrees Celsius does water boil at sea level?", "100", ("100 degrees", "one hundred"),
     "At sea level water boils at 100 degrees Celsius."),
    ("At how many degrees Celsius does water freeze?", "0", ("zero", "0 degrees"), "Water freezes at 0 degrees Celsius."),
    ("How many cards are in a standard deck without jokers?", "52", ("fifty-two",),
     "A standard deck without jokers has 52 cards."),
    ("How many hearts does an octopus have?", "3", ("three",), "An octopus has 3 hearts."),
    ("What is the square root of 81?", "9", ("nine",), "The square root of 81 is 9."),
)
# (question, answer, other accepted spellings, sentence stating the answer)
GENERAL = (
    ("What is the largest planet in the Solar System?", "Jupiter", (), "Jupiter is the largest planet in the Solar System."),
    ("Which planet is closest to the Sun?", "Mercury", (), "Mercury is the planet closest to the Sun."),
    ("Which planet is known as the Red Planet?", "Mars", (), "Mars is known as the Red Planet."),
    ("Which planet is famous for its large rings?", "Saturn", (), "Saturn is famous for its large rings."),
    ("What is the largest ocean on Earth?", "Pacific Ocean", ("Pacific", "the Pacific"),
     "The Pacific Ocean is the largest ocean on Earth."),
    ("What is the highest mountain on Earth?", "Mount Everest", ("Everest", "Mt Everest", "Mt. Everest"),
     "Mount Everest is the highest mountain on Earth."),
    ("What is the largest continent?", "Asia", (), "Asia is the largest continent."),
    ("Who painted the Mona Lisa?", "Leonardo da Vinci", ("da Vinci", "Leonardo"), "Leonardo da Vinci painted the Mona Lisa."),
    ("Who painted The Starry Night?", "Vincent van Gogh", ("van Gogh",), "Vincent van Gogh painted The Starry Night."),
    ("Who was the first person to walk on the Moon?", "Neil Armstrong", ("Armstrong",),
     "Neil Armstrong was the first person to walk on the Moon."),
    ("Who developed the theory of relativity?", "Albert Einstein", ("Einstein",),
     "Albert Einstein developed the theory of relativity."),
    ("Who discovered penicillin?", "Alexander Fleming", ("Fleming",), "Alexander Fleming discovered penicillin."),
    ("Who was the first president of the United States?", "George Washington", ("Washington",),
     "George Washington was the first president of the United States."),
    ("Who composed Für Elise?", "Ludwig van Beethoven", ("Beethoven",), "Ludwig van Beethoven composed Für Elise."),
    ("Who composed The Magic Flute?", "Wolfgang Amadeus Mozart", ("Mozart",),
     "Wolfgang Amadeus Mozart composed The Magic Flute."),
    ("Which gas do plants take in from the air for photosynthesis?", "carbon dioxide", ("CO2",),
     "Plants take in carbon dioxide from the air for photosynthesis."),
    ("What is the hardest natural substance?", "diamond", ("diamonds",), "Diamond is the hardest natural substance."),
    ("What is the largest mammal?", "blue whale", ("the blue whale",), "The blue whale is the largest mammal."),
    ("What is the fastest land animal?", "cheetah", ("the cheetah",), "The cheetah is the fastest land animal."),
    ("What language is mainly spoken in Brazil?", "Portuguese", (), "Portuguese is the main language of Brazil."),
    ("What language is mainly spoken in Argentina?", "Spanish", (), "Spanish is the main language of Argentina."),
    ("In which country are the pyramids of Giza?", "Egypt", (), "The pyramids of Giza are in Egypt."),
    ("In which city is the Eiffel Tower?", "Paris", (), "The Eiffel Tower is in Paris."),
    ("In which city is the Colosseum?", "Rome", (), "The Colosseum is in Rome."),
    ("In which country is Machu Picchu?", "Peru", (), "Machu Picchu is in Peru."),
    ("What is the largest organ of the human body?", "skin", ("the skin",), "The skin is the largest organ of the human body."),
    ("Which organ pumps blood around the body?", "heart", ("the heart",), "The heart pumps blood around the body."),
    ("What is the main gas in Earth's atmosphere?", "nitrogen", (), "Nitrogen is the main gas in Earth's atmosphere."),
    ("Which metal is liquid at room temperature?", "mercury", (), "Mercury is the metal that is liquid at room temperature."),
    ("Who proposed the theory of evolution by natural selection?", "Charles Darwin", ("Darwin",),
     "Charles Darwin proposed the theory of evolution by natural selection."),
    ("What is the chemical formula of water?", "H2O", (), "The chemical formula of water is H2O."),
    ("What is the longest river in South America?", "Amazon", ("Amazon River", "the Amazon"),
     "The Amazon is the longest river in South America."),
)


def rows() -> list[dict]:
    """(category, question, answer, aliases, sentence template with {answer})"""
    out = []
    for country, city, aliases in CAPITALS:
        out.append(("capital", f"What is the capital of {country}?", city, aliases,
                    f"The capital of {country} is {{answer}}."))
    for element, symbol in SYMBOLS:
        out.append(("symbol", f"What is the chemical symbol for {element}?", symbol, (),
                    f"The chemical symbol for {element} is {{answer}}."))
    for work, author, aliases in AUTHORS:
        out.append(("author", f"Who wrote {work}?", author, aliases, f"{work[0].upper() + work[1:]} was written by {{answer}}."))
    for country, currency, aliases in CURRENCIES:
        aliases = (*aliases, *(a + "s" for a in (currency, *aliases)))  # "dollars" names the dollar too
        out.append(("currency", f"What is the currency of {country}?", currency, aliases,
                    f"The currency of {country} is the {{answer}}."))
    for question, answer, aliases, sentence in NUMBERS:
        out.append(("number", question, answer, aliases, sentence.replace(answer, "{answer}", 1)))
    for question, answer, aliases, sentence in GENERAL:
        at = sentence.lower().find(answer.lower())
        assert at >= 0, sentence
        out.append(("general", question, answer, aliases, sentence[:at] + "{answer}" + sentence[at + len(answer):]))
    return out


def build() -> list[dict]:
    rng = random.Random(SEED)
    table = rows()
    items, counters = [], {}
    for category, question, answer, aliases, template in table:
        others = sorted({a for c, _, a, _, _ in table if c == category and a != answer})
        false = rng.choice(others)
        n = counters[category] = counters.get(category, 0) + 1
        passage = template.format(answer=answer)
        assert answer in passage, passage
        items.append(dict(id=f"{category}-{n:03d}", category=category, question=question, answer=answer,
                          aliases=[answer, *aliases], passage=passage, false_answer=false,
                          misleading_passage=template.format(answer=false)))
    return items


SOURCE_TEXT = """# questions.jsonl: where it comes from

- Built by `scripts/build_trust_questions.py` (no download; one seeded generator, so it rebuilds
  byte for byte). {n} short factual questions, each with its gold answer and the other spellings
  accepted for it (`aliases`, gold first), written for this project from general knowledge:
  {counts}.
- Each line also holds `passage`, one sentence that states the answer (the grounding part's
  gold passage), and `misleading_passage`, the same sentence with another question's answer of
  the same category (`false_answer`), for the misleading-passage run.
- Disputed or changing facts (countries with several capitals, a capital being moved) are left out.
- Licence: the project's own.
"""


def main() -> None:
    items = build()
    assert len(items) >= 200 and len({it["question"] for it in items}) == len(items)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text("".join(json.dumps(it, ensure_ascii=False) + "\n" for it in items), encoding="utf-8")
    counts = {}
    for it in items:
        counts[it["category"]] = counts.get(it["category"], 0) + 1
    SOURCE.write_text(SOURCE_TEXT.format(n=len(items), counts=", ".join(f"{k} {v}" for k, v in counts.items())),
                      encoding="utf-8")
    print(f"wrote {len(items)} questions to {OUT.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
