"""Run a local Neo4j 5.26 LTS Community server without Docker or a tarball.

Only package registries are reachable on dev machines and in CI, so the server is assembled
from its Maven Central artifacts (``graphonc/store/neo4j_pom.xml``: ``org.neo4j:neo4j`` — which holds
``org.neo4j.server.CommunityEntryPoint`` — plus ``org.neo4j.client:neo4j-browser``) and launched
with plain ``java -cp <lib>/* org.neo4j.server.CommunityEntryPoint``, the same process the
official ``bin/neo4j`` boot loader spawns. The initial password is set with the official admin
tool (``org.neo4j.cli.AdminTool dbms set-initial-password``) from the same jars.

Layout of a data folder ``D`` (everything the server writes stays inside it)::

    D/conf/neo4j.conf      written by write_conf() on every start
    D/data D/logs D/run D/import D/plugins
    D/neo4j.pid            JSON: pid and ports of the server this module started
    D/neo4j_password       only when the password was generated here (mode 0600)
    D/logs/console.log     the JVM's stdout/stderr (early boot failures land here)

The server listens on 127.0.0.1 only. Password sources, first hit wins: ``cfg.password``,
``NEO4J_PASSWORD``, the file named by ``GRAPHONC_NEO4J_PASSWORD_FILE``, ``NEO4J_PASSWORD=`` in
``~/.config/graphonc/neo4j.env``, ``D/neo4j_password``; otherwise a random one is generated.
"""
from __future__ import annotations

import contextlib
import fcntl
import importlib.resources
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from graphonc.errors import GraphoncError
from graphonc.secret_file import generate_secret_file

NEO4J_VERSION = "5.26.30"  # keep in sync with graphonc/store/neo4j_pom.xml
BROWSER_VERSION = "5.24.0"  # newest neo4j-browser on Maven Central; works with a 5.26 server
ENTRY_POINT = "org.neo4j.server.CommunityEntryPoint"
ADMIN_TOOL = "org.neo4j.cli.AdminTool"
HOST = "127.0.0.1"
USER = "neo4j"
MIN_PASSWORD_LENGTH = 8  # Neo4j's default dbms.security.auth_minimum_password_length

#: The Maven pom that lists the server's artifacts, shipped inside the package (package data), so an
#: installed graphonc finds it without a source checkout or an environment variable.
POM_RESOURCE = "neo4j_pom.xml"
_COMPLETE_MARKER = ".complete"
_SIZE_RE = re.compile(r"^[1-9][0-9]*[kmgKMG]?$")

# The JVM options of the official 5.26 neo4j.conf that matter on Java 17/21 (module opens for
# Netty/Lucene, G1, no JMX); the boot loader would add them, we launch the entry point directly.
_JVM_OPTS = (
    "-XX:+UseG1GC",
    "-XX:-OmitStackTraceInFastThrow",
    "-XX:+UnlockExperimentalVMOptions",
    "-XX:+TrustFinalNonStaticFields",
    "-XX:+DisableExplicitGC",
    "-Djdk.nio.maxCachedBufferSize=1024",
    "-Dio.netty.tryReflectionSetAccessible=true",
    "-Djdk.tls.ephemeralDHKeySize=2048",
    "-Djdk.tls.rejectClientInitiatedRenegotiation=true",
    "-XX:FlightRecorderOptions=stackdepth=256",
    "-XX:+UnlockDiagnosticVMOptions",
    "-XX:+DebugNonSafepoints",
    "--add-opens=java.base/java.nio=ALL-UNNAMED",
    "--add-opens=java.base/java.io=ALL-UNNAMED",
    "--add-opens=java.base/sun.nio.ch=ALL-UNNAMED",
    "--enable-native-access=ALL-UNNAMED",
    "-Dlog4j2.disable.jmx=true",
    "-Dlog4j.layout.jsonTemplate.maxStringLength=32768",
    "-Dfile.encoding=UTF-8",
)


class Neo4jServerError(GraphoncError):
    """The local Neo4j server could not be set up, started or stopped; the message says why."""


