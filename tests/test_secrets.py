"""Secret values: which are secret, sealed at rest in the store, kept out of SkyPilot's envs; the Ray token file."""

from __future__ import annotations

import os
import secrets
import stat

import pytest

from placement.auth import AuthError, _refresh_ray_config, ensure_token
from placement.secrets import Sealer, SecretError, is_secret_name, mark_secret, sky_env, split_env, unknown_names
from placement.store import JobChange, NewJob, Store, StoreError


def test_secret_names_by_default_and_by_declaration():
    assert all(map(is_secret_name, ["HF_TOKEN", "aws_secret_access_key", "DB_PASSWORD", "ApiKey"]))
    assert not any(map(is_secret_name, ["EPOCHS", "MODEL", "PATH"]))
    plain, secret = split_env({"envs": {"HF_TOKEN": "t", "EPOCHS": "3", "CRED": "c"}, "secrets": {"CRED": "s"}})
    assert plain == {"EPOCHS": "3"} and secret == {"HF_TOKEN": "t", "CRED": "s"}


def test_marking_moves_an_env_to_secrets_and_unknown_names_are_found():
    data = {"envs": {"MARKED": "v", "EPOCHS": "3"}, "run": "x"}
    marked = mark_secret(data, ["MARKED"])
    assert marked["envs"] == {"EPOCHS": "3"} and marked["secrets"] == {"MARKED": "v"}
    assert split_env(marked) == ({"EPOCHS": "3"}, {"MARKED": "v"})
    assert unknown_names([data], ["MARKED", "NOPE"]) == ["NOPE"]


def test_skypilot_gets_secret_values_under_secrets_only():
    task = sky_env({"envs": {"HF_TOKEN": "t", "EPOCHS": "3"}, "secrets": {"CRED": "c"}, "run": "x"})
    assert task == {"envs": {"EPOCHS": "3"}, "secrets": {"HF_TOKEN": "t", "CRED": "c"}, "run": "x"}


def test_the_store_keeps_secret_values_sealed_on_disk(tmp_path):
    token, cred, marked = (secrets.token_hex(16) for _ in range(3))
    spec = {"name": "s", "run": "true", "envs": {"HF_TOKEN": token, "EPOCHS": "3"},
            "secrets": {"CRED": cred, "MARKED": marked}}
    store = Store(tmp_path / "p.db")
    [job_id] = store.add_jobs([NewJob(id="s", name="s", team="t", priority="normal", spec=spec, source="s.yaml#1")],
                              now=1.0, batch="b")
    store.update_job(job_id, 2.0, JobChange(spec={**spec, "resources": {"use_spot": True}}), event="respec")
    assert store.job(job_id).spec["envs"]["HF_TOKEN"] == token and store.job(job_id).spec["secrets"]["CRED"] == cred
    on_disk = b"".join(p.read_bytes() for p in tmp_path.iterdir() if p.name.startswith("p.db") and p.is_file())
    assert b"EPOCHS" in on_disk  # the spec is there: the check below looks at the right bytes
    for value in (token, cred, marked):
        assert value.encode() not in on_disk
    key = tmp_path / "p.db.key"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    store.close()
    assert Store(tmp_path / "p.db").job(job_id).spec["secrets"]["MARKED"] == marked  # the key is reused


def test_a_key_file_others_can_read_is_refused(tmp_path):
    key = tmp_path / "p.db.key"
    Sealer(key)
    os.chmod(key, 0o644)
    with pytest.raises(SecretError, match="can be read by others"):
        Sealer(key)


def test_a_corrupt_or_unwritable_store_is_named_in_one_line(tmp_path):
    corrupt = tmp_path / "corrupt.db"
    corrupt.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StoreError, match=f"^the store {corrupt} is not a SQLite database"):
        Store(corrupt)
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    with pytest.raises(StoreError, match=f"^cannot write the store {blocker}/p.db: "):
        Store(blocker / "p.db")


def test_the_ray_token_is_generated_private_and_a_readable_one_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("RAY_AUTH_TOKEN_PATH", str(tmp_path / "ray" / "auth_token"))
    monkeypatch.delenv("RAY_AUTH_TOKEN", raising=False)
    monkeypatch.setenv("RAY_AUTH_MODE", "token")
    try:
        path = ensure_token()
        assert path == tmp_path / "ray" / "auth_token" and stat.S_IMODE(path.stat().st_mode) == 0o600
        assert len(path.read_text()) == 64 and ensure_token() == path and len(path.read_text()) == 64
        os.chmod(path, 0o640)
        with pytest.raises(AuthError, match="can be read by others"):
            ensure_token()
    finally:  # Ray caches the token it loaded: this process (and the shared cluster's tests) must use theirs again
        monkeypatch.undo()
        _refresh_ray_config()
