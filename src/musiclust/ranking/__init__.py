"""musiclust.ranking: what only the ``evaluate`` stage runs.

Means over seeds, bootstrap intervals and paired differences, the ranking and which labels can be
ranked at all, read from the scores the ``cluster`` stage wrote for every representation
(:mod:`musiclust.evaluation` computes those). Kept apart from :mod:`musiclust.evaluation` so that
editing the ranking re-runs only ``evaluate``, never the cluster stage.
"""