def default_cache_dir() -> Path:
    """Where Maven's repository and the jar folder live: ``$GRAPHONC_MAVEN_CACHE`` or ~/.cache."""
    env = os.environ.get("GRAPHONC_MAVEN_CACHE")
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "graphonc" / "neo4j"


def default_data_dir() -> Path:
    """``$GRAPHONC_NEO4J_DATA_DIR`` or ~/.local/share/graphonc/neo4j (outside the repo)."""
    env = os.environ.get("GRAPHONC_NEO4J_DATA_DIR")
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "graphonc" / "neo4j"


@dataclass(frozen=True)
class Neo4jServerConfig:
    """One local server: its home/data folder, ports and memory. The host is fixed to 127.0.0.1."""

    data_dir: Path = field(default_factory=default_data_dir)
    bolt_port: int = 7687
    http_port: int = 7474
    heap: str = "1g"  # -Xms/-Xmx; small on purpose: the machine is shared with model training
    pagecache: str = "512m"
    password: str | None = field(default=None, repr=False)  # None: see the module doc
    cache_dir: Path = field(default_factory=default_cache_dir)
    host: str = field(default=HOST, init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "data_dir", Path(self.data_dir).expanduser().resolve())
        object.__setattr__(self, "cache_dir", Path(self.cache_dir).expanduser().resolve())
        for name in ("bolt_port", "http_port"):
            port = getattr(self, name)
            if not isinstance(port, int) or not 1 <= port <= 65535:
                raise Neo4jServerError(f"{name} must be a port number 1-65535, got {port!r}")
        if self.bolt_port == self.http_port:
            raise Neo4jServerError(f"bolt_port and http_port are both {self.bolt_port}; pick two ports")
        for name in ("heap", "pagecache"):
            if not _SIZE_RE.match(getattr(self, name)):
                raise Neo4jServerError(f"{name} must look like 512m or 1g, got {getattr(self, name)!r}")

    @property
    def conf_dir(self) -> Path:
        return self.data_dir / "conf"

    @property
    def pid_file(self) -> Path:
        return self.data_dir / "neo4j.pid"

    @property
    def password_file(self) -> Path:
        return self.data_dir / "neo4j_password"

    @property
    def console_log(self) -> Path:
        return self.data_dir / "logs" / "console.log"


@dataclass(frozen=True)
class ServerStatus:
    """A running server. ``password_generated`` is True only on the start that created it."""

    pid: int
    bolt_uri: str
    http_url: str
    browser_url: str
    data_dir: Path
    password_generated: bool = False


@dataclass(frozen=True)
class InitialPassword:
    """The password the server is (or will be) initialised with; ``generated``: made here, now."""

    password: str = field(repr=False)
    generated: bool
    source: str  # where it came from, for messages (never the password itself)


# --------------------------------------------------------------------------------------------
# jars


def _java() -> str:
    """The java binary: $GRAPHONC_JAVA, $JAVA_HOME/bin/java or the one on PATH (17 or 21)."""
    for candidate in (os.environ.get("GRAPHONC_JAVA"),
                      os.path.join(os.environ["JAVA_HOME"], "bin", "java") if os.environ.get("JAVA_HOME") else None,
                      shutil.which("java")):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    raise Neo4jServerError("java not found: Neo4j 5.26 needs Java 17 or 21 "
                           "(Debian: apt-get install openjdk-17-jre-headless; or set JAVA_HOME).")


def _check_java(java: str) -> None:
    """Fail early and clearly on a Java older than 17 (the server would die with a class-version error)."""
    proc = subprocess.run([java, "-version"], check=False, capture_output=True, text=True)
    match = re.search(r'version "(\d+)(?:\.(\d+))?', proc.stderr)
    if not match:
        raise Neo4jServerError(f"{java} -version did not say its version: {proc.stderr.strip()[:200]}")
    major = int(match[1]) if match[1] != "1" else int(match[2] or 0)
    if major < 17:
        raise Neo4jServerError(f"{java} is Java {major}; Neo4j 5.26 needs Java 17 or 21 "
                               "(set JAVA_HOME or GRAPHONC_JAVA).")


