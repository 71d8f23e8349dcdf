"""Comparing DVC experiments (``musiclust compare``) and rendering DVC plots offline.

``frames`` holds pure functions on frames (table and figure data), ``figures`` draws them,
``page`` renders the self-contained HTML page, ``source`` is the thin layer that talks to
``dvc.api``; ``plots_template`` builds the offline ``dvc plots`` template. No pipeline stage
depends on this package.
"""
