"""musiclust.synth: the built-in synthetic demo corpus (sung Bangla/English songs in four genres).

Entry point: :func:`musiclust.synth.corpus.generate_demo_corpus`, used by the download
stage's ``demo`` source. Sub-modules: ``lyrics`` (word lists, Bangla pronunciation, lyric
lines and their rhythm), ``arrange`` (harmony, genre recipes, melodies), ``instruments``
(DSP helpers, drums, pitched instruments), ``voice`` (the formant singer) and ``corpus``
(one song's composition and mix, the corpus plan, writing the files).
"""