def _lib_ok(lib: Path) -> bool:
    return (lib / _COMPLETE_MARKER).is_file() and (lib / f"neo4j-{NEO4J_VERSION}.jar").is_file()


def jars_ready(cache_dir: Path | None = None) -> bool:
    """Whether resolve_jars() has nothing left to download (so a CLI can warn about the wait)."""
    return _lib_ok(Path(cache_dir or default_cache_dir()).expanduser().resolve() / f"lib-{NEO4J_VERSION}")


@contextlib.contextmanager
def _pom_file(pom: Path | None = None) -> Iterator[Path]:
    """A filesystem path of the pom: ``pom`` when given, else the package's own copy (extracted to a
    temporary file for as long as Maven needs it when the package is not installed as plain files)."""
    if pom is not None:
        if not Path(pom).is_file():
            raise Neo4jServerError(f"Maven pom for the Neo4j server not found at {pom}")
        yield Path(pom)
        return
    with importlib.resources.as_file(importlib.resources.files(__package__) / POM_RESOURCE) as path:
        if not path.is_file():
            raise Neo4jServerError(f"the package data file graphonc/store/{POM_RESOURCE} is missing: "
                                   "reinstall graphonc (`bash scripts/setup.sh`).")
        yield path


def resolve_jars(cache_dir: Path | None = None, *, pom: Path | None = None) -> Path:
    """Copy the server's jars from Maven Central into ``<cache_dir>/lib-<version>``; return it.

    Idempotent: a complete folder (marker file) is reused without running Maven. Maven writes to
    a temporary folder that is renamed into place, so an interrupted run never leaves a half
    folder that looks complete. ``-Dmaven.repo.local=<cache_dir>/m2`` lets CI cache one folder.
    """
    cache_dir = Path(cache_dir or default_cache_dir()).expanduser().resolve()
    lib = cache_dir / f"lib-{NEO4J_VERSION}"
    if _lib_ok(lib):
        return lib
    mvn = shutil.which("mvn")
    if not mvn:
        raise Neo4jServerError("mvn not found: it fetches the Neo4j server jars from Maven Central "
                               "(Debian: apt-get install maven).")
    _java()
    cache_dir.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".lib-{NEO4J_VERSION}-", dir=cache_dir))
    try:
        with _pom_file(pom) as pom_path:
            cmd = [mvn, "-B", "-q", "-f", str(pom_path), f"-Dmaven.repo.local={cache_dir / 'm2'}",
                   f"-Dneo4j.version={NEO4J_VERSION}", f"-Dneo4j.browser.version={BROWSER_VERSION}",
                   "dependency:copy-dependencies", "-DincludeScope=runtime", f"-DoutputDirectory={tmp}"]
            proc = subprocess.run(cmd, check=False, stdin=subprocess.DEVNULL, capture_output=True, text=True)
        if proc.returncode != 0:
            tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-25:])
            raise Neo4jServerError(f"Maven could not resolve the Neo4j {NEO4J_VERSION} jars "
                                   f"(exit {proc.returncode}):\n{tail}")
        jars = sorted(p.name for p in tmp.glob("*.jar"))
        needed = {f"neo4j-{NEO4J_VERSION}.jar", f"neo4j-server-{NEO4J_VERSION}.jar",
                  f"neo4j-browser-{BROWSER_VERSION}.jar"}
        if missing := needed - set(jars):
            raise Neo4jServerError(f"Maven finished but these jars are missing: {sorted(missing)}")
        (tmp / _COMPLETE_MARKER).write_text("\n".join(jars) + "\n", encoding="utf-8")
        if lib.exists() and not _lib_ok(lib):
            shutil.rmtree(lib)
        try:
            os.replace(tmp, lib)
        except OSError:
            if not _lib_ok(lib):  # lost a race to another process only if it left a good folder
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return lib


