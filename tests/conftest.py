"""Shared test helpers."""

from pathlib import Path

import pytest

_SHARED_DATA_CANDIDATES = (
    Path(__file__).resolve().parents[2] / "shared" / "data",  # CI: ../shared next to the checkout
    Path("/work/shared/data"),  # the development machines
)


@pytest.fixture
def shared_data_path():
    """``shared_data_path(name)`` -> the path of reference file ``name``; skips the test when it is absent."""

    def locate(name: str) -> Path:
        for folder in _SHARED_DATA_CANDIDATES:
            if (folder / name).is_file():
                return folder / name
        pytest.skip(f"reference data {name} not found (looked in {', '.join(str(f) for f in _SHARED_DATA_CANDIDATES)})")

    return locate
