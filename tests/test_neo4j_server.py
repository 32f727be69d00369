"""The local Neo4j server: real 5.26 Community from Maven jars, Bolt + HTTP + Browser on 127.0.0.1.

The server tests share one server (first start ~20 s, plus the one-off Maven resolve, ~1 min
cold: set GRAPHONC_MAVEN_CACHE to a cached folder in CI).
"""
from __future__ import annotations

import json
import os
import secrets
import socket
import stat
import urllib.request
from pathlib import Path

import neo4j
import pytest

from graphonc.store import neo4j_server as ns


def _listen_hosts(port: int) -> set[str]:
    """IPv4 addresses (v4-mapped included) with a socket listening on ``port``, from /proc."""
    hosts: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            addr, hexport = local.split(":")
            if state != "0A" or int(hexport, 16) != port:  # 0A: LISTEN
                continue
            v4 = addr[-8:]  # IPv4, or the tail of ::ffff:a.b.c.d; anything else shows as-is
            if len(addr) == 32 and addr[:24] != "0000000000000000FFFF0000":
                hosts.add(addr)
            else:
                hosts.add(socket.inet_ntoa(bytes.fromhex(v4)[::-1]))
    return hosts


@pytest.mark.neo4j
def test_bolt_answers_with_the_password(neo4j_local):
    cfg, st = neo4j_local
    assert st.bolt_uri == f"bolt://127.0.0.1:{cfg.bolt_port}"
    with neo4j.GraphDatabase.driver(st.bolt_uri, auth=("neo4j", cfg.password)) as driver:
        records, _, _ = driver.execute_query("RETURN 1 AS one")
        assert records[0]["one"] == 1
        records, _, _ = driver.execute_query("CALL dbms.components() YIELD versions, edition "
                                             "RETURN versions[0] AS v, edition")
        assert records[0]["v"] == ns.NEO4J_VERSION and records[0]["edition"] == "community"


@pytest.mark.neo4j
def test_wrong_password_is_refused(neo4j_local):
    _, st = neo4j_local
    with (pytest.raises(neo4j.exceptions.AuthError),
          neo4j.GraphDatabase.driver(st.bolt_uri, auth=("neo4j", "not-the-password")) as driver):
        driver.verify_connectivity()


@pytest.mark.neo4j
def test_http_discovery_and_browser(neo4j_local):
    cfg, st = neo4j_local
    with urllib.request.urlopen(st.http_url + "/", timeout=10) as resp:
        discovery = json.loads(resp.read())
    assert discovery["neo4j_edition"] == "community"
    assert discovery["neo4j_version"] == ns.NEO4J_VERSION
    # the Browser connects to what the server advertises: it must be our port, not 7687
    assert discovery["bolt_direct"] == f"bolt://127.0.0.1:{cfg.bolt_port}"
    with urllib.request.urlopen(st.browser_url, timeout=10) as resp:
        assert resp.status == 200
        assert "text/html" in resp.headers["Content-Type"]
        assert "<title>Neo4j Browser</title>" in resp.read().decode()


@pytest.mark.neo4j
@pytest.mark.skipif(not Path("/proc/net/tcp").exists(), reason="reads Linux /proc/net/tcp")
def test_listens_on_loopback_only(neo4j_local):
    cfg, _ = neo4j_local
    for port in (cfg.bolt_port, cfg.http_port):
        assert _listen_hosts(port) == {"127.0.0.1"}, port


@pytest.mark.neo4j
def test_start_twice_is_harmless(neo4j_local):
    cfg, st = neo4j_local
    again = ns.start(cfg)
    assert again.pid == st.pid
    assert ns.status(cfg) == again


@pytest.mark.neo4j
def test_busy_port_is_a_clear_error(neo4j_local, tmp_path):
    cfg, _ = neo4j_local
    other = ns.Neo4jServerConfig(data_dir=tmp_path / "other", bolt_port=cfg.bolt_port,
                                 http_port=ns.free_port(), password=cfg.password)
    with pytest.raises(ns.Neo4jServerError, match="already in use"):
        ns.start(other)


@pytest.mark.neo4j
def test_stop_is_clean_and_restart_keeps_the_password(neo4j_local):
    """Runs last among the server tests: stops the shared server and starts it again."""
    cfg, st = neo4j_local
    assert ns.stop(cfg) is True
    assert ns.status(cfg) is None
    assert not cfg.pid_file.exists()
    assert not Path(f"/proc/{st.pid}").exists() or "Z" in Path(f"/proc/{st.pid}/stat").read_text().split()[2]
    with socket.socket() as s:  # the port is free again
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", cfg.bolt_port))
    assert ns.stop(cfg) is False  # stopping a stopped server is fine

    restarted = ns.start(cfg, timeout=180)  # the initialised database keeps its password
    with neo4j.GraphDatabase.driver(restarted.bolt_uri, auth=("neo4j", cfg.password)) as driver:
        driver.verify_connectivity()


