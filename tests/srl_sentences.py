"""Hand-written sentences with the semantic roles a PropBank annotator would give each verb, and the scoring.

The table covers actives, passives (with and without a ``by`` phrase), negation, modals, datives (double
object and ``to``), time and place phrases, purpose and cause clauses, wh-questions and yes/no questions,
and verbs whose subject is not their agent ("The ice melted": ARG1). The expected roles follow PropBank's
frames as AllenNLP's BERT SRL model tags them: prepositions belong to their phrase ("by the boy" is ARG0),
modals are ARGM-MOD, "not" and "never" ARGM-NEG. They were written from the sentences, not from any
model's output.

Scoring is CoNLL-2005's: an argument counts when its verb, role and exact words all match.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

Frames = dict[str, dict[str, str]]  # verb -> role -> the argument's exact text

SENTENCES: list[tuple[str, Frames]] = [
    # actives
    ("The boy broke the window.", {"broke": {"ARG0": "The boy", "ARG1": "the window"}}),
    ("Angela Merkel visited Paris in 2019.",
     {"visited": {"ARG0": "Angela Merkel", "ARG1": "Paris", "ARGM-TMP": "in 2019"}}),
    ("The police arrested the suspect after a long chase.",
     {"arrested": {"ARG0": "The police", "ARG1": "the suspect", "ARGM-TMP": "after a long chase"}}),
    ("The students finished their homework before dinner.",
     {"finished": {"ARG0": "The students", "ARG1": "their homework", "ARGM-TMP": "before dinner"}}),
    ("The company hired five new engineers in London last month.",
     {"hired": {"ARG0": "The company", "ARG1": "five new engineers", "ARGM-LOC": "in London",
                "ARGM-TMP": "last month"}}),
    ("The children played in the park on Sunday.",
     {"played": {"ARG0": "The children", "ARGM-LOC": "in the park", "ARGM-TMP": "on Sunday"}}),
    ("My brother lives in Berlin.", {"lives": {"ARG0": "My brother", "ARGM-LOC": "in Berlin"}}),
    ("The dog chased the cat in the garden.",
     {"chased": {"ARG0": "The dog", "ARG1": "the cat", "ARGM-LOC": "in the garden"}}),
    ("He quickly sent the letter because he missed her.",
     {"sent": {"ARG0": "He", "ARGM-MNR": "quickly", "ARG1": "the letter", "ARGM-CAU": "because he missed her"},
      "missed": {"ARG0": "he", "ARG1": "her"}}),
    ("She wants to visit Rome next year.",
     {"wants": {"ARG0": "She", "ARG1": "to visit Rome next year"},
      "visit": {"ARG0": "She", "ARG1": "Rome", "ARGM-TMP": "next year"}}),
    # subjects that undergo rather than act
    ("The ice melted in the sun.", {"melted": {"ARG1": "The ice", "ARGM-LOC": "in the sun"}}),
    ("The meeting started at nine o'clock.", {"started": {"ARG1": "The meeting", "ARGM-TMP": "at nine o'clock"}}),
    # passives
    ("The window was broken by the boy yesterday.",
     {"broken": {"ARG1": "The window", "ARG0": "by the boy", "ARGM-TMP": "yesterday"}}),
    ("The cake was eaten.", {"eaten": {"ARG1": "The cake"}}),
    ("The letters were written by a famous poet in London.",
     {"written": {"ARG1": "The letters", "ARG0": "by a famous poet", "ARGM-LOC": "in London"}}),
    ("The museum was built in 1890 by the city.",
     {"built": {"ARG1": "The museum", "ARGM-TMP": "in 1890", "ARG0": "by the city"}}),
    ("The package was delivered to the wrong address on Tuesday.",
     {"delivered": {"ARG1": "The package", "ARG2": "to the wrong address", "ARGM-TMP": "on Tuesday"}}),
    # negation and modals
    ("They never answered the phone.", {"answered": {"ARG0": "They", "ARGM-NEG": "never", "ARG1": "the phone"}}),
    ("The government did not approve the plan.",
     {"approve": {"ARG0": "The government", "ARGM-NEG": "not", "ARG1": "the plan"}}),
    ("The company will not release the report until next week.",
     {"release": {"ARG0": "The company", "ARGM-MOD": "will", "ARGM-NEG": "not", "ARG1": "the report",
                  "ARGM-TMP": "until next week"}}),
    ("You should not open that door.",
     {"open": {"ARG0": "You", "ARGM-MOD": "should", "ARGM-NEG": "not", "ARG1": "that door"}}),
    ("Tom might have forgotten the keys at home.",
     {"forgotten": {"ARG0": "Tom", "ARGM-MOD": "might", "ARG1": "the keys", "ARGM-LOC": "at home"}}),
    ("Nobody could open the box with a knife.",
     {"open": {"ARG0": "Nobody", "ARGM-MOD": "could", "ARG1": "the box", "ARGM-MNR": "with a knife"}}),
    ("I have never seen such a beautiful sunset.",
     {"seen": {"ARG0": "I", "ARGM-NEG": "never", "ARG1": "such a beautiful sunset"}}),
    # datives
    ("Mary gave John a book.", {"gave": {"ARG0": "Mary", "ARG2": "John", "ARG1": "a book"}}),
    ("He sent the letter to his mother.", {"sent": {"ARG0": "He", "ARG1": "the letter", "ARG2": "to his mother"}}),
    ("The manager told the staff the news on Friday.",
     {"told": {"ARG0": "The manager", "ARG2": "the staff", "ARG1": "the news", "ARGM-TMP": "on Friday"}}),
    ("Sarah showed her friends the photos.",
     {"showed": {"ARG0": "Sarah", "ARG2": "her friends", "ARG1": "the photos"}}),
    ("John did not give Mary the money.",
     {"give": {"ARG0": "John", "ARGM-NEG": "not", "ARG2": "Mary", "ARG1": "the money"}}),
    ("The teacher can explain the rules to the students tomorrow.",
     {"explain": {"ARG0": "The teacher", "ARGM-MOD": "can", "ARG1": "the rules", "ARG2": "to the students",
                  "ARGM-TMP": "tomorrow"}}),
    ("Mary gave John a book in the library on Monday.",
     {"gave": {"ARG0": "Mary", "ARG2": "John", "ARG1": "a book", "ARGM-LOC": "in the library",
               "ARGM-TMP": "on Monday"}}),
    # questions
    ("What did John buy at the market?", {"buy": {"ARG1": "What", "ARG0": "John", "ARGM-LOC": "at the market"}}),
    ("Who broke the vase?", {"broke": {"ARG0": "Who", "ARG1": "the vase"}}),
    ("Where did you park the car?", {"park": {"ARGM-LOC": "Where", "ARG0": "you", "ARG1": "the car"}}),
    ("How did she solve the puzzle?", {"solve": {"ARGM-MNR": "How", "ARG0": "she", "ARG1": "the puzzle"}}),
    ("When will the train arrive?", {"arrive": {"ARGM-TMP": "When", "ARGM-MOD": "will", "ARG1": "the train"}}),
    ("Did Uriah honestly think he could beat the game in under three hours?",
     {"think": {"ARG0": "Uriah", "ARGM-ADV": "honestly", "ARG1": "he could beat the game in under three hours"},
      "beat": {"ARG0": "he", "ARGM-MOD": "could", "ARG1": "the game", "ARGM-TMP": "in under three hours"}}),
]


@dataclass
class RoleScore:
    """Counts for one role over the table: arguments found right, found in all, and expected in all."""

    correct: int = 0
    predicted: int = 0
    expected: int = 0

    @property
    def precision(self) -> float:
        return self.correct / self.predicted if self.predicted else 0.0

    @property
    def recall(self) -> float:
        return self.correct / self.expected if self.expected else 0.0

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0


Found = dict[str, list[tuple[str, str]]]  # verb -> (role, text) for each argument a labeller gave


def found_in(roles: object) -> Found:
    """A served answer (models.roles_io.Roles) as verb -> [(role, text)]."""
    return {frame.verb: [(a.role, a.text) for a in frame.arguments] for frame in roles.verbs}  # type: ignore[attr-defined]


def score(predicted: list[Found]) -> dict[str, RoleScore]:
    """Per-role counts, and "all" over every role, for one labelling per sentence of SENTENCES.

    A predicted argument of a verb the table does not list (an auxiliary the parser called a verb)
    counts against precision like any other wrong argument.
    """
    correct: Counter[str] = Counter()
    found: Counter[str] = Counter()
    wanted: Counter[str] = Counter()
    for (_, gold), guess in zip(SENTENCES, predicted):
        for verb, roles in gold.items():
            wanted.update(list(roles))  # a dict would add its values
            correct.update(role for role, text in roles.items() if (role, text) in guess.get(verb, []))
        for arguments in guess.values():
            found.update(role for role, _ in arguments)
    scores = {role: RoleScore(correct[role], found[role], wanted[role]) for role in sorted(wanted | found)}
    scores["all"] = RoleScore(sum(correct.values()), sum(found.values()), sum(wanted.values()))
    return scores
