"""The data contracts between stages: one module per stage output.

``raw`` (data/raw), ``segments`` (data/segments), ``features`` (data/features), ``lyrics``
(data/lyrics.parquet), ``models`` (models/<key>/), ``clusters`` (data/clusters/<rep>/) and
``metrics`` (metrics/); ``shards`` is the ``.npy`` shard format that segments and features share.
Each module names its files, columns and constants and holds the one reader and writer of that
output, so a stage reads its inputs only through here (see docs/pipeline.md). Adding a clustering
algorithm, a level or a metric is one edit in the module that owns it.
"""
