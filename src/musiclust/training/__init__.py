"""Training: one loop for the whole model family, data assembly, encoding, and the per-model run.

Entry point for the ``train@<key>`` stage: :func:`musiclust.training.run.train_model`.
New clips are encoded with :func:`musiclust.training.encode.encode_clips`.
"""
