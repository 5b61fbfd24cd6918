"""Secrets and transport: the ERP password never lands in anything the program writes,
a config file holding it must be owner-only, TLS is verified (a CA file makes a
self-signed ERP usable; turning verification off warns), and `doctor` reports it all."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import shutil
import ssl as tls
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import SimProcess, start_sim
from hard_support import cli, cli_env, cli_here, open_engine
from sqlalchemy import MetaData, create_engine, select

from passweb_tui.engine.erp.client import MexalClient
from passweb_tui.engine.erp.errors import ErpConnectionError
from passweb_tui.engine.erp.settings import ErpConfig

PASSWORD = "Zq7-distinctive-SECRET-9x"  # never appears in any data the simulator serves


@pytest.fixture
def secret_sim() -> Iterator[SimProcess]:
    p = start_sim(
        "--articles", "120", "--customers", "20", "--orders", "2", "--seed", "5", password=PASSWORD
    )
    try:
        yield p
    finally:
        p.stop()


def everything_written(home: Path, db_file: Path) -> list[tuple[str, bytes]]:
    """Every file under the isolated home (config, data, logs, state, cache) and every
    row of every table of the store, as bytes."""
    out = [(str(path), path.read_bytes()) for path in sorted(home.rglob("*")) if path.is_file()]
    engine = create_engine(f"sqlite:///{db_file}")
    meta = MetaData()
    meta.reflect(engine)
    with engine.connect() as conn:
        for table in meta.sorted_tables:
            for row in conn.execute(select(table)):
                out.append((f"table {table.name}", repr(tuple(row)).encode()))
    engine.dispose()
    return out


def test_the_password_is_nowhere_the_program_writes(
    secret_sim: SimProcess, isolated_home: Path, tmp_path: Path
) -> None:
    db_file = isolated_home / "store.db"
    db = f"sqlite:///{db_file}"
    env = cli_env(secret_sim)
    outputs: list[tuple[str, str]] = []

    def run(*args: str, environ: dict[str, str] = env) -> subprocess.CompletedProcess[str]:
        done = cli("--db", db, "-vv", *args, env=environ)
        outputs.append((" ".join(args), done.stdout + done.stderr))
        return done

    assert run("sync", "total").returncode == 0
    assert run("check").returncode == 0
    assert run("doctor").returncode == 0
    assert run("runs", "--json").returncode == 0
    # a failed login: wrong password, and a password the ERP changed (401 mid-life)
    wrong = dict(env, PASSWEB_TUI_ERP_PASSWORD=PASSWORD + "-wrong")
    assert run("check", environ=wrong).returncode == 2
    assert run("sync", "changed", environ=wrong).returncode == 2
    # a password from password_command and from an owner-only config file
    config = tmp_path / "config.toml"
    config.write_text(f'[erp]\npassword = "{PASSWORD}"\n')
    config.chmod(0o600)
    from_file = {k: v for k, v in env.items() if k != "PASSWEB_TUI_ERP_PASSWORD"}
    from_file["PASSWEB_TUI_CONFIG"] = str(config)
    assert run("sync", "changed", environ=from_file).returncode == 0
    # the UI, headless, on the same store: its screens as text and as SVG
    screens = asyncio.run(ui_screens(db, secret_sim))
    outputs += [("ui", s) for s in screens]

    for what, text in outputs:
        assert PASSWORD not in text, f"password shown by {what}"
    for where, data in everything_written(isolated_home, db_file):
        assert PASSWORD.encode() not in data, f"password written in {where}"
    log = isolated_home / "xdg_state_home"
    assert any(p.name.endswith(".log") for p in isolated_home.rglob("*")), (
        f"no log file written under {log}"
    )


async def ui_screens(db: str, sim: SimProcess) -> list[str]:
    """The app on the engine (as `passweb-tui` runs it), headless: each screen as SVG text."""
    from passweb_tui.app import PasswebApp

    engine = open_engine(db, sim)
    app = PasswebApp(engine, erp_label=sim.url)
    shots: list[str] = []
    try:
        async with app.run_test(size=(140, 45)) as pilot:
            await pilot.pause()
            shots.append(app.export_screenshot())
            for key in ("s", "r", "c", "a", "f", "d"):
                await pilot.press(key)
                await pilot.pause()
                shots.append(app.export_screenshot())
    finally:
        engine.close()
    return shots


# --- the config file's permissions -------------------------------------------------


def test_a_password_in_a_config_file_others_can_read_is_refused(
    secret_sim: SimProcess, tmp_path: Path
) -> None:
    config = tmp_path / "config.toml"
    config.write_text(f'[erp]\npassword = "{PASSWORD}"\n')
    config.chmod(0o644)
    env = {k: v for k, v in cli_env(secret_sim).items() if k != "PASSWEB_TUI_ERP_PASSWORD"}
    env["PASSWEB_TUI_CONFIG"] = str(config)
    refused = cli("check", env=env)
    assert refused.returncode == 2
    assert str(config) in refused.stderr and "chmod 600" in refused.stderr
    assert PASSWORD not in refused.stderr + refused.stdout
    config.chmod(0o600)
    assert cli("check", env=env).returncode == 0


# --- TLS ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tls_sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[SimProcess, Path]]:
    """The simulator over HTTPS with a certificate signed by a CA of our own."""
    if shutil.which("openssl") is None:
        pytest.skip("needs openssl")
    d = tmp_path_factory.mktemp("ca")

    def ssl(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True, cwd=d)

    ssl(
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "2",
        "-subj",
        "/CN=passweb test CA",
    )
    ssl(
        "req",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-keyout",
        "erp.key",
        "-out",
        "erp.csr",
        "-subj",
        "/CN=127.0.0.1",
    )
    (d / "ext.cnf").write_text("subjectAltName=IP:127.0.0.1\n")
    ssl("x509", "-req", "-in", "erp.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
        "-CAcreateserial", "-out", "erp.pem", "-days", "2", "-extfile", "ext.cnf")  # fmt: skip
    p = start_sim("--articles", "80", "--customers", "10", "--orders", "1",
                  "--tls-cert", str(d / "erp.pem"), "--tls-key", str(d / "erp.key"))  # fmt: skip
    try:
        yield p, d / "ca.pem"
    finally:
        p.stop()


def test_sync_over_tls_needs_the_ca_file(tls_sim: tuple[SimProcess, Path], tmp_path: Path) -> None:
    sim, ca = tls_sim
    assert sim.url.startswith("https://")
    env = cli_env(sim)
    db = f"sqlite:///{tmp_path / 'store.db'}"
    refused = cli("--db", db, "sync", "total", env=env)
    assert refused.returncode == 1
    assert "certificate" in refused.stderr + refused.stdout
    assert "Traceback" not in refused.stderr
    ok = cli("--db", db, "--ca-file", str(ca), "sync", "total", "--json", env=env)
    assert ok.returncode == 0, ok.stderr
    doctor = cli("--db", db, "--ca-file", str(ca), "doctor", env=env)
    assert doctor.returncode == 0, doctor.stdout
    assert f"OK   TLS: certificate verified against CA file {ca}" in doctor.stdout
    bad = cli("--db", db, "doctor", env=env)
    assert bad.returncode == 1 and "FAIL TLS: " in bad.stdout, bad.stdout
    # what was found, not what the settings ask for: no "certificate verified" beside it
    assert "certificate" in bad.stdout and "OK   TLS" not in bad.stdout, bad.stdout


def test_verification_off_is_explicit_and_warns(
    tls_sim: tuple[SimProcess, Path], tmp_path: Path
) -> None:
    sim, _ = tls_sim
    config = tmp_path / "config.toml"
    config.write_text("[erp]\nverify_tls = false\n")
    env = dict(cli_env(sim), PASSWEB_TUI_CONFIG=str(config))
    done = cli("--db", f"sqlite:///{tmp_path / 's.db'}", "check", env=env)
    assert done.returncode == 0, done.stderr
    assert "TLS certificate verification is OFF" in done.stderr and str(config) in done.stderr
    doctor = cli("--db", f"sqlite:///{tmp_path / 's.db'}", "doctor", env=env)
    assert "WARN TLS: certificate verification is OFF" in doctor.stdout


# --- doctor ------------------------------------------------------------------------


def lines_of(out: str) -> dict[str, str]:
    """`STATUS what: detail` lines by `what`."""
    found = {}
    for line in out.splitlines():
        status, _, rest = line.partition(" ")
        if status in ("OK", "WARN", "FAIL"):
            found[rest.strip().split(":", 1)[0]] = status
    return found


def test_doctor_reports_each_check(secret_sim: SimProcess, tmp_path: Path) -> None:
    """Each check of `doctor`, OK and failing. The first run is the real command; the
    others run its entry point in this process (the same code, without an interpreter
    start each time)."""
    env = cli_env(secret_sim)
    db = f"sqlite:///{tmp_path / 'store.db'}"
    fresh = cli("--db", db, "doctor", env=env)
    assert fresh.returncode == 0, fresh.stdout
    assert lines_of(fresh.stdout) == {
        "config file": "OK", "settings": "OK", "store": "WARN", "sync lock": "OK",
        "TLS": "OK", "ERP reachable": "OK", "ERP login": "OK", "mail": "OK",
        "disk space": "OK", "log file": "OK",
    }  # fmt: skip
    assert fresh.stdout.rstrip().endswith("doctor: all checks passed (1 warning)")
    assert cli_here("--db", db, "sync", "total", env=env).returncode == 0
    synced = cli_here("--db", db, "doctor", env=env)
    assert synced.returncode == 0 and "OK   store:" in synced.stdout
    assert synced.stdout.rstrip().endswith("doctor: all checks passed")
    assert "schema current" in synced.stdout and "OK   sync lock: free" in synced.stdout

    # a lease held by a live run: doctor names the holder and since when
    engine = open_engine(db, secret_sim)
    secret_sim.admin("PUT", "faults", json={"latency_ms": 1500})  # a run that lasts
    try:
        handle = engine.start_run("total")
        info = engine.lease()
        assert info is not None
        held = cli_here("--db", db, "doctor", env=env)
        assert f"OK   sync lock: held: run {handle.run_id} (held by {info.who})" in held.stdout
        assert f"since {info.started_at.isoformat(timespec='seconds')}" in held.stdout
        handle.cancel()
        handle.wait(60)
    finally:
        secret_sim.admin("DELETE", "faults")
        engine.close()

    # wrong password, unreachable ERP, unreadable store, unreadable config: each a FAIL
    wrong = cli_here("--db", db, "doctor", env=dict(env, PASSWEB_TUI_ERP_PASSWORD="nope"))
    assert wrong.returncode == 1 and lines_of(wrong.stdout)["ERP login"] == "FAIL"
    assert wrong.stdout.rstrip().endswith("doctor: 1 check failed, 0 warnings")
    assert "nope" not in wrong.stdout
    gone = cli_here(
        "--db", db, "doctor", env=dict(env, PASSWEB_TUI_ERP_URL="http://127.0.0.1:9/webapi")
    )
    assert gone.returncode == 1 and lines_of(gone.stdout)["ERP reachable"] == "FAIL"
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"this is not a database" * 100)
    broken = cli_here("--db", f"sqlite:///{junk}", "doctor", env=env)
    assert broken.returncode == 1 and lines_of(broken.stdout)["store"] == "FAIL"
    config = tmp_path / "config.toml"
    config.write_text("[erp\n")
    bad_cfg = cli_here("--db", db, "doctor", env=dict(env, PASSWEB_TUI_CONFIG=str(config)))
    # a configuration error, as for every command; the file's own line says it too
    assert bad_cfg.returncode == 2 and lines_of(bad_cfg.stdout)["settings"] == "FAIL"
    assert lines_of(bad_cfg.stdout)["config file"] == "FAIL"
    assert "not valid TOML" in bad_cfg.stdout and "doctor: 2 checks failed" in bad_cfg.stdout
    config.chmod(0o644)  # readable by others: not "OK, it holds no secret" when unreadable
    bad_cfg = cli_here("--db", db, "doctor", env=dict(env, PASSWEB_TUI_CONFIG=str(config)))
    assert lines_of(bad_cfg.stdout)["config file"] == "FAIL", bad_cfg.stdout
    assert "holds no secret" not in bad_cfg.stdout
    config.write_text("[sync]\nlease_seconds = 5\n")
    config.chmod(0o644)
    loose = cli_here("--db", db, "doctor", env=dict(env, PASSWEB_TUI_CONFIG=str(config)))
    # readable by others but holding no secret (deploy.md installs it so): nothing wrong
    assert loose.returncode == 0 and lines_of(loose.stdout)["config file"] == "OK"
    assert "holds no secret" in loose.stdout
    config.write_text('[erp]\npassword = "pw"\n')
    config.chmod(0o640)
    leaky = cli_here("--db", db, "doctor", env=dict(env, PASSWEB_TUI_CONFIG=str(config)))
    assert leaky.returncode == 2 and lines_of(leaky.stdout)["config file"] == "FAIL"
    assert "holds a password but is readable by others (mode 640)" in leaky.stdout
    config.write_text("[sync]\nlease_seconds = 5\n")
    config.chmod(0o620)  # not readable by others, but they can change it
    writable = cli_here("--db", db, "doctor", env=dict(env, PASSWEB_TUI_CONFIG=str(config)))
    assert lines_of(writable.stdout)["config file"] == "WARN"
    assert "can be changed by others (mode 620)" in writable.stdout
    if os.geteuid() != 0:  # root reads any file
        config.chmod(0o000)
        unreadable = cli_here("--db", db, "doctor", env=dict(env, PASSWEB_TUI_CONFIG=str(config)))
        assert lines_of(unreadable.stdout)["config file"] == "FAIL"


def test_a_private_ca_without_key_usage_is_taken_under_strict_checks(
    tls_sim: tuple[SimProcess, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Python 3.13 turns on OpenSSL's strict X.509 checks by default, which refuse a CA
    with no key usage extension (what a plain `openssl req -x509` makes, as above): the
    CA file of one's own ERP is taken all the same, on every Python the tool runs on."""
    sim, ca = tls_sim
    default_context = tls.create_default_context

    def as_on_313(*args: Any, **kw: Any) -> tls.SSLContext:
        context = default_context(*args, **kw)
        context.verify_flags |= tls.VERIFY_X509_STRICT
        return context

    monkeypatch.setattr(tls, "create_default_context", as_on_313)
    base = ErpConfig(
        base_url=sim.url, user=sim.user, password=sim.password, azienda=sim.azienda, anno=sim.anno
    )
    with MexalClient(dataclasses.replace(base, ca_file=str(ca), max_retries=0)) as client:
        assert client.check()["azienda"] == sim.azienda
    # and the chain is still verified: without the CA file, refused
    with (
        MexalClient(dataclasses.replace(base, max_retries=0)) as client,
        pytest.raises(ErpConnectionError, match="certificate"),
    ):
        client.check()
