"""A real browser for the catalog's tests: Debian's Chromium and chromedriver (installed by
.ci/services with apt-get), driven headless by Selenium.

``open_chromium`` skips the test, loudly, only when the browser is not installed and cannot
be (no apt-get, not root, no package source): everywhere `make test` runs, it is.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
INSTALL = ["apt-get", "install", "-y", "-qq", "chromium", "chromium-driver"]


def _install() -> str | None:
    """Install Chromium and its driver with apt-get; why not, if it cannot."""
    if shutil.which("apt-get") is None:
        return "apt-get is not available (not a Debian system)"
    if os.geteuid() != 0:
        return "not root: run `sudo apt-get install chromium chromium-driver`"
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    result = subprocess.run(INSTALL, capture_output=True, text=True, env=env)
    if result.returncode != 0:
        subprocess.run(["apt-get", "update", "-qq"], capture_output=True, env=env)
        result = subprocess.run(INSTALL, capture_output=True, text=True, env=env)
    if result.returncode != 0:
        return f"`{' '.join(INSTALL)}` failed: {result.stderr.strip()[-500:]}"
    return None


def open_chromium(width: int = 1280, height: int = 900):
    """A headless Chromium session (close it with ``quit()``), or the test is skipped with the
    reason the browser cannot be installed."""
    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        problem = _install()
        if problem is not None or not CHROMIUM.exists():
            pytest.skip(f"NO BROWSER: Chromium cannot be installed here ({problem}); the "
                        "catalog's browser test did not run")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                     "--disable-gpu", f"--window-size={width},{height}"):
        options.add_argument(argument)
    return webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
