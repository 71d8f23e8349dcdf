"""Lyrics reading: encodings, section markers, and problems reported instead of raised."""

from __future__ import annotations

import pytest

from musiclust.data.lyrics import (
    LYRICS_EMPTY,
    LYRICS_MISSING,
    LYRICS_NONE,
    LYRICS_OK,
    LYRICS_UNREADABLE,
    LyricsError,
    clean_lyrics,
    read_lyrics_file,
    resolve_lyrics,
)


def test_section_markers_are_stripped_and_words_kept():
    raw = "[Intro]\nHello there\n\n\n\n[Chorus]\nSing it [x2] loud\nChorus:\n(Verse 2)\nVerse two words\nOutro x2\n"
    assert clean_lyrics(raw) == "Hello there\n\nSing it  loud\nVerse two words"


def test_lines_that_merely_start_with_a_section_word_are_kept():
    # "Bridge over troubled water" is a lyric line, not a section marker
    assert clean_lyrics("Bridge over troubled water\nHook me up tonight") == (
        "Bridge over troubled water\nHook me up tonight"
    )


def test_bangla_text_is_nfc_normalized_and_kept():
    decomposed = "আমার সোনার বাংলা"  # contains o-kar that NFC composes
    out = clean_lyrics(decomposed)
    assert out == "আমার সোনার বাংলা"
    assert "\u09cb" in out and "\u09c7\u09be" not in out


def test_utf8_bom_and_crlf_are_tolerated(tmp_path):
    p = tmp_path / "l.txt"
    p.write_bytes("\ufeff[Verse 1]\r\nCafé au lait\r\n".encode())
    assert read_lyrics_file(p) == "Café au lait"


def test_utf16_with_bom_is_read(tmp_path):
    p = tmp_path / "l16.txt"
    p.write_bytes("ভালোবাসা\n".encode("utf-16"))
    assert read_lyrics_file(p) == "ভালোবাসা"


def test_non_utf8_file_is_reported_with_offset(tmp_path):
    p = tmp_path / "latin1.txt"
    p.write_bytes("caf\xe9 cr\xe8me".encode("latin-1"))
    with pytest.raises(LyricsError) as ei:
        read_lyrics_file(p)
    assert ei.value.reason == LYRICS_UNREADABLE
    assert "0xe9" in ei.value.detail and "offset 3" in ei.value.detail


def test_resolve_never_raises_and_tags_each_outcome(tmp_path):
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"\xff\xff\xfe not utf8 \x80")
    only_markers = tmp_path / "m.txt"
    only_markers.write_text("[Chorus]\n[Instrumental]\n", encoding="utf-8")
    good = tmp_path / "g.txt"
    good.write_text("words here", encoding="utf-8")

    assert resolve_lyrics(None, None).status == LYRICS_NONE
    assert resolve_lyrics(None, tmp_path / "nope.txt").status == LYRICS_MISSING
    r = resolve_lyrics(None, bad)
    assert (r.status, r.text, r.has_lyrics) == (LYRICS_UNREADABLE, None, False)
    assert resolve_lyrics(None, only_markers).status == LYRICS_EMPTY
    assert resolve_lyrics(None, good).text == "words here"
    # inline text wins over a file
    r = resolve_lyrics("[Hook]\ninline words", good)
    assert (r.status, r.text) == (LYRICS_OK, "inline words")
    assert resolve_lyrics("   ", good).text == "words here"
