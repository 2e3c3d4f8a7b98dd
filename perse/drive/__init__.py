"""Drive an avatar with a face video (docs/drive.md): track each frame's expression and head pose,
retarget them to the video's own neutral frame, render the performance at any look.

    for event in drive("runs/me", "clip.mp4", "out.mp4", look={"hair": 2}, keep_audio=True):
        print(f"{event.fraction:.0%} {event.message}")
"""
from perse.drive.run import drive, track_video

__all__ = ["drive", "track_video"]
