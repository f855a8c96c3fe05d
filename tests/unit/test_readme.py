"""The README's configuration reference lists every setting."""

from __future__ import annotations

from pathlib import Path

from core.settings import Settings

README = (Path(__file__).resolve().parents[2] / "README.md").read_text()


def test_every_setting_is_documented() -> None:
    missing = [name for name in Settings.model_fields if f"`SKYRELAY_{name.upper()}`" not in README]
    assert not missing, f"README lacks: {missing}"


def test_readme_shows_the_two_commands_first() -> None:
    head = README[:600]
    assert "make run" in head and "make test" in head
