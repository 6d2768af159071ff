"""The deployment files in ``deploy/`` are tested, not only written.

* the systemd unit: its keys (what it runs, restart policy, stop signal and timeout, secrets file,
  hardening), and ``systemd-analyze verify`` / ``security`` where systemd's tools are installed;
* the settings and secrets templates: valid for webhook mode, and the placeholders refused;
* the nginx site: rendered with ``envsubst`` exactly as the README tells an operator to, then served by a
  real nginx on loopback with a self-signed certificate, in front of the real service started with the
  unit's own ``ExecStart`` line; updates posted over HTTPS through nginx reach the bot and its replies reach
  a fake Bot API server (``slow``; CI installs nginx in ``.ci/run`` and must run it);
* the README section: every ``webhook.*`` key, the rendering command, the way back to polling.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import re
import secrets
import shlex
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from bot.config import ConfigError, DeliveryConfig, Settings, load_settings, read_token
from bot.webhook import HTTP_GRACE, MAX_CONCURRENCY, SECRET_HEADER, check_webhook_settings, read_secret
from tests.conftest import REPO
from tests.fake_telegram import DEFAULT_TOKEN, FakeTelegram
from tests.processes import wait_for_http

DEPLOY = REPO / "deploy"
UNIT = DEPLOY / "systemd" / "corpus-bot.service"
SITE = DEPLOY / "nginx" / "corpus-bot.conf"
DEPLOY_CONFIG = DEPLOY / "config.yaml"
ENV_EXAMPLE = DEPLOY / "corpus-bot.env.example"
README = REPO / "README.md"

INSTALL_DIR = "/opt/corpus-bot"
CONFIG_PATH = "/etc/corpus-bot/config.yaml"
ENV_PATH = "/etc/corpus-bot/corpus-bot.env"
SITE_VARIABLES = ("SERVER_NAME", "LISTEN", "TLS_CERTIFICATE", "TLS_CERTIFICATE_KEY", "WEBHOOK_PATH",
                  "SERVICE_ADDRESS")
# The command the README gives the operator; the test renders the site with exactly this.
ENVSUBST_FORMAT = " ".join(f"${name}" for name in SITE_VARIABLES)
TOKEN = DEFAULT_TOKEN
SECRET = "deploy-test_secret-0123456789abcdef"


# -- helpers -------------------------------------------------------------------------------------------


def parse_unit(text: str) -> dict[str, dict[str, list[str]]]:
    """systemd's unit syntax, as far as this unit uses it: sections of ``Key=value`` (keys may repeat)."""
    sections: dict[str, dict[str, list[str]]] = {}
    current: dict[str, list[str]] | None = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], {})
            continue
        assert current is not None, f"a key outside a section: {line!r}"
        key, sep, value = line.partition("=")
        assert sep, f"not a Key=value line: {line!r}"
        current.setdefault(key.strip(), []).append(value.strip())
    return sections


def unit_value(unit: dict[str, dict[str, list[str]]], section: str, key: str) -> str:
    values = unit[section].get(key)
    assert values, f"[{section}] {key}= is missing"
    return values[-1]


