"""Exports of a trained avatar: standard 3DGS .ply files and MP4/GIF clips."""
