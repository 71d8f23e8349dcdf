"""Lyrics of the synthetic demo corpus: packaged word lists, Bangla pronunciation, lines and rhythm.

Words come from ``wordlists/<language>[_<genre>].txt``; English lines carry a phone
transcription, Bangla words are transcribed from the script by :func:`bangla_phones`.
:func:`make_lyrics` writes a song's verses and chorus from grammatical line templates and
:func:`line_rhythm` times a line's syllables (English stress-timed, Bangla syllable-timed).
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from importlib import resources

import numpy as np

from musiclust.synth.voice import PHONES

#: Part-of-speech tags of the word lists (see the header of wordlists/en.txt and bn.txt).
TAGS = frozenset("narvtiedposcx")


@dataclass(frozen=True)
class Word:
    """A lyric word: its part of speech, sung syllables (phone tuples) and which syllables are stressed."""

    text: str
    tag: str
    syllables: tuple[tuple[str, ...], ...]
    stressed: tuple[bool, ...]


def _parse_transcription(text: str) -> tuple[tuple[tuple[str, ...], ...], tuple[bool, ...]]:
    sylls, stress = [], []
    for part in text.split(" . "):
        toks = part.split()
        is_stressed = bool(toks) and toks[0].startswith("'")
        if is_stressed:
            toks[0] = toks[0][1:]
        for t in toks:
            if t not in PHONES:
                raise ValueError(f"unknown phone {t!r} in transcription {text!r}")
        if not any(PHONES[t].kind == "vowel" for t in toks):
            raise ValueError(f"syllable {part!r} of {text!r} has no vowel")
        sylls.append(tuple(toks))
        stress.append(is_stressed)
    return tuple(sylls), tuple(stress)


@functools.lru_cache(maxsize=32)
def load_wordlist(name: str) -> tuple[Word, ...]:
    """Words of the packaged list ``wordlists/<name>.txt`` (``en``, ``bn``, ``en_rock``, ...).

    English lines carry a transcription; Bangla words are transcribed from the script by
    :func:`bangla_phones` unless the line gives one.
    """
    try:
        text = (
            resources.files("musiclust.synth").joinpath(f"wordlists/{name}.txt").read_text(encoding="utf-8")
        )
    except FileNotFoundError:
        raise FileNotFoundError(
            f"word list wordlists/{name}.txt is missing from the musiclust package; reinstall it (pip install -e .)"
        ) from None
    words = []
    for lineno, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        word, tag, trans = (line.split("\t") + ["", ""])[:3]
        try:
            if tag not in TAGS:
                raise ValueError(f"tag {tag!r} of {word!r} is not one of {''.join(sorted(TAGS))}")
            if trans.strip():
                sylls, stress = _parse_transcription(trans.strip())
            else:
                sylls = bangla_phones(word)
                stress = tuple(i == 0 for i in range(len(sylls)))  # Bangla stresses the first syllable
        except ValueError as exc:
            raise ValueError(f"wordlists/{name}.txt line {lineno}: {exc}") from None
        words.append(Word(word, tag, sylls, stress))
    if not words:
        raise ValueError(f"wordlists/{name}.txt has no words")
    return tuple(words)


# ---------------------------------------------------------------------------- Bangla grapheme-to-phoneme

_BN_CONS = {
    "ক": "k0",
    "খ": "kʰ",
    "গ": "g",
    "ঘ": "gʱ",
    "ঙ": "ŋ",
    "চ": "tʃ",
    "ছ": "tʃʰ",
    "জ": "dʒ",
    "ঝ": "dʒʱ",
    "ঞ": "n",
    "ট": "ʈ",
    "ঠ": "ʈʰ",
    "ড": "ɖ",
    "ঢ": "ɖʱ",
    "ণ": "n",
    "ত": "t̪",
    "থ": "t̪ʰ",
    "দ": "d̪",
    "ধ": "d̪ʱ",
    "ন": "n",
    "প": "p0",
    "ফ": "pʰ",
    "ব": "b",
    "ভ": "bʱ",
    "ম": "m",
    "য": "dʒ",
    "র": "ɾ",
    "ল": "l",
    "শ": "ʃ",
    "ষ": "ʃ",
    "স": "ʃ",
    "হ": "h",
    "\u09dc": "ɽ",
    "\u09dd": "ɽ",
    "\u09df": "j",
}
_BN_VOWEL_SIGNS = {
    "া": ("a",),
    "ি": ("i",),
    "ী": ("i",),
    "ু": ("u",),
    "ূ": ("u",),
    "ৃ": ("ɾ", "i"),
    "ে": ("e",),
    "ৈ": ("o", "j"),
    "ো": ("o",),
    "ৌ": ("o", "w"),
}
_BN_VOWELS = {
    "অ": ("ɔ",),
    "আ": ("a",),
    "ই": ("i",),
    "ঈ": ("i",),
    "উ": ("u",),
    "ঊ": ("u",),
    "ঋ": ("ɾ", "i"),
    "এ": ("e",),
    "ঐ": ("o", "j"),
    "ও": ("o",),
    "ঔ": ("o", "w"),
}
_HASANTA, _NUKTA, _CANDRABINDU, _ANUSVARA, _VISARGA, _KHANDA_TA = "্", "়", "ঁ", "ং", "ঃ", "ৎ"
_NASALISED = {"i": "ĩ", "e": "ẽ", "æ": "æ̃", "a": "ã", "ɔ": "ɔ̃", "o": "õ", "u": "ũ"}


def bangla_phones(word: str) -> tuple[tuple[str, ...], ...]:
    """Rule-based pronunciation of a Bengali-script word, as syllables of phone symbols.

    Implements the main rules of Standard Colloquial Bengali: consonants carry the inherent
    vowel /ɔ/ unless a vowel sign or hasanta follows; the word-final inherent vowel is not
    pronounced (except after a conjunct, where it is /o/); /ɔ/ raises to /o/ before a
    syllable with /i/ or /u/ (vowel harmony); candrabindu nasalises the vowel; ya-, ba- and
    ma-phala after a consonant are not pronounced (they geminate it); word-initial এ
    before a consonant + /a/ or final consonant is /æ/. Good enough to sing, not a dictionary.
    """
    word = (
        word.replace("ড" + _NUKTA, "\u09dc").replace("ঢ" + _NUKTA, "\u09dd").replace("য" + _NUKTA, "\u09df")
    )
    phones, inherent_at, conj_final = _scan_bangla(word)
    _final_inherent_vowel(phones, inherent_at, conj_final)
    _vowel_harmony(phones, inherent_at)
    return _syllabify(phones)


def _scan_bangla(word: str) -> tuple[list[str], list[int], bool]:
    """Left-to-right scan of the script into phones, every consonant with its inherent /ɔ/.

    Returns ``(phones, inherent_at, conj_final)``: the positions of the inherent vowels in
    ``phones`` and whether the last consonant was the second member of a conjunct.
    """
    phones: list[str] = []
    inherent_at: list[int] = []  # positions of inherent vowels in `phones`
    conj_final = False  # the last consonant was the second member of a conjunct
    chars = list(word)
    i = 0
    while i < len(chars):
        ch = chars[i]
        nxt = chars[i + 1] if i + 1 < len(chars) else ""
        if ch in _BN_CONS:
            prev_is_hasanta = i > 0 and chars[i - 1] == _HASANTA
            if prev_is_hasanta and ch in ("য", "ব", "ম") and phones:
                pass  # phala after a consonant: gemination, not a new sound
            else:
                phones.append(_BN_CONS[ch])
            if nxt == _HASANTA:
                i += 2
                conj_final = True
                continue
            if nxt in _BN_VOWEL_SIGNS:
                phones.extend(_BN_VOWEL_SIGNS[nxt])
                i += 2
                conj_final = False
                continue
            # inherent vowel (decided after the loop whether it is pronounced)
            inherent_at.append(len(phones))
            phones.append("ɔ")
            conj_final = prev_is_hasanta
            i += 1
            continue
        if ch in _BN_VOWELS:
            phones.extend(_initial_e(word) if ch == "এ" and i == 0 else _BN_VOWELS[ch])
        elif ch == _KHANDA_TA:
            phones.append("t̪")
        elif ch == _ANUSVARA:
            phones.append("ŋ")
        elif ch == _CANDRABINDU:
            _nasalise_last_vowel(phones)
        # visarga, hasanta at word end, ZWJ/ZWNJ and anything else: silent
        i += 1
    return phones, inherent_at, conj_final


def _initial_e(word: str) -> tuple[str, ...]:
    """Word-initial এ: /æ/ before a consonant that ends the word or precedes া, hasanta or a consonant."""
    v = _BN_VOWELS["এ"]
    rest = word[1:]
    if (
        len(rest) >= 1
        and rest[0] in _BN_CONS
        and (len(rest) == 1 or rest[1] in ("া", _HASANTA) or rest[1] in _BN_CONS)
    ):
        v = ("æ",)
    return v


def _nasalise_last_vowel(phones: list[str]) -> None:
    """Candrabindu: nasalise the last vowel before it that has a nasal form (in place)."""
    for k in range(len(phones) - 1, -1, -1):
        if phones[k] in _NASALISED:
            phones[k] = _NASALISED[phones[k]]
            break


def _final_inherent_vowel(phones: list[str], inherent_at: list[int], conj_final: bool) -> None:
    """Word-final inherent vowel (in place): silent, or /o/ after a conjunct; a one-vowel word keeps it."""
    if inherent_at and inherent_at[-1] == len(phones) - 1:
        if conj_final:
            phones[-1] = "o"
        elif sum(PHONES[p].kind == "vowel" for p in phones) > 1:  # a one-letter word keeps it
            phones.pop()
            inherent_at.pop()


def _vowel_harmony(phones: list[str], inherent_at: list[int]) -> None:
    """Inherent /ɔ/ -> /o/ before a high vowel in the next syllable (in place)."""
    vowels = [k for k, p in enumerate(phones) if PHONES[p].kind == "vowel"]
    for a, b in zip(vowels, vowels[1:]):
        if a in inherent_at and phones[b] in ("i", "u", "ĩ", "ũ"):
            phones[a] = "o"


def _syllabify(phones: list[str]) -> tuple[tuple[str, ...], ...]:
    """Split phones at vowels: one consonant between vowels starts the next syllable, more split."""
    nuclei = [k for k, p in enumerate(phones) if PHONES[p].kind == "vowel"]
    if not nuclei:
        raise ValueError(f"no vowel in {phones}")
    bounds = [0]
    for a, b in zip(nuclei, nuclei[1:]):
        n_between = b - a - 1
        bounds.append(b if n_between == 0 else b - 1 if n_between == 1 else a + 2)
    bounds.append(len(phones))
    return tuple(tuple(phones[s:e]) for s, e in zip(bounds, bounds[1:]))


# ============================================================================ lyrics


@dataclass
class Lyrics:
    """Sections of sung lines; each line is a list of words."""

    sections: list[tuple[str, list[list[Word]]]]

    def text(self) -> str:
        """Lyrics as published: section markers (``[Verse 1]``, ``[Chorus]``) and lines."""
        blocks = []
        for name, lines in self.sections:
            body = "\n".join(_line_text(line) for line in lines)
            blocks.append(f"[{name}]\n{body}")
        return "\n\n".join(blocks) + "\n"


def _line_text(line: list[Word]) -> str:
    s = " ".join(w.text for w in line)
    return s[:1].upper() + s[1:]


def strip_section_markers(text: str) -> str:
    """Drop ``[Chorus]``-style marker lines, as the pipeline's lyrics reader does."""
    kept = [ln for ln in text.splitlines() if not re.fullmatch(r"\s*\[[^\]]*\]\s*", ln)]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(kept)).strip() + "\n"


