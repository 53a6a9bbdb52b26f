"""The operator surface: the REST + SSE API under ``/api`` and the page at ``/`` (`web.api`)."""
