"""Loopback policy and DSN masking."""

import pytest

from bookbench.spec.targets import RemoteTargetRefused, is_loopback, mask_dsn, require_loopback


@pytest.mark.parametrize("url", ["http://127.0.0.1:8000", "http://localhost", "http://[::1]:80",
                                 "postgresql://u:p@127.0.0.5/db", "host=127.0.0.1 port=5432"])
def test_loopback_targets_are_accepted(url: str) -> None:
    assert is_loopback(url)
    require_loopback(url, "target", allow_remote=False)


@pytest.mark.parametrize("url", ["http://10.0.0.2:8000", "https://api.example.com", "postgresql://u:p@db.supabase.co/x"])
def test_remote_targets_need_the_flag(url: str) -> None:
    assert not is_loopback(url)
    with pytest.raises(RemoteTargetRefused, match="--allow-remote"):
        require_loopback(url, "target", allow_remote=False)
    require_loopback(url, "target", allow_remote=True)


def test_refusal_message_masks_the_password() -> None:
    with pytest.raises(RemoteTargetRefused) as info:
        require_loopback("postgresql://admin:hunter2@db.example.com:5432/prod", "--dsn", allow_remote=False)
    assert "hunter2" not in str(info.value)


@pytest.mark.parametrize(("dsn", "expected"), [
    ("postgresql://admin:s3cret@db.example.com:6543/app", "postgresql://admin:***@db.example.com:6543/app"),
    ("postgresql://postgres@127.0.0.1:5432/bookbench", "postgresql://postgres@127.0.0.1:5432/bookbench"),
    ("host=x user=u password=s3cret dbname=d", "host=x user=u password=*** dbname=d"),
    ("host=x password = 'with space' dbname=d", "host=x password = *** dbname=d"),
    ("postgresql://u@h:5432/db?sslmode=require&password=s3cret", "postgresql://u@h:5432/db?sslmode=require&password=***"),
    ("postgresql://u:p%40ss@[::1]:5432/db", "postgresql://u:***@[::1]:5432/db"),
])
def test_mask_dsn(dsn: str, expected: str) -> None:
    assert mask_dsn(dsn) == expected
