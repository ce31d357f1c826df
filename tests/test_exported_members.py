"""The package's public names: sorted, complete, importable."""

from __future__ import annotations

import aioredismq


def test_all_is_sorted_and_importable() -> None:
    assert aioredismq.__all__ == sorted(aioredismq.__all__)
    for name in aioredismq.__all__:
        assert getattr(aioredismq, name) is not None


def test_all_lists_every_public_name() -> None:
    public = {
        name
        for name, value in vars(aioredismq).items()
        if not name.startswith("_") and not isinstance(value, type(aioredismq))
    }
    assert public == set(aioredismq.__all__)