# --------------------------------------------------------------------------------------------
# configuration and password


def write_conf(cfg: Neo4jServerConfig) -> Path:
    """Write ``<data_dir>/conf/neo4j.conf`` (regenerated each start: the config object is the truth)."""
    d = cfg.data_dir
    for sub in ("conf", "data", "logs", "run", "import", "plugins"):
        (d / sub).mkdir(parents=True, exist_ok=True)
    lines = [
        "# Written by graphonc.store.neo4j_server on every start; change Neo4jServerConfig instead.",
        f"server.default_listen_address={cfg.host}",
        f"server.default_advertised_address={cfg.host}",
        "server.bolt.enabled=true",
        f"server.bolt.listen_address={cfg.host}:{cfg.bolt_port}",
        f"server.bolt.advertised_address={cfg.host}:{cfg.bolt_port}",
        "server.bolt.tls_level=DISABLED",
        "server.http.enabled=true",
        f"server.http.listen_address={cfg.host}:{cfg.http_port}",
        f"server.http.advertised_address={cfg.host}:{cfg.http_port}",
        "server.https.enabled=false",
        "dbms.security.auth_enabled=true",
        f"server.directories.data={d / 'data'}",
        f"server.directories.logs={d / 'logs'}",
        f"server.directories.run={d / 'run'}",
        f"server.directories.import={d / 'import'}",
        f"server.directories.plugins={d / 'plugins'}",
        # Read by the boot loader only; we pass -Xms/-Xmx ourselves, kept here for the record.
        f"server.memory.heap.initial_size={cfg.heap}",
        f"server.memory.heap.max_size={cfg.heap}",
        f"server.memory.pagecache.size={cfg.pagecache}",
        "db.tx_log.rotation.retention_policy=1 days",
        "dbms.usage_report.enabled=false",  # no phoning home: only package registries are reachable
        "client.allow_telemetry=false",  # ...from the Browser either (it asks the server)
        # Netty's default 5 s quiet period, paid twice, made every stop take ~11 s; the databases
        # are already checkpointed and closed when Bolt's event loops shut down.
        "internal.dbms.bolt.netty_server_shutdown_quiet_period=0",
    ]
    conf = cfg.conf_dir / "neo4j.conf"
    conf.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return conf


def _env_file() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "graphonc" / "neo4j.env"


def _read_env_file(path: Path) -> str | None:
    """NEO4J_PASSWORD from a KEY=VALUE file (``export`` and quotes allowed)."""
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if line.startswith("export "):
            line = line[len("export "):].lstrip()
        key, sep, value = line.partition("=")
        if sep and key.strip() == "NEO4J_PASSWORD":
            value = value.strip()
            if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
                value = value[1:-1]
            return value or None
    return None


def configured_password(cfg: Neo4jServerConfig, env: Mapping[str, str]) -> tuple[str, str] | None:
    """(password, where it came from) from the first source that sets one, in module-doc order."""
    if cfg.password:
        return cfg.password, "Neo4jServerConfig.password"
    if env.get("NEO4J_PASSWORD"):
        return env["NEO4J_PASSWORD"], "NEO4J_PASSWORD"
    if env.get("GRAPHONC_NEO4J_PASSWORD_FILE"):
        path = Path(env["GRAPHONC_NEO4J_PASSWORD_FILE"]).expanduser()
        if not path.is_file():
            raise Neo4jServerError(f"GRAPHONC_NEO4J_PASSWORD_FILE names {path}, which is not a file")
        return path.read_text(encoding="utf-8").strip(), str(path)
    env_file = _env_file()
    if env_file.is_file() and (password := _read_env_file(env_file)):
        return password, str(env_file)
    if cfg.password_file.is_file():
        return cfg.password_file.read_text(encoding="utf-8").strip(), str(cfg.password_file)
    return None


