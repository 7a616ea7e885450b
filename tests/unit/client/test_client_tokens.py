"""Token sources: a file read again when it changes, a variable, a callable, a fixed string."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from grantline.client import (
    CallableTokenSource,
    EnvTokenSource,
    FileTokenSource,
    StaticTokenSource,
    TokenSource,
    TokenUnavailableError,
)
from grantline.client.tokens import token_source


def replace(path: Path, text: str) -> None:
    """Swap a new file in, as the kubelet swaps its ..data symlink."""
    staged = path.with_name(path.name + ".new")
    staged.write_text(text)
    os.replace(staged, path)


def test_a_token_file_is_read_trimmed_and_read_again_when_replaced(tmp_path: Path) -> None:
    path = tmp_path / "token"
    replace(path, "first.token.value\n")
    source = FileTokenSource(path)
    assert source.token() == "first.token.value"
    replace(path, "second.token.value\n")
    assert source.token() == "second.token.value"


def test_a_token_file_edited_in_place_is_read_again(tmp_path: Path) -> None:
    path = tmp_path / "token"
    path.write_text("short.token.one")
    source = FileTokenSource(path)
    assert source.token() == "short.token.one"
    path.write_text("a.longer.token.two")
    assert source.token() == "a.longer.token.two"


def test_an_unchanged_token_file_is_not_read_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "token"
    path.write_text("the.token.value")
    source = FileTokenSource(path)
    source.token()
    opened: list[Path] = []
    original = Path.open

    def counting_open(self: Path, *args: object, **kwargs: object) -> object:
        opened.append(self)
        return original(self, *args, **kwargs)  # type: ignore[call-overload]

    monkeypatch.setattr(Path, "open", counting_open)
    assert source.token() == "the.token.value"
    assert opened == []


def test_a_symlinked_token_swapped_like_kubernetes_does_is_followed(tmp_path: Path) -> None:
    (tmp_path / "v1").mkdir()
    (tmp_path / "v1" / "token").write_text("token.version.one")
    (tmp_path / "..data").symlink_to("v1")
    (tmp_path / "token").symlink_to("..data/token")
    source = FileTokenSource(tmp_path / "token")
    assert source.token() == "token.version.one"
    (tmp_path / "v2").mkdir()
    (tmp_path / "v2" / "token").write_text("token.version.two")
    (tmp_path / "..data_tmp").symlink_to("v2")
    os.replace(tmp_path / "..data_tmp", tmp_path / "..data")
    assert source.token() == "token.version.two"


@pytest.mark.parametrize(
    ("content", "match"),
    [
        ("", "holds no token"),
        ("  \n", "holds no token"),
        ("two\nlines", "whitespace or control"),
        ("has space", "whitespace or control"),
        ("x" * 20000, "over 16384 bytes"),
    ],
)
def test_a_token_file_without_one_usable_token_is_refused(
    tmp_path: Path, content: str, match: str
) -> None:
    path = tmp_path / "token"
    path.write_text(content)
    with pytest.raises(TokenUnavailableError, match=match):
        FileTokenSource(path).token()


def test_a_missing_token_file_is_refused_with_its_path(tmp_path: Path) -> None:
    with pytest.raises(TokenUnavailableError, match="no-such-file"):
        FileTokenSource(tmp_path / "no-such-file").token()


def test_an_environment_variable_is_read_at_every_call(monkeypatch: pytest.MonkeyPatch) -> None:
    source = EnvTokenSource("MY_TOKEN")
    monkeypatch.setenv("MY_TOKEN", "env.token.one")
    assert source.token() == "env.token.one"
    monkeypatch.setenv("MY_TOKEN", "env.token.two")
    assert source.token() == "env.token.two"
    monkeypatch.delenv("MY_TOKEN")
    with pytest.raises(TokenUnavailableError, match="MY_TOKEN"):
        source.token()


def test_a_callable_is_called_at_every_call_and_must_give_a_string() -> None:
    values = iter(["call.token.one", "call.token.two"])
    source = CallableTokenSource(lambda: next(values))
    assert [source.token(), source.token()] == ["call.token.one", "call.token.two"]
    with pytest.raises(TokenUnavailableError, match="not a string"):
        CallableTokenSource(lambda: None).token()  # type: ignore[arg-type, return-value]


def test_sources_are_made_from_strings_callables_and_sources() -> None:
    assert isinstance(token_source("fixed.token.value"), StaticTokenSource)
    assert isinstance(token_source(lambda: "x.y.z"), CallableTokenSource)
    env = EnvTokenSource()
    assert token_source(env) is env
    assert isinstance(env, TokenSource)
    with pytest.raises(TypeError):
        token_source(42)  # type: ignore[arg-type]


def test_a_token_never_shows_in_a_repr() -> None:
    assert "secret" not in repr(StaticTokenSource("secret.token.value"))
