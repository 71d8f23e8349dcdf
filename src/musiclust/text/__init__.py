"""Lyrics embeddings: encoders (sentence-transformers, char TF-IDF), chunking, the song table.

Heavy libraries (torch, sentence-transformers) are imported only when an encoder is built.
"""
