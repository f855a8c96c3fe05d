"""Where :class:`Settings` reads its values: keyword arguments, then ``SKYRELAY_*`` variables (any case), then
``.env`` in the working folder, then the defaults — what pydantic-settings did before core read them itself."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from pydantic import SecretStr, ValidationError

from core.settings import Settings, environment_values


@pytest.fixture(autouse=True)
def no_settings_in_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in list(os.environ):
        if name.lower().startswith("skyrelay_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


def test_variables_are_read_in_any_case(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SKYRELAY_PORT", "9000")
    monkeypatch.setenv("skyrelay_host", "0.0.0.0")
    monkeypatch.setenv("Skyrelay_Log_Bodies", "false")

    settings = Settings()

    assert (settings.port, settings.host, settings.log_bodies) == (9000, "0.0.0.0", False)


def test_lists_are_comma_separated_or_json(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SKYRELAY_CORS_ORIGINS", "https://a.example, https://b.example,,")
    monkeypatch.setenv("SKYRELAY_SSRF_ALLOW", '["10.0.0.0/8", "localhost"]')
    monkeypatch.setenv("SKYRELAY_LOG_REDACT_BODY_FIELDS", "")

    settings = Settings()

    assert settings.cors_origins == ["https://a.example", "https://b.example"]
    assert settings.ssrf_allow == ["10.0.0.0/8", "localhost"]
    assert settings.log_redact_body_fields == []


def test_keyword_arguments_win_over_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SKYRELAY_PORT", "9000")

    assert Settings(port=9100).port == 9100


def test_the_environment_wins_over_the_env_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("SKYRELAY_PORT=9000\nexport SKYRELAY_HOST='10.1.2.3'\nSKYRELAY_MAX_HOPS\n"
                                   "OTHER_TOOL_PORT=1\n")
    monkeypatch.setenv("SKYRELAY_PORT", "9100")

    settings = Settings()

    assert (settings.port, settings.host, settings.max_hops) == (9100, "10.1.2.3", 1)


def test_variables_that_name_no_setting_are_ignored(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SKYRELAY_NOT_A_SETTING", "x")
    monkeypatch.setenv("SKYRELAY_ANALYTICS_TOKEN", "tok")

    assert environment_values({"SKYRELAY_NOT_A_SETTING": "x", "PORT": "1", "SKYRELAY_PORT": "2"}) == {"port": "2"}
    assert Settings().analytics_token == SecretStr("tok")


def test_an_invalid_variable_fails_validation_naming_the_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SKYRELAY_BREAKER_ERROR_RATE", "2")
    monkeypatch.setenv("SKYRELAY_PROVIDER_AFFINITY", "bedrock")

    with pytest.raises(ValidationError) as caught:
        Settings()

    assert {error["loc"] for error in caught.value.errors()} == {("breaker_error_rate",), ("provider_affinity",)}