def resolve_password(cfg: Neo4jServerConfig, env: Mapping[str, str] | None = None) -> InitialPassword:
    """The configured password, or a random one generated now and kept in ``<data_dir>/neo4j_password``."""
    found = configured_password(cfg, os.environ if env is None else env)
    if found is not None:
        _check_password(*found)
        return InitialPassword(found[0], generated=False, source=found[1])
    cfg.data_dir.mkdir(parents=True, exist_ok=True)
    password = generate_secret_file(cfg.password_file)  # 24 URL-safe chars, mode 0600
    return InitialPassword(password, generated=True, source=str(cfg.password_file))


def _check_password(password: str, source: str) -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise Neo4jServerError(f"the Neo4j password from {source} is shorter than "
                               f"{MIN_PASSWORD_LENGTH} characters, which Neo4j refuses")
    if "\n" in password or "\r" in password or "\0" in password:
        raise Neo4jServerError(f"the Neo4j password from {source} contains a line break or NUL")


def _initialised(cfg: Neo4jServerConfig) -> bool:
    """True once the server has created its system database: the initial password is then fixed."""
    return (cfg.data_dir / "data" / "databases" / "system").is_dir()


def set_initial_password(cfg: Neo4jServerConfig, *, lib: Path | None = None) -> InitialPassword:
    """Set the ``neo4j`` user's password before the first start, with Neo4j's own admin tool.

    Runs ``AdminTool dbms set-initial-password`` (what ``neo4j-admin`` runs), which writes
    ``data/dbms/auth.ini``; the server reads it when it creates the system database. The password
    travels in a 0600 picocli @argfile that is deleted at once, never on the command line.
    A no-op (but still returns the password) once the database exists: Neo4j ignores it then.
    """
    pw = resolve_password(cfg)
    if _initialised(cfg):
        return pw
    lib = lib or resolve_jars(cfg.cache_dir)
    conf = write_conf(cfg)
    quoted = '"' + pw.password.replace("\\", "\\\\").replace('"', '\\"') + '"'
    fd, argfile = tempfile.mkstemp(prefix=".pw-", dir=cfg.data_dir)  # mkstemp: mode 0600
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(quoted + "\n")
        env = dict(os.environ, NEO4J_HOME=str(cfg.data_dir), NEO4J_CONF=str(conf.parent))
        proc = subprocess.run(
            [_java(), "-cp", f"{lib}/*", "-Xmx256m", "-Dfile.encoding=UTF-8", ADMIN_TOOL,
             "dbms", "set-initial-password", f"@{argfile}"],
            check=False, cwd=cfg.data_dir, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True)
    finally:
        os.unlink(argfile)
    auth_ini = cfg.data_dir / "data" / "dbms" / "auth.ini"  # a salted hash, still: owner only
    if auth_ini.is_file():
        os.chmod(auth_ini, 0o600)
    if proc.returncode != 0:
        out = (proc.stdout + proc.stderr).replace(pw.password, "***")
        lines = [ln for ln in out.strip().splitlines() if not ln.lstrip().startswith("at ")]
        raise Neo4jServerError(f"neo4j-admin dbms set-initial-password failed (exit {proc.returncode}):\n"
                               + "\n".join(lines[-15:]))
    return pw


# --------------------------------------------------------------------------------------------
# process management


