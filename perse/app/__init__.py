"""Helpers behind app.py: session folders, progress display, GPU-bound avatar calls, event handlers."""
