"""The browser tests' page: a fresh Chromium context (1400 x 1000, 30 s timeouts) per test."""

from __future__ import annotations

import pytest


@pytest.fixture
def page(chromium):
    context = chromium.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(30_000)
    yield page
    context.close()
