"""Debian's Chromium, which the browser tests drive through Playwright, and the marks they share."""
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
BROWSER_TEST = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's Chromium at /usr/bin/chromium "
                                                      "(apt-get install -y chromium; .ci/run does this)"),
]
