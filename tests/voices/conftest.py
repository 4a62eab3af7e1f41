"""Voice fixtures: no network while an engine loads or renders."""

from __future__ import annotations

import socket

import pytest


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any socket the code under test opens or connects fails the test (voices must never download)."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"a voice engine tried to open a network connection: {args[1:] or args}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