def seconds(value: str) -> float:
    """A systemd time span: "45", "45s", "1min 30s"."""
    units = {"": 1, "s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600}
    return sum(float(n) * units[u] for n, u in re.findall(r"(\d+(?:\.\d+)?)\s*([a-z]*)", value))


def parse_env_file(text: str) -> dict[str, str]:
    """systemd's EnvironmentFile= syntax for simple files: KEY=VALUE lines, # comments."""
    values = {}
    for raw in text.splitlines():
        line = raw.strip()
        if line and not line.startswith(("#", ";")):
            key, _, value = line.partition("=")
            values[key.strip()] = value.strip().strip("'\"")
    return values


def corpus_bot_executable() -> Path:
    """The ``corpus-bot`` script of the environment running the tests (the unit's /opt/... stand-in)."""
    return Path(sys.executable).parent / "corpus-bot"


def render_unit(config: Path, env_file: Path) -> str:
    """The unit as it would be installed here: the paths of this checkout instead of /opt and /etc."""
    text = UNIT.read_text(encoding="utf-8")
    text = text.replace(f"{INSTALL_DIR}/.venv/bin/corpus-bot", str(corpus_bot_executable()))
    text = text.replace(CONFIG_PATH, str(config)).replace(ENV_PATH, str(env_file))
    return text.replace(INSTALL_DIR, str(REPO))


def render_site(values: dict[str, str]) -> str:
    """What the README's ``envsubst '$SERVER_NAME ...' < deploy/nginx/corpus-bot.conf`` produces."""
    assert set(values) == set(SITE_VARIABLES)
    template = SITE.read_text(encoding="utf-8")
    envsubst = shutil.which("envsubst")
    if envsubst is None:  # gettext-base missing: the same substitution, restricted to the listed names
        return re.sub(r"\$\{(\w+)\}|\$(\w+)",
                      lambda m: values.get(m.group(1) or m.group(2), m.group(0)), template)
    done = subprocess.run([envsubst, ENVSUBST_FORMAT], input=template, env={**os.environ, **values},
                          capture_output=True, text=True, check=True)
    return done.stdout


def site_placeholders(text: str) -> set[str]:
    code = "\n".join(line.split("#", 1)[0] for line in text.splitlines())
    return set(re.findall(r"\$\{(\w+)\}", code))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def require_tool(name: str, *extra_dirs: str) -> str:
    """The tool's path; without it the test is skipped, except in CI (``CI`` set), where it fails."""
    found = shutil.which(name) or next(
        (str(Path(d) / name) for d in extra_dirs if (Path(d) / name).is_file()), None
    )
    if found:
        return found
    if os.environ.get("CI"):
        pytest.fail(f"{name} is not installed, and CI must run this test (.ci/run installs it)")
    pytest.skip(f"{name} is not installed (apt-get install {name}); CI installs it and runs this test")


# -- the systemd unit ----------------------------------------------------------------------------------


def test_the_unit_runs_the_webhook_service_with_its_secrets_and_restarts_on_failure():
    unit = parse_unit(UNIT.read_text(encoding="utf-8"))
    command = shlex.split(unit_value(unit, "Service", "ExecStart"))
    assert command[0] == f"{INSTALL_DIR}/.venv/bin/corpus-bot"
    assert command[1:] == ["run", "--mode", "webhook", "--config", CONFIG_PATH]
    assert unit_value(unit, "Service", "EnvironmentFile") == ENV_PATH
    assert unit_value(unit, "Service", "WorkingDirectory") == INSTALL_DIR
    assert unit_value(unit, "Service", "Restart") == "on-failure"
    assert seconds(unit_value(unit, "Service", "RestartSec")) >= 1
    assert unit_value(unit, "Service", "KillSignal") == "SIGTERM"
    # systemd must not SIGKILL the service while it still answers the updates it accepted.
    drain = DeliveryConfig().drain_timeout
    assert seconds(unit_value(unit, "Service", "TimeoutStopSec")) >= HTTP_GRACE + drain + 10
    assert "network-online.target" in unit_value(unit, "Unit", "After")
    assert unit_value(unit, "Install", "WantedBy") == "multi-user.target"


def test_the_unit_runs_as_its_own_user_with_hardening():
    unit = parse_unit(UNIT.read_text(encoding="utf-8"))
    assert unit_value(unit, "Service", "User") == "corpus-bot"
    assert unit_value(unit, "Service", "Group") == "corpus-bot"
    for key, value in {
        "NoNewPrivileges": "yes",
        "ProtectSystem": "strict",
        "ProtectHome": "yes",
        "PrivateTmp": "yes",
        "PrivateDevices": "yes",
        "CapabilityBoundingSet": "",
        "RestrictAddressFamilies": "AF_INET AF_INET6 AF_UNIX",
        "SystemCallFilter": "@system-service",
    }.items():
        assert unit_value(unit, "Service", key) == value, key
    # With ProtectSystem=strict the cache and state directories are the only writable places: the config
    # must use them, the inbox (state that must survive a cache clean-up) in the state directory.
    settings = load_settings(DEPLOY_CONFIG)
    assert settings.index.cache_dir == Path("/var/cache") / unit_value(unit, "Service", "CacheDirectory")
    assert settings.inbox_path.parent == Path("/var/lib") / unit_value(unit, "Service", "StateDirectory")


def test_the_unit_waits_for_readiness_and_allows_many_connections():
    unit = parse_unit(UNIT.read_text(encoding="utf-8"))
    assert unit_value(unit, "Service", "Type") == "notify"  # TimeoutStartSec means something with it
    assert unit_value(unit, "Service", "NotifyAccess") == "main"
    assert seconds(unit_value(unit, "Service", "TimeoutStartSec")) >= 300
    assert int(unit_value(unit, "Service", "LimitNOFILE")) > 2 * MAX_CONCURRENCY


def test_systemd_analyze_accepts_the_unit(tmp_path):
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed; the unit's keys are checked by the tests above")
    if not corpus_bot_executable().is_file():
        pytest.skip("the corpus-bot script is not installed in this environment (pip install -e .)")
    rendered = tmp_path / "corpus-bot.service"
    rendered.write_text(render_unit(tmp_path / "config.yaml", tmp_path / "corpus-bot.env"), encoding="utf-8")
    verify = subprocess.run([analyze, "verify", str(rendered)], capture_output=True, text=True, timeout=60)
    complaints = [line for line in verify.stderr.splitlines() if "corpus-bot.service" in line]
    assert verify.returncode == 0 and not complaints, verify.stderr
    security = subprocess.run(
        [analyze, "security", "--offline=yes", "--threshold=25", str(rendered)],
        capture_output=True, text=True, timeout=60,
    )
    assert security.returncode == 0, security.stdout[-2000:] + security.stderr  # exposure at most 2.5 ("OK")


# -- settings and secrets ------------------------------------------------------------------------------


def test_the_deploy_config_is_a_valid_webhook_config():
    settings = load_settings(DEPLOY_CONFIG)
    assert settings.telegram.mode == "webhook"
    assert settings.webhook.listen == "127.0.0.1"  # nginx is the public side
    assert settings.webhook.url and settings.webhook.url.startswith("https://")
    secret = secrets.token_hex(32)  # what `openssl rand -hex 32` gives
    assert check_webhook_settings(settings, {settings.webhook.secret_token_env: secret}) == secret


def test_the_env_example_names_the_variables_and_cannot_go_live_unchanged():
    settings = load_settings(DEPLOY_CONFIG)
    values = parse_env_file(ENV_EXAMPLE.read_text(encoding="utf-8"))
    assert set(values) == {settings.telegram.token_env, settings.webhook.secret_token_env}
    with pytest.raises(ConfigError):
        read_token(settings, values)
    with pytest.raises(ConfigError):
        read_secret(settings, values)


# -- the nginx site ------------------------------------------------------------------------------------


def test_the_site_has_exactly_the_documented_placeholders_and_keeps_nginx_variables():
    template = SITE.read_text(encoding="utf-8")
    assert site_placeholders(template) == set(SITE_VARIABLES)
    rendered = render_site({
        "SERVER_NAME": "bot.example.org", "LISTEN": "443",
        "TLS_CERTIFICATE": "/etc/letsencrypt/live/bot.example.org/fullchain.pem",
        "TLS_CERTIFICATE_KEY": "/etc/letsencrypt/live/bot.example.org/privkey.pem",
        "WEBHOOK_PATH": "/telegram", "SERVICE_ADDRESS": "127.0.0.1:8080",
    })
    assert "${" not in "\n".join(line.split("#", 1)[0] for line in rendered.splitlines())
    for nginx_variable in ("$host", "$scheme", "$proxy_add_x_forwarded_for"):
        assert nginx_variable in rendered
    assert "location = /telegram {" in rendered and "server 127.0.0.1:8080;" in rendered
    assert "listen 443 ssl;" in rendered


# -- the README section --------------------------------------------------------------------------------


def test_the_readme_section_walks_through_the_deployment():
    readme = README.read_text(encoding="utf-8")
    start = readme.index("## Deploying the webhook service")
    text = readme[start : readme.index("\n## ", start + 1)]
    for field in dataclasses.fields(Settings().webhook):
        assert f"`webhook.{field.name}`" in text, field.name
    assert f"envsubst '{ENVSUBST_FORMAT}'" in text
    for piece in ("deploy/systemd/corpus-bot.service", ENV_PATH, CONFIG_PATH, "systemctl enable --now",
                  "systemctl restart", "journalctl -u corpus-bot", "nginx -t", "/healthz", "/readyz",
                  "/metrics", "corpus-bot webhook delete", "corpus-bot webhook info", "--mode polling",
                  "openssl rand -hex 32"):
        assert piece in text, piece


# -- through nginx, over HTTPS -------------------------------------------------------------------------


def make_certificate(openssl: str, folder: Path) -> tuple[Path, Path]:
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True, timeout=60,
    )
    return cert, key


