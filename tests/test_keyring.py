"""The master key: credentials encrypted at rest and Warden keys hashed under it, and its rotation (a new key put
first keeps everything readable; ``warden keys reencrypt`` moves the credentials to it, so the old one can go)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from plumbing.config.file_map import FileMap
from plumbing.keyring import CredentialUnreadable, Keyring, new_master_key, parse_master_keys
from schemas.profiles import Profile, ProfileSpec, new_profile
from services.keyring.tokens import new_secret, well_formed


def test_a_credential_is_stored_encrypted_and_read_back_only_with_the_master_key():
    old = Keyring.from_setting(new_master_key())
    token = old.encrypt("sk-secret-value")
    assert "sk-secret-value" not in token and old.decrypt(token) == "sk-secret-value"
    with pytest.raises(CredentialUnreadable):
        Keyring.from_setting(new_master_key()).decrypt(token)


def test_a_new_master_key_put_first_keeps_old_credentials_and_keys_working():
    old_value, new_value = new_master_key(), new_master_key()
    old = Keyring.from_setting(old_value)
    secret = new_secret()
    issued = old.digest(secret)
    token = old.encrypt("sk-secret-value")
    both = Keyring.from_setting(f"{new_value},{old_value}")
    assert both.decrypt(token) == "sk-secret-value"
    assert issued in both.digests(secret) and both.digest(secret) != issued  # new keys hash under the new one
    moved = both.reencrypt(token)
    assert Keyring.from_setting(new_value).decrypt(moved) == "sk-secret-value"


def test_master_key_values_are_checked_without_echoing_them():
    with pytest.raises(ValueError) as caught:
        parse_master_keys("not-a-fernet-key-at-all")
    assert "not-a-fernet-key" not in str(caught.value)
    assert well_formed(new_secret()) and not well_formed("wk_short")


def test_reencrypt_moves_every_stored_credential_to_the_newest_master_key(tmp_path):
    old_value, new_value = new_master_key(), new_master_key()
    old = Keyring.from_setting(old_value)
    profiles = FileMap(tmp_path / "profiles.json", Profile)
    profile = new_profile(ProfileSpec(name="p"), credentials={"openai": old.encrypt("sk-secret-value")})
    profiles.apply(profile.id, profile)
    profiles.close()
    env = {**os.environ, "WARDEN_DATA_DIR": str(tmp_path), "WARDEN_MASTER_KEY": f"{new_value},{old_value}"}
    env.pop("WARDEN_KAFKA_BOOTSTRAP_SERVERS", None)
    done = subprocess.run(
        [sys.executable, "-m", "warden.cli", "keys", "reencrypt"], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert "1 profile" in done.stdout
    stored = FileMap(tmp_path / "profiles.json", Profile).get(profile.id)
    assert Keyring.from_setting(new_value).decrypt(stored.credentials["openai"]) == "sk-secret-value"
