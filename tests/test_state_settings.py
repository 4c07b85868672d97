"""Inventory keys for the journal, locks, claims and notify: validated up front, with defaults and units."""

from __future__ import annotations

import os
import textwrap

import pytest

from agentsync_fleet import inventory, settings
from agentsync_fleet.errors import InventoryError
from agentsync_fleet.settings import state_dir

HOSTS = """\
hosts:
  laptop: {local: true, repo: /tmp/x}
"""


def load(tmp_path, text: str):
    path = tmp_path / "fleet.yaml"
    path.write_text(textwrap.dedent(text) + HOSTS)
    return inventory.load(path)


def test_durations_accept_seconds_and_units():
    assert settings.parse_duration(90) == 90 and settings.parse_duration("90s") == 90
    assert settings.parse_duration("15m") == 900 and settings.parse_duration("4h") == 4 * 3600
    assert settings.parse_duration("1.5d") == 1.5 * 86400
    for bad in (0, -3, "soon", "4 hours", True, "", None):
        assert settings.parse_duration(bad) is None


def test_new_top_level_keys_load_with_their_defaults(tmp_path):
    inv = load(tmp_path, "")
    assert settings.lock_ttl(inv) == 2 * 3600 and settings.claim_ttl(inv) == 4 * 3600
    assert settings.notify(inv) is None
    inv = load(tmp_path, """\
        state_dir: state
        lock_ttl: 30m
        claim_ttl: 8h
        notify: {command: "post-to-chat --channel 'fleet ops'", timeout: 5}
        """)
    assert settings.lock_ttl(inv) == 1800 and settings.claim_ttl(inv) == 8 * 3600
    assert settings.notify(inv) == settings.Notify(("post-to-chat", "--channel", "fleet ops"), 5.0)
    assert state_dir(inv) == str(tmp_path / "state")  # relative to the inventory file


def test_state_dir_falls_back_to_the_environment_then_the_home_default(tmp_path, monkeypatch):
    inv = load(tmp_path, "")
    monkeypatch.setenv("AGENTSYNC_STATE_DIR", str(tmp_path / "env-state"))
    assert state_dir(inv) == str(tmp_path / "env-state")
    monkeypatch.delenv("AGENTSYNC_STATE_DIR")
    assert state_dir(inv) == os.path.expanduser("~/.local/state/agentsync")


def test_bad_values_for_the_new_keys_are_all_reported_with_line_and_key(tmp_path):
    with pytest.raises(InventoryError) as caught:
        load(tmp_path, """\
            lock_ttl: soon
            claim_ttl: -1
            notify: {command: "unbalanced 'quote", timout: 3}
            """)
    text = str(caught.value)
    assert "4 problems" in text
    assert "line 1, key 'lock_ttl': 'soon' is not a positive duration" in text
    assert "line 2, key 'claim_ttl'" in text and "not a positive duration" in text
    assert "key 'notify.command'" in text and "cannot be split into arguments" in text
    assert "key 'notify.timout': unknown key" in text and "did you mean 'timeout'?" in text


def test_notify_needs_a_command(tmp_path):
    with pytest.raises(InventoryError, match="key 'notify.command': missing"):
        load(tmp_path, "notify: {timeout: 3}\n")


def test_the_example_inventory_shows_the_new_keys(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / ".ssh").mkdir()
    (tmp_path / ".ssh" / "config").write_text("")
    inv = inventory.load(os.path.join(os.path.dirname(__file__), "..", "inventory", "example.yaml"))
    assert settings.lock_ttl(inv) == 2 * 3600 and settings.claim_ttl(inv) == 4 * 3600
    assert settings.notify(inv).argv == ("/usr/local/bin/post-to-chat", "--channel", "fleet")
    assert state_dir(inv) == str(tmp_path / ".local/state/agentsync")
