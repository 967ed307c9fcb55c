"""Loopback policy (on the host the driver really uses), DSN conversion and masking."""

from pathlib import Path

import pytest

from bookbench.config.dsn import mask_dsn, resolve_hosts, to_url
from bookbench.config.targets import RemoteTargetRefused, is_loopback, require_loopback
from bookbench.errors import UsageError


@pytest.fixture(autouse=True)
def _no_pg_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("PGHOST", "PGHOSTADDR", "PGPORT", "PGSERVICE", "PGSERVICEFILE"):
        monkeypatch.delenv(name, raising=False)


@pytest.mark.parametrize("url", ["http://127.0.0.1:8000", "http://localhost", "http://[::1]:80",
                                 "postgresql://u:p@127.0.0.5/db", "host=127.0.0.1 port=5432",
                                 "postgresql://u:p@/db", "postgresql://u@/db?host=/tmp", "host=/var/run/postgresql",
                                 "postgresql://u:p@/db?host=127.0.0.1"])
def test_loopback_targets_are_accepted(url: str) -> None:
    assert is_loopback(url)
    require_loopback(url, "target", allow_remote=False)


@pytest.mark.parametrize("url", ["http://10.0.0.2:8000", "https://api.example.com", "postgresql://u:p@db.supabase.co/x",
                                 # the host hidden where only the driver looks
                                 "postgresql://u:p@/db?host=192.0.2.1", "postgresql://u:p@127.0.0.1,192.0.2.1/db",
                                 "host=192.0.2.1 dbname=x", "hostaddr=192.0.2.1 host=localhost dbname=x"])
@pytest.mark.netns  # names a non-loopback address: runs inside a loopback-only namespace
def test_remote_targets_need_the_flag(url: str) -> None:
    assert not is_loopback(url)
    with pytest.raises(RemoteTargetRefused, match="--allow-remote"):
        require_loopback(url, "target", allow_remote=False)
    require_loopback(url, "target", allow_remote=True)


@pytest.mark.netns  # names a non-loopback address: runs inside a loopback-only namespace
def test_a_remote_pghost_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PGHOST", "192.0.2.1")
    with pytest.raises(RemoteTargetRefused, match=r"192\.0\.2\.1"):
        require_loopback("postgresql://u:p@/db", "--dsn", allow_remote=False)


@pytest.mark.netns  # names a non-loopback address: runs inside a loopback-only namespace
def test_a_remote_service_file_is_refused(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    services = tmp_path / "pg_service.conf"
    services.write_text("[prod]\nhost=192.0.2.7\ndbname=app\n")
    monkeypatch.setenv("PGSERVICEFILE", str(services))
    assert resolve_hosts("postgresql:///app?service=prod") == ["192.0.2.7"]
    with pytest.raises(RemoteTargetRefused):
        require_loopback("postgresql:///app?service=prod", "--dsn", allow_remote=False)


@pytest.mark.netns  # names a non-loopback address: runs inside a loopback-only namespace
def test_refusal_message_masks_the_password() -> None:
    for dsn in ("postgresql://admin:hunter2@db.example.com:5432/prod", "postgresql://admin:hun#ter2@db.example.com/p",
                "host=db.example.com password=hunter2 sslpassword=hunter2"):
        with pytest.raises(RemoteTargetRefused) as info:
            require_loopback(dsn, "--dsn", allow_remote=False)
        assert "hunter2" not in str(info.value) and "ter2" not in str(info.value), str(info.value)


@pytest.mark.parametrize(("dsn", "expected"), [
    ("postgresql://admin:s3cret@db.example.com:6543/app", "postgresql://admin:***@db.example.com:6543/app"),
    ("postgresql://postgres@127.0.0.1:5432/bookbench", "postgresql://postgres@127.0.0.1:5432/bookbench"),
    ("host=x user=u password=s3cret dbname=d", "host=x user=u password=*** dbname=d"),
    ("host=x password = 'with space' dbname=d", "host=x password = *** dbname=d"),
    ("postgresql://u@h:5432/db?sslmode=require&password=s3cret", "postgresql://u@h:5432/db?sslmode=require&password=***"),
    ("postgresql://u:p%40ss@[::1]:5432/db", "postgresql://u:***@[::1]:5432/db"),
    # unencoded characters that cut a URL in two for urlsplit
    ("postgresql://u:pa#ss@127.0.0.1/db", "postgresql://u:***@127.0.0.1/db"),
    ("postgresql://u:p/a?s@127.0.0.1/db", "postgresql://u:***@127.0.0.1/db"),
    ("postgresql://u:p@ss@127.0.0.1/db", "postgresql://u:***@127.0.0.1/db"),
    # the client key's passphrase
    ("postgresql://u@h/db?sslmode=verify-full&sslpassword=s3cret&x=1",
     "postgresql://u@h/db?sslmode=verify-full&sslpassword=***&x=1"),
    ("host=h sslpassword=s3cret dbname=d", "host=h sslpassword=*** dbname=d"),
    ("host=h PASSWORD='it\\'s' dbname=d", "host=h PASSWORD=*** dbname=d"),
])
def test_mask_dsn(dsn: str, expected: str) -> None:
    assert mask_dsn(dsn) == expected


@pytest.mark.parametrize(("dsn", "url"), [
    ("host=127.0.0.1 port=5433 user=bench password='a b#c' dbname=shop",
     "postgresql://bench:a%20b%23c@127.0.0.1:5433/shop"),
    ("host=/tmp dbname=x", "postgresql:///x?host=%2Ftmp"),
    ("dbname=x sslmode=require", "postgresql:///x?sslmode=require"),
    ("postgresql://u:pa#ss@127.0.0.1/db", "postgresql://u:pa%23ss@127.0.0.1/db"),
    ("postgresql://u:p@127.0.0.1/db", "postgresql://u:p@127.0.0.1/db"),
])
def test_key_value_dsns_become_urls(dsn: str, url: str) -> None:
    assert to_url(dsn) == url


@pytest.mark.parametrize("bad", ["mysql://u@h/db", "host='unterminated", "just words"])
def test_unreadable_dsns_are_usage_errors(bad: str) -> None:
    with pytest.raises(UsageError):
        to_url(bad)