#: Line patterns: a tag draws a word of that part of speech, ``=a|b`` one of the given words.
LINE_TEMPLATES: dict[str, tuple[str, ...]] = {
    "en": (
        "p t d n",
        "d a n r",
        "t o r",
        "p v r",
        "d n s d n",
        "a n c a n",
        "v s d a n",
        "p t d a n",
        "r d n v",
        "d a n c d n",
    ),
    "bn": (
        "=আমি|আমরা d n t",
        "d a n r",
        "=তুমি r i",
        "d n e",
        "a n c a n",
        "=আমি|আমরা r v",
        "n r i",
        "d a n e",
        "r d n e",
        "=তুমি =আমার a n",
    ),
}


def _make_line(
    rng: np.random.Generator,
    language: str,
    general: tuple[Word, ...],
    flavour: tuple[Word, ...],
    max_syll: int,
) -> list[Word]:
    """One lyric line from a grammatical template; content words come from the genre's list 40% of the time."""
    by_text = {w.text: w for w in general}
    best: list[Word] = []
    for _ in range(12):
        template = LINE_TEMPLATES[language][int(rng.integers(len(LINE_TEMPLATES[language])))]
        line: list[Word] = []
        for slot in template.split():
            if slot.startswith("="):
                choices = slot[1:].split("|")
                line.append(by_text[choices[int(rng.integers(len(choices)))]])
                continue
            pool = [w for w in flavour if w.tag == slot] if rng.random() < 0.4 else []
            pool = pool or [w for w in general if w.tag == slot and w not in line]
            line.append(pool[int(rng.integers(len(pool)))])
        n_syll = sum(len(w.syllables) for w in line)
        if n_syll <= max_syll:
            return line
        if not best or n_syll < sum(len(w.syllables) for w in best):
            best = line
    return best


