"""Cutting long lyrics into pieces that fit a transformer's window.

Sentence-transformers silently truncates input beyond ``max_seq_length`` tokens, and
most songs are longer than 256 WordPiece tokens (Bengali script in an English
vocabulary costs about one token per letter). Lyrics are therefore packed line by
line into chunks of at most ``max_tokens`` tokens, counted with the model's own
tokenizer; a line longer than that is packed word by word, and a single word longer
than that is cut in halves. The caller embeds every chunk and averages the chunk
embeddings weighted by their token counts.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

#: counts the tokens of each text (without special tokens)
TokenCounter = Callable[[Sequence[str]], list[int]]


@dataclass(frozen=True)
class Chunk:
    """A piece of one text and its length in tokens (the averaging weight)."""

    text: str
    n_tokens: int


def token_counter(tokenizer: Any) -> TokenCounter:
    """A batch token counter for a Hugging Face tokenizer (special tokens excluded)."""

    def count(texts: Sequence[str]) -> list[int]:
        if not texts:
            return []
        # verbose=False: counting a long text is not the over-length input the tokenizer warns about
        enc = tokenizer(list(texts), add_special_tokens=False, truncation=False, verbose=False)
        return [len(ids) for ids in enc["input_ids"]]

    return count


def _pack(units: Sequence[str], counts: Sequence[int], max_tokens: int, sep: str) -> list[tuple[str, int]]:
    """Greedily join consecutive units (each <= max_tokens) into pieces of <= max_tokens."""
    out: list[tuple[str, int]] = []
    cur: list[str] = []
    cur_n = 0
    for unit, n in zip(units, counts):
        if cur and cur_n + n > max_tokens:
            out.append((sep.join(cur), cur_n))
            cur, cur_n = [], 0
        cur.append(unit)
        cur_n += n
    if cur:
        out.append((sep.join(cur), cur_n))
    return out


def _halve(text: str, count: TokenCounter, max_tokens: int) -> list[tuple[str, int]]:
    """Cut ``text`` in halves (on words when it has several, else characters) until each fits."""
    todo, done = [text], []
    while todo:
        part = todo.pop()
        n = count([part])[0]
        if n <= max_tokens or len(part) <= 1:
            done.append((part, n))
            continue
        words = part.split()
        if len(words) > 1:
            mid = len(words) // 2
            todo += [" ".join(words[mid:]), " ".join(words[:mid])]  # pop() takes the first half first
        else:
            mid = len(part) // 2
            todo += [part[mid:], part[:mid]]
    return done


def _split_line(line: str, count: TokenCounter, max_tokens: int) -> list[tuple[str, int]]:
    """Pieces of one over-long line, packed word by word."""
    words = line.split()
    pieces: list[tuple[str, int]] = []
    for word, n in zip(words, count(words)):
        pieces.extend(_halve(word, count, max_tokens) if n > max_tokens else [(word, n)])
    return _pack([p for p, _ in pieces], [n for _, n in pieces], max_tokens, " ")


def chunk_text(text: str, tokenizer: Any, max_tokens: int) -> list[Chunk]:
    """Pack the lines of ``text`` into chunks of at most ``max_tokens`` tokens.

    Every token of the text lands in a chunk (nothing is dropped); lines stay whole
    unless one line alone is longer than ``max_tokens``. Returns ``[]`` for blank text.
    """
    if max_tokens < 1:
        raise ValueError(f"max_tokens must be positive, got {max_tokens}")
    count = token_counter(tokenizer)
    lines = [ln.strip() for ln in text.splitlines()]
    lines = [ln for ln in lines if ln]
    if not lines:
        return []
    units: list[tuple[str, int]] = []
    for line, n in zip(lines, count(lines)):
        units.extend(_split_line(line, count, max_tokens) if n > max_tokens else [(line, n)])
    packed = _pack([u for u, _ in units], [n for _, n in units], max_tokens, "\n")

    # Counting units apart can differ by a token from counting them joined (sentencepiece
    # word-start markers): re-count every chunk and halve the rare one that overflows.
    chunks: list[Chunk] = []
    for (piece, _), n in zip(packed, count([p for p, _ in packed])):
        if n <= max_tokens:
            chunks.append(Chunk(piece, n))
        else:
            chunks.extend(Chunk(p, m) for p, m in _halve(piece, count, max_tokens))
    return chunks