def free_port(host: str = HOST) -> int:
    """A TCP port that is free right now on ``host`` (for tests; racy by nature)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def _port_free(port: int, host: str = HOST) -> bool:
    """Whether a server could listen on host:port (SO_REUSEADDR like Java: TIME_WAIT is fine)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def _port_open(port: int, host: str = HOST, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


@contextlib.contextmanager
def _locked(cfg: Neo4jServerConfig) -> Iterator[None]:
    """Serialise start/stop on one data folder across processes."""
    cfg.data_dir.mkdir(parents=True, exist_ok=True)
    with open(cfg.data_dir / ".lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _reap(pid: int) -> None:
    """Collect our own exited child so it does not linger as a zombie (no-op for others)."""
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def _is_our_server(pid: int, data_dir: Path) -> bool:
    """Whether ``pid`` is alive and is the Neo4j of ``data_dir`` (guards against pid reuse)."""
    _reap(pid)
    proc = Path(f"/proc/{pid}")
    if proc.is_dir():
        try:
            state = (proc / "stat").read_text(encoding="utf-8").rsplit(")", 1)[1].split()[0]
            args = (proc / "cmdline").read_bytes().split(b"\0")
        except (OSError, IndexError):
            return False
        return state not in ("Z", "X") and ENTRY_POINT.encode() in args \
            and f"--home-dir={data_dir}".encode() in args
    try:  # no /proc (macOS): trust the pid file
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _read_pid_file(cfg: Neo4jServerConfig) -> dict | None:
    try:
        info = json.loads(cfg.pid_file.read_text(encoding="utf-8"))
        return info if isinstance(info.get("pid"), int) else None
    except (OSError, ValueError, AttributeError):
        return None


def _status_from(info: dict, data_dir: Path, generated: bool = False) -> ServerStatus:
    http = f"http://{HOST}:{info['http_port']}"
    return ServerStatus(pid=info["pid"], bolt_uri=f"bolt://{HOST}:{info['bolt_port']}", http_url=http,
                        browser_url=f"{http}/browser/", data_dir=data_dir, password_generated=generated)


def status(cfg: Neo4jServerConfig) -> ServerStatus | None:
    """The server this module started in ``cfg.data_dir``, if its process is alive; else None."""
    info = _read_pid_file(cfg)
    if info is None or not _is_our_server(info["pid"], cfg.data_dir):
        return None
    return _status_from(info, cfg.data_dir)


def java_command(cfg: Neo4jServerConfig, lib: Path) -> list[str]:
    """The exact command line that runs the server (what ``bin/neo4j console`` would spawn)."""
    classpath = f"{cfg.data_dir / 'plugins'}/*{os.pathsep}{lib}/*"
    return [_java(), "-cp", classpath, f"-Xms{cfg.heap}", f"-Xmx{cfg.heap}", *_JVM_OPTS, ENTRY_POINT,
            f"--home-dir={cfg.data_dir}", f"--config-dir={cfg.conf_dir}"]


def _log_tail(cfg: Neo4jServerConfig, lines: int = 20) -> str:
    parts = []
    for path in (cfg.console_log, cfg.data_dir / "logs" / "neo4j.log"):
        with contextlib.suppress(OSError):
            text = path.read_text(errors="replace").strip()
            if text:
                parts.append(f"--- {path} ---\n" + "\n".join(text.splitlines()[-lines:]))
    return "\n".join(parts) or "(no log output)"


def _http_ready(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://{HOST}:{port}/", timeout=2) as resp:
            return resp.status == 200 and b"neo4j_version" in resp.read()
    except (urllib.error.URLError, OSError, ValueError):
        return False


def _bolt_check(uri: str, password: str) -> str | None:
    """None when Bolt answers and accepts the password; 'auth' on a wrong password; else 'down'."""
    try:
        import neo4j  # optional: fall back to a TCP probe without the driver
    except ImportError:
        port = int(uri.rsplit(":", 1)[1])
        return None if _port_open(port) else "down"
    try:
        with neo4j.GraphDatabase.driver(uri, auth=(USER, password), connection_timeout=3) as drv:
            drv.verify_connectivity()
        return None
    except neo4j.exceptions.AuthError:
        return "auth"
    except (neo4j.exceptions.DriverError, neo4j.exceptions.Neo4jError, OSError):
        return "down"  # ServiceUnavailable, DatabaseUnavailable... while booting


# Runs in a short-lived intermediate Python: it starts the JVM in its own session and exits at
# once, so the server is re-parented to init and is nobody's child (no zombie, no Popen left
# running in the caller, and it outlives the CLI process that started it).
_LAUNCHER = """\
import os, subprocess, sys
with open(sys.argv[1], "ab") as log:
    p = subprocess.Popen(sys.argv[2:], stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                         start_new_session=True)
print(p.pid, flush=True)
os._exit(0)
"""


def _spawn_detached(cmd: list[str], cfg: Neo4jServerConfig) -> int:
    """Start ``cmd`` detached from this process (see _LAUNCHER); return its pid."""
    env = dict(os.environ, NEO4J_HOME=str(cfg.data_dir), NEO4J_CONF=str(cfg.conf_dir))
    proc = subprocess.run([sys.executable, "-c", _LAUNCHER, str(cfg.console_log), *cmd], check=False,
                          cwd=cfg.data_dir, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                          timeout=60)
    if proc.returncode != 0 or not proc.stdout.strip().isdigit():
        raise Neo4jServerError(f"could not launch java for Neo4j: {proc.stderr.strip()[-2000:]}")
    return int(proc.stdout.strip())


def start(cfg: Neo4jServerConfig, timeout: float = 120) -> ServerStatus:
    """Start the server in the background and wait until Bolt and HTTP answer; idempotent.

    A server already running from ``cfg.data_dir`` is returned as is. Busy ports (another
    program, or a server of another data folder) are an error rather than a silent reuse.
    """
    with _locked(cfg):
        running = status(cfg)
        if running is not None:
            return running
        cfg.pid_file.unlink(missing_ok=True)
        busy = [f"{name} port {port}" for name, port in (("Bolt", cfg.bolt_port), ("HTTP", cfg.http_port))
                if not _port_free(port)]
        if busy:
            raise Neo4jServerError(f"{' and '.join(busy)} on {HOST} already in use by another program; "
                                   "stop it or choose other ports (--bolt-port/--http-port).")
        _check_java(_java())
        lib = resolve_jars(cfg.cache_dir)
        pw = set_initial_password(cfg, lib=lib)
        write_conf(cfg)
        pid = _spawn_detached(java_command(cfg, lib), cfg)
        info = {"pid": pid, "bolt_port": cfg.bolt_port, "http_port": cfg.http_port,
                "version": NEO4J_VERSION, "started_at": time.time()}
        cfg.pid_file.write_text(json.dumps(info) + "\n", encoding="utf-8")
        result = _status_from(info, cfg.data_dir, generated=pw.generated)
        deadline = time.monotonic() + timeout
        while True:
            if not _is_our_server(pid, cfg.data_dir):
                cfg.pid_file.unlink(missing_ok=True)
                raise Neo4jServerError("Neo4j exited while starting:\n" + _log_tail(cfg))
            if _http_ready(cfg.http_port):
                bolt = _bolt_check(result.bolt_uri, pw.password)
                if bolt is None:
                    return result
                if bolt == "auth":
                    raise Neo4jServerError(
                        f"Neo4j is running (pid {pid}) but refuses the password from {pw.source}: the "
                        f"database in {cfg.data_dir} was initialised with another one. Use that password, "
                        "or stop the server and delete the data folder to start afresh.")
            if time.monotonic() > deadline:
                _terminate(pid, cfg, 30)
                raise Neo4jServerError(f"Neo4j did not answer on Bolt/HTTP within {timeout:.0f}s "
                                       f"(stopped it):\n" + _log_tail(cfg))
            time.sleep(0.5)


def _terminate(pid: int, cfg: Neo4jServerConfig, timeout: float) -> None:
    """SIGTERM (Neo4j shuts down cleanly on it), wait, SIGKILL as the last resort."""
    for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 10.0)):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if not _is_our_server(pid, cfg.data_dir):
                return
            time.sleep(0.2)
    if _is_our_server(pid, cfg.data_dir):
        raise Neo4jServerError(f"Neo4j (pid {pid}) survived SIGKILL")


def stop(cfg: Neo4jServerConfig, timeout: float = 60) -> bool:
    """Stop the server of ``cfg.data_dir``; True if one was running. Stopping a stopped one is fine."""
    with _locked(cfg):
        info = _read_pid_file(cfg)
        was_running = False
        if info is not None and _is_our_server(info["pid"], cfg.data_dir):
            _terminate(info["pid"], cfg, timeout)
            was_running = True
        cfg.pid_file.unlink(missing_ok=True)
        return was_running
