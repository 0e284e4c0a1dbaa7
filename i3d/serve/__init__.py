"""``i3d serve``: the HTTP API, its limits and metrics, and the web page (FastAPI on uvicorn, the ``serve`` extra)."""