def test_generated_password_is_stored_privately_once(tmp_path, monkeypatch):
    for var in ("NEO4J_PASSWORD", "GRAPHONC_NEO4J_PASSWORD_FILE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    cfg = ns.Neo4jServerConfig(data_dir=tmp_path / "d")
    first = ns.resolve_password(cfg)
    assert first.generated and len(first.password) >= ns.MIN_PASSWORD_LENGTH
    assert first.password not in repr(first) and first.password not in repr(cfg)
    assert stat.S_IMODE(os.stat(cfg.password_file).st_mode) == 0o600
    second = ns.resolve_password(cfg)
    assert not second.generated and second.password == first.password


def test_password_sources_in_order(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    env_file = tmp_path / "config" / "graphonc" / "neo4j.env"
    env_file.parent.mkdir(parents=True)
    from_file, from_env_file, from_env = (secrets.token_urlsafe(12) for _ in range(3))
    env_file.write_text(f"# local secrets\nexport NEO4J_PASSWORD='{from_env_file}'\n")
    pw_file = tmp_path / "pw"
    pw_file.write_text(from_file + "\n")
    cfg = ns.Neo4jServerConfig(data_dir=tmp_path / "d")
    assert ns.resolve_password(cfg, env={}).password == from_env_file
    assert ns.resolve_password(cfg, env={"GRAPHONC_NEO4J_PASSWORD_FILE": str(pw_file)}).password == from_file
    assert ns.resolve_password(cfg, env={"NEO4J_PASSWORD": from_env,
                                         "GRAPHONC_NEO4J_PASSWORD_FILE": str(pw_file)}).password == from_env
    with pytest.raises(ns.Neo4jServerError, match="shorter"):
        ns.resolve_password(cfg, env={"NEO4J_PASSWORD": "short"})
    assert not cfg.password_file.exists()


def test_config_validates_ports_and_sizes(tmp_path):
    with pytest.raises(ns.Neo4jServerError):
        ns.Neo4jServerConfig(data_dir=tmp_path, bolt_port=7000, http_port=7000)
    with pytest.raises(ns.Neo4jServerError):
        ns.Neo4jServerConfig(data_dir=tmp_path, heap="lots")
    conf = ns.write_conf(ns.Neo4jServerConfig(data_dir=tmp_path, bolt_port=17687, http_port=17474)).read_text()
    assert "server.bolt.listen_address=127.0.0.1:17687" in conf
    assert "server.http.listen_address=127.0.0.1:17474" in conf
    assert "server.https.enabled=false" in conf and "dbms.security.auth_enabled=true" in conf


def test_the_maven_pom_is_package_data_for_this_server_version():
    """An installed graphonc finds its pom without a source checkout or an environment variable."""
    import importlib.resources
    import xml.etree.ElementTree as ET

    pom = importlib.resources.files("graphonc.store") / ns.POM_RESOURCE
    assert pom.is_file()
    props = ET.fromstring(pom.read_text(encoding="utf-8")).find("{http://maven.apache.org/POM/4.0.0}properties")
    versions = {el.tag.split("}")[1]: el.text for el in props}
    assert versions["neo4j.version"] == ns.NEO4J_VERSION
    assert versions["neo4j.browser.version"] == ns.BROWSER_VERSION
    with ns._pom_file() as path:
        assert path.is_file() and path.read_bytes() == pom.read_bytes()


def test_neo4j_status_through_the_cli_says_not_running_with_exit_code_3(tmp_path):
    from typer.testing import CliRunner

    from graphonc.cli import app

    res = CliRunner().invoke(app, ["neo4j", "status", "--data-dir", str(tmp_path / "none")])
    assert res.exit_code == 3, res.output
    assert "not running" in res.output and str(tmp_path / "none") in res.output.replace("\n", "")
    bad = CliRunner().invoke(app, ["neo4j", "start", "--data-dir", str(tmp_path), "--heap", "lots"])
    assert bad.exit_code == 2 and "heap must look like 512m or 1g" in bad.output  # checked before anything starts


@pytest.mark.neo4j
def test_resolve_through_the_cli_uses_the_packaged_pom(tmp_path):
    """`graphonc neo4j resolve` runs Maven on the pom shipped in the package (local repository
    borrowed from the cache the test session uses, so nothing is downloaded again)."""
    from typer.testing import CliRunner

    from graphonc.cli import app

    m2 = ns.default_cache_dir() / "m2"
    if not m2.is_dir():
        pytest.skip(f"no Maven repository at {m2} to resolve from offline")
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "m2").symlink_to(m2)
    res = CliRunner().invoke(app, ["neo4j", "resolve", "--cache-dir", str(cache)])
    assert res.exit_code == 0, res.output
    lib = cache / f"lib-{ns.NEO4J_VERSION}"
    assert ns.jars_ready(cache) and (lib / f"neo4j-{ns.NEO4J_VERSION}.jar").is_file()