def make_lyrics(rng: np.random.Generator, language: str, genre: str, n_verses: int = 3) -> Lyrics:
    """A whole song's lyrics: verses of two or three lines, each followed by the same chorus.

    Short sections let a 30-60 s excerpt reach the chorus, as a radio edit would.
    """
    general = load_wordlist(language)
    try:
        flavour = load_wordlist(f"{language}_{genre}")
    except FileNotFoundError:
        flavour = general
    max_syll = 9 if language == "en" else 10
    chorus = [_make_line(rng, language, general, flavour, max_syll) for _ in range(2)]
    sections: list[tuple[str, list[list[Word]]]] = []
    for v in range(n_verses):
        sections.append(
            (
                f"Verse {v + 1}",
                [
                    _make_line(rng, language, general, flavour, max_syll)
                    for _ in range(int(rng.integers(2, 4)))
                ],
            )
        )
        sections.append(("Chorus", chorus))
    return Lyrics(sections)


def line_rhythm(
    line: list[Word], language: str, rng: np.random.Generator
) -> list[tuple[tuple[str, ...], float, float, bool]]:
    """(phones, onset beat, duration in beats, stressed) for each syllable of a line.

    English is stress-timed: each stressed syllable starts a one-beat foot and the
    unstressed syllables after it share the foot. Bangla is syllable-timed: every syllable
    gets the same half beat. Both hold the last syllable.
    """
    sylls = [(s, st) for w in line for s, st in zip(w.syllables, w.stressed)]
    out = []
    if language == "en":
        # pickup: unstressed syllables before the first stress go just before beat 1
        first = next((i for i, (_, st) in enumerate(sylls) if st), 0)
        t = -0.5 * first
        i = 0
        while i < len(sylls):
            j = i + 1
            while j < len(sylls) and not sylls[j][1]:
                j += 1
            foot = sylls[i:j] if i >= first else sylls[i : i + 1]
            if i < first:
                out.append((foot[0][0], t, 0.5, False))
                t += 0.5
                i += 1
                continue
            n_un = len(foot) - 1
            un = min(0.25, 0.5 / max(1, n_un)) if n_un else 0.0
            head = 1.0 - un * n_un
            out.append((foot[0][0], t, head, True))
            tt = t + head
            for s, _ in foot[1:]:
                out.append((s, tt, un, False))
                tt += un
            t += 1.0
            i = j
    else:
        unit = 0.5
        for k, (s, st) in enumerate(sylls):
            out.append((s, k * unit, unit, st))
    last = out[-1]
    out[-1] = (last[0], last[1], last[2] + float(rng.choice([1.0, 1.5, 2.0])), last[3])
    return out
