"""MexalClient over HTTPS against the simulator with a self-signed certificate,
as an on-premises Mexal usually has: the CA file, the verify flag, bad CA files.
"""

from __future__ import annotations

import dataclasses
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import certifi
import pytest
from conftest import SimProcess, start_sim

from passweb_tui.engine.erp.client import MexalClient
from passweb_tui.engine.erp.errors import ErpConnectionError
from passweb_tui.engine.erp.settings import ErpConfig

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="needs openssl")


@pytest.fixture(scope="module")
def tls_sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[SimProcess, Path]]:
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
            "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "2",
            "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip
    p = start_sim("--articles", "50", "--customers", "5", "--orders", "1", "--tls-cert", str(cert),
                  "--tls-key", str(key))  # fmt: skip
    try:
        yield p, cert
    finally:
        p.stop()


def config_for(s: SimProcess, **overrides: object) -> ErpConfig:
    base = ErpConfig(
        base_url=s.url, user=s.user, password=s.password, azienda=s.azienda, anno=s.anno
    )
    return dataclasses.replace(base, **{"max_retries": 0, **overrides})  # type: ignore[arg-type]


def test_https_with_the_erp_certificate_as_ca_file(tls_sim: tuple[SimProcess, Path]) -> None:
    s, cert = tls_sim
    assert s.url.startswith("https://")
    with MexalClient(config_for(s, ca_file=str(cert))) as client:
        assert client.check()["azienda"] == s.azienda


def test_unknown_certificate_is_refused_with_a_clear_reason(
    tls_sim: tuple[SimProcess, Path],
) -> None:
    s, _ = tls_sim
    slept: list[float] = []
    config = config_for(s, max_retries=3)
    with (
        MexalClient(config, sleep=slept.append) as client,
        pytest.raises(ErpConnectionError) as err,
    ):
        client.check()
    assert "TLS certificate" in str(err.value) and "--ca-file" in str(err.value)
    assert not err.value.retryable and slept == []  # retrying cannot fix a certificate


def test_a_ca_file_that_does_not_vouch_is_named_not_asked_for(
    tls_sim: tuple[SimProcess, Path],
) -> None:
    """With a CA file given (the public CAs' bundle here), the refusal names it rather
    than telling the operator to give one."""
    s, _ = tls_sim
    with (
        MexalClient(config_for(s, ca_file=certifi.where())) as client,
        pytest.raises(ErpConnectionError) as err,
    ):
        client.check()
    said = str(err.value)
    assert f"the CA file {certifi.where()!r} does not vouch for it" in said
    assert "give its CA" not in said


def test_verification_can_be_switched_off(tls_sim: tuple[SimProcess, Path]) -> None:
    s, _ = tls_sim
    with MexalClient(config_for(s, verify_tls=False)) as client:
        assert client.list_page("articoli", max=3).records


def test_unusable_ca_file_is_named(tmp_path: Path) -> None:
    bad = tmp_path / "not-a-cert.pem"
    bad.write_text("hello")
    config = ErpConfig(base_url="https://127.0.0.1:1/webapi", user="u", password="p", azienda="A")
    for path in (bad, tmp_path / "missing.pem"):
        with pytest.raises(ErpConnectionError, match="CA file") as err:
            MexalClient(dataclasses.replace(config, ca_file=str(path)))
        assert str(path) in str(err.value)


def test_https_to_a_plain_http_erp_says_so_not_to_give_a_ca_file() -> None:
    """An https:// URL on a port that serves plain HTTP: no CA file helps, the scheme does."""
    s = start_sim("--articles", "5", "--customers", "1", "--orders", "0")
    try:
        config = config_for(s, base_url=s.url.replace("http://", "https://", 1), max_retries=3)
        slept: list[float] = []
        with (
            MexalClient(config, sleep=slept.append) as client,
            pytest.raises(ErpConnectionError) as err,
        ):
            client.check()
    finally:
        s.stop()
    said = str(err.value)
    assert "does not speak TLS" in said and "should start with http://" in said, said
    assert "--ca-file" not in said
    assert not err.value.retryable and slept == []


def test_a_cancel_cuts_short_a_read_over_tls(tls_sim: tuple[SimProcess, Path]) -> None:
    """The socket a TLS connection is made of is the one shut down: a read waiting for
    a slow ERP over HTTPS ends at once too."""
    import contextvars
    import ssl
    import threading
    import time

    from passweb_tui.engine.erp import client as client_module
    from passweb_tui.engine.erp.client import READS_CUT_BY, cut_reads
    from passweb_tui.engine.erp.errors import ReadsCutShortError

    s, cert = tls_sim
    cancel = threading.Event()
    out: dict[str, object] = {}
    with MexalClient(config_for(s, ca_file=str(cert))) as client:
        client.check()  # the connection is open and its TLS made
        s.admin(
            "PUT",
            "faults",
            json={"latency_ms": 60_000},
            verify=ssl.create_default_context(cafile=str(cert)),
        )
        try:

            def read() -> None:
                READS_CUT_BY.set(cancel)
                try:
                    out["value"] = client.check()
                except Exception as exc:
                    out["error"] = exc

            thread = threading.Thread(target=contextvars.copy_context().run, args=(read,))
            thread.start()
            deadline = time.monotonic() + 10
            while not client_module._READING:  # until the read of its answer blocks
                assert time.monotonic() < deadline, "no read blocked"
                time.sleep(0.01)
            cancel.set()
            assert cut_reads(cancel) == 1
            thread.join(5)
            assert not thread.is_alive(), "the read over TLS was not cut short"
        finally:
            s.admin("DELETE", "faults", verify=ssl.create_default_context(cafile=str(cert)))
    assert isinstance(out.get("error"), ReadsCutShortError), out


def test_the_setup_does_not_save_plain_http_to_a_tls_erp(
    tls_sim: tuple[SimProcess, Path],
) -> None:
    """http:// to an ERP that serves HTTPS: it closes the request without a word, as a
    dropped connection does, and the setup saved the address as an ERP not answering
    now. A TLS handshake there tells them apart: not saved, and the URL to write said."""
    from passweb_tui.commands.ui import answered_otherwise
    from passweb_tui.screens.setup import test_connection

    sim, _ = tls_sim
    plain = sim.url.replace("https://", "http://")
    values = {"url": plain, "user": sim.user, "password": sim.password,
              "azienda": sim.azienda, "anno": sim.anno, "ca_file": None}  # fmt: skip
    with pytest.raises(ErpConnectionError) as err:
        test_connection(values)
    said = answered_otherwise(err.value, plain)
    assert said is not None and said.endswith("the URL should start with https://"), said