def nginx_conf(folder: Path, site: Path) -> Path:
    """A minimal nginx.conf around the site, as Debian's includes sites-enabled/ inside ``http {}``."""
    temp = {name: folder / name for name in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")}
    for path in temp.values():
        path.mkdir()
    user = "user root;\n" if os.geteuid() == 0 else ""  # workers must reach the temporary folders
    conf = folder / "nginx.conf"
    conf.write_text(
        f"{user}worker_processes 1;\n"
        "events { worker_connections 256; }\n"
        "http {\n"
        + "".join(f"    {name}_temp_path {path};\n" for name, path in temp.items())
        + f"    include {site};\n"
        "}\n",
        encoding="utf-8",
    )
    return conf


@contextlib.contextmanager
def running_nginx(nginx: str, folder: Path, conf: Path, port: int) -> Iterator[None]:
    error_log = folder / "error.log"
    command = [nginx, "-p", str(folder), "-e", str(error_log), "-c", str(conf),
               "-g", f"daemon off; pid {folder / 'nginx.pid'}; error_log {error_log} warn;"]
    checked = subprocess.run([*command, "-t"], capture_output=True, text=True, timeout=30)
    assert checked.returncode == 0, checked.stderr
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 10
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
                break
            assert process.poll() is None, f"nginx exited: {process.stderr.read()}"
            assert time.monotonic() < deadline, "nginx did not listen within 10 s"
            time.sleep(0.05)
        yield
    finally:
        process.send_signal(signal.SIGQUIT)  # graceful
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stderr:
            process.stderr.close()


@pytest.mark.slow
def test_telegram_reaches_the_bot_through_nginx_over_https(tmp_path):
    nginx = require_tool("nginx", "/usr/sbin", "/usr/local/sbin")
    openssl = require_tool("openssl")
    cert, key = make_certificate(openssl, tmp_path)
    public_port, service_port = free_port(), free_port()
    public_url = f"https://127.0.0.1:{public_port}/telegram"
    site = tmp_path / "corpus-bot.conf"
    site.write_text(render_site({
        "SERVER_NAME": "localhost", "LISTEN": f"127.0.0.1:{public_port}",
        "TLS_CERTIFICATE": str(cert), "TLS_CERTIFICATE_KEY": str(key),
        "WEBHOOK_PATH": "/telegram", "SERVICE_ADDRESS": f"127.0.0.1:{service_port}",
    }), encoding="utf-8")
    unit = parse_unit(render_unit(tmp_path / "config.yaml", tmp_path / "corpus-bot.env"))
    users = [900_001 + i for i in range(6)]

    with FakeTelegram(token=TOKEN) as tg, running_nginx(nginx, tmp_path, nginx_conf(tmp_path, site),
                                                        public_port):
        config = tmp_path / "config.yaml"
        config.write_text(
            f"corpus: {{path: {REPO / 'corpus'}}}\n"
            f"index: {{cache_dir: {tmp_path / 'cache'}}}\n"
            f"telegram: {{base_url: '{tg.api_url}'}}\n"
            f"webhook: {{listen: 127.0.0.1, port: {service_port}, path: /telegram, url: '{public_url}'}}\n",
            encoding="utf-8",
        )
        env_file = tmp_path / "corpus-bot.env"
        env_file.write_text(f"TELEGRAM_BOT_TOKEN={TOKEN}\nTELEGRAM_WEBHOOK_SECRET={SECRET}\n",
                            encoding="utf-8")
        environment = {**os.environ, **parse_env_file(env_file.read_text(encoding="utf-8"))}
        command = shlex.split(unit_value(unit, "Service", "ExecStart"))
        if not Path(command[0]).is_file():  # no console script in this environment: the same entry point
            command = [sys.executable, "-m", "bot", *command[1:]]
        service = subprocess.Popen(command, cwd=unit_value(unit, "Service", "WorkingDirectory"),
                                   env=environment, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            wait_for_http(f"http://127.0.0.1:{service_port}/readyz", timeout=60, process=service)
            assert tg.webhook["url"] == public_url and tg.webhook["secret_token"] == SECRET

            trust = ssl.create_default_context(cafile=str(cert))
            with httpx.Client(verify=trust, timeout=10) as telegram:
                for user in users:
                    update = tg.make_message_update("basic research", user_id=user)
                    response = telegram.post(public_url, json=update, headers={SECRET_HEADER: SECRET})
                    assert response.status_code == 200, response.text
                wrong = telegram.post(public_url, json=tg.make_message_update("basic research"),
                                      headers={SECRET_HEADER: "not-the-secret"})
                assert wrong.status_code == 403
                assert telegram.get(public_url).status_code == 403  # only POST is passed on
                for private in ("/metrics", "/healthz", "/readyz"):
                    assert telegram.get(f"https://127.0.0.1:{public_port}{private}").status_code == 404
            with pytest.raises(httpx.ConnectError):  # no plain-text way in, and no untrusted certificate
                httpx.post(public_url, json={}, timeout=5)

            tg.wait_for_blocking("sendMessage", count=len(users), timeout=20)
            deadline = time.monotonic() + 5
            while len(tg.sent_messages()) < len(users) and time.monotonic() < deadline:
                time.sleep(0.05)  # the call is recorded before the fake has carried it out
            replies = tg.sent_messages()
            assert sorted(m["chat"]["id"] for m in replies) == users
            assert all("2023-08-05" in m["text"] for m in replies)

            started = time.monotonic()
            service.send_signal(getattr(signal, unit_value(unit, "Service", "KillSignal")))
            _, stderr = service.communicate(timeout=seconds(unit_value(unit, "Service", "TimeoutStopSec")))
            assert time.monotonic() - started < 10
        finally:
            if service.poll() is None:
                service.kill()
                service.communicate()
        tg.assert_no_errors()
    assert service.returncode == 0, stderr  # Restart=on-failure: a clean stop is not restarted
    assert SECRET not in stderr and TOKEN.split(":", 1)[1] not in stderr


@pytest.mark.slow
def test_the_telegram_only_option_refuses_other_addresses(tmp_path):
    nginx = require_tool("nginx", "/usr/sbin", "/usr/local/sbin")
    openssl = require_tool("openssl")
    cert, key = make_certificate(openssl, tmp_path)
    port = free_port()
    rendered = render_site({
        "SERVER_NAME": "localhost", "LISTEN": f"127.0.0.1:{port}",
        "TLS_CERTIFICATE": str(cert), "TLS_CERTIFICATE_KEY": str(key),
        "WEBHOOK_PATH": "/telegram", "SERVICE_ADDRESS": f"127.0.0.1:{free_port()}",
    })
    option = "# include /etc/nginx/snippets/corpus-bot-telegram-only.conf;"
    assert option in rendered  # documented in the site, off by default
    snippet = DEPLOY / "nginx" / "corpus-bot-telegram-only.conf"
    assert "allow 149.154.160.0/20;" in snippet.read_text() and "deny all;" in snippet.read_text()
    site = tmp_path / "corpus-bot.conf"
    site.write_text(rendered.replace(option, f"include {snippet};"), encoding="utf-8")
    with running_nginx(nginx, tmp_path, nginx_conf(tmp_path, site), port):
        trust = ssl.create_default_context(cafile=str(cert))
        response = httpx.post(f"https://127.0.0.1:{port}/telegram", json={}, verify=trust, timeout=10)
    assert response.status_code == 403  # 127.0.0.1 is not Telegram: refused before the service
