"""musiclust.data: acquire a song collection (demo corpus from musiclust.synth, manifest of URLs/files, or a folder).

Entry point: :func:`musiclust.data.acquire.acquire`. Sub-modules: ``manifest``
and ``folder`` turn the input into song requests, ``ytdl`` fetches URLs with
yt-dlp, ``verify`` decodes every file fully, ``lyrics`` reads and cleans lyrics,
``report`` accounts for every row.
"""
