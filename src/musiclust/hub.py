"""May this process use the Hugging Face hub? Environment switches and a bounded reachability probe.

Shared by the two places that load pretrained models: the lyrics encoders
(:mod:`musiclust.text.models`) and the pretrained audio feature set
(:mod:`musiclust.features.pretrained`). "May" is decided by environment variables
(``MUSICLUST_OFFLINE=1`` or ``HF_HUB_OFFLINE=1``, both exported by the Makefile); "can" by
a TCP connect to the hub bounded to a couple of seconds, so a machine without internet
fails at once instead of waiting on library retries.
"""

from __future__ import annotations

import os
import socket
import threading
from urllib.parse import urlparse

_TRUE = {"1", "true", "yes", "on"}


def env_true(var: str) -> bool:
    """Whether environment variable ``var`` is set to a true value (1, true, yes, on)."""
    return os.environ.get(var, "").strip().lower() in _TRUE


def offline_forced() -> bool:
    """True when the environment forbids the network (``MUSICLUST_OFFLINE`` or ``HF_HUB_OFFLINE``)."""
    return env_true("MUSICLUST_OFFLINE") or env_true("HF_HUB_OFFLINE")


def hub_reachable(endpoint: str | None = None, timeout_s: float = 2.0) -> bool:
    """Whether a TCP connection to the hub opens within ``timeout_s`` seconds.

    Name resolution ignores socket timeouts, so the whole check runs in a daemon
    thread that is abandoned after ``timeout_s`` (a hung DNS lookup cannot stall us).
    """
    url = urlparse(endpoint or os.environ.get("HF_ENDPOINT", "https://huggingface.co"))
    host = url.hostname or "huggingface.co"
    port = url.port or (80 if url.scheme == "http" else 443)
    result = {"ok": False}

    def probe() -> None:
        try:
            with socket.create_connection((host, port), timeout=timeout_s):
                result["ok"] = True
        except OSError:
            pass

    t = threading.Thread(target=probe, daemon=True)
    t.start()
    t.join(timeout_s + 0.5)
    return result["ok"]
