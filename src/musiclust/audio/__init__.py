"""Audio decoding, segmentation into clips and the song-level split."""
