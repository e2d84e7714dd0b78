"""`azure-imds-token probe`: the doctor's report for healthy, refused, blackholed, silent and
proxied endpoints, as text and as JSON."""

from __future__ import annotations

import json
from typing import Any

import pytest

from azure_imds_credential.testing import Identity, ImdsEmulator, SilentServer, dropped_syn_endpoint
from tests.helpers.servers import RecordingProxy, free_port

from ._run import assert_no_token_on_stderr, run_cli

REPORT_KEYS = {"endpoint", "proxy", "connect", "answer", "identity", "findings", "verdict", "exit_code"}


def _probe_json(*args: str, env: dict[str, str] | None = None) -> tuple[int, dict[str, Any], str]:
    result = run_cli("probe", "--json", *args, env=env)
    report = json.loads(result.stdout)
    assert set(report) == REPORT_KEYS
    assert report["exit_code"] == result.returncode
    for finding in report["findings"]:
        assert set(finding) == {"severity", "problem", "fix"}
        assert finding["severity"] in {"error", "warning", "info"}
        assert finding["fix"]
    return result.returncode, report, result.stderr


def _errors(report: dict[str, Any]) -> list[dict[str, str]]:
    return [finding for finding in report["findings"] if finding["severity"] == "error"]


def test_probe_reports_a_healthy_imds_when_the_identity_is_available(emulator: ImdsEmulator) -> None:
    code, report, stderr = _probe_json("--endpoint", emulator.endpoint)

    assert code == 0
    assert report["verdict"] == "ok"
    assert report["endpoint"] == {"url": emulator.endpoint, "source": "option", "environment_override": None}
    assert report["connect"]["ok"] is True
    assert isinstance(report["connect"]["ms"], float)
    answer = report["answer"]
    assert answer["status"] == 400
    assert answer["imds_markers"] == {"server_header": True, "json_error": True}
    assert answer["server"].startswith("IMDS/")
    assert answer["looks_like_imds"] is True
    identity = report["identity"]
    assert identity["result"] == "available"
    assert identity["requested"] == "system-assigned"
    assert identity["client_id"] == Identity.system().client_id
    assert "access_token" not in json.dumps(report)
    assert report["findings"] == []
    assert_no_token_on_stderr(run_cli("probe", "--endpoint", emulator.endpoint), emulator.issued_tokens())
    assert emulator.issued_tokens()[0] not in json.dumps(report)
    assert stderr == ""


def test_probe_text_says_imds_looks_healthy_when_it_is(emulator: ImdsEmulator) -> None:
    result = run_cli("probe", "--endpoint", emulator.endpoint)

    assert result.returncode == 0, result.stderr
    assert "looks like IMDS" in result.stdout
    assert "available" in result.stdout
    assert "result: ok" in result.stdout
    for token in emulator.issued_tokens():
        assert token not in result.stdout


def test_probe_reports_refused_with_a_fix_when_nothing_listens() -> None:
    endpoint = f"http://127.0.0.1:{free_port()}"

    code, report, stderr = _probe_json("--endpoint", endpoint)

    assert code == 2
    assert report["verdict"] == "unavailable"
    assert report["connect"]["ok"] is False
    assert report["connect"]["error"] == "refused"
    assert report["identity"]["result"] == "skipped"
    errors = _errors(report)
    assert len(errors) == 1
    assert "connection refused" in errors[0]["problem"]
    assert "Azure" in errors[0]["fix"]
    assert stderr == ""


def test_probe_text_names_the_problem_and_fix_when_nothing_listens() -> None:
    result = run_cli("probe", "--endpoint", f"http://127.0.0.1:{free_port()}")

    assert result.returncode == 2
    assert "connection refused" in result.stdout
    assert "fix:" in result.stdout
    assert "Traceback" not in result.stderr


def test_probe_reports_dropped_packets_when_the_endpoint_is_blackholed() -> None:
    with dropped_syn_endpoint() as endpoint:
        if endpoint is None:
            pytest.skip("this host does not drop SYNs on a full accept queue")
        code, report, _ = _probe_json("--endpoint", endpoint)

    assert code == 2
    assert report["connect"]["error"] == "timeout"
    assert report["identity"]["result"] == "skipped"
    assert "packets dropped" in _errors(report)[0]["problem"]


def test_probe_reports_not_imds_when_a_server_accepts_but_never_answers() -> None:
    with SilentServer() as server:
        code, report, _ = _probe_json("--endpoint", server.endpoint)

    assert code == 2
    assert report["connect"]["ok"] is True
    assert report["answer"]["status"] is None
    assert report["identity"]["result"] == "skipped"
    assert "no answer" in _errors(report)[0]["problem"]


def test_probe_reports_not_imds_when_the_answer_lacks_imds_markers() -> None:
    # The recording proxy answers 502 with neither Server: IMDS/ nor IMDS's JSON error.
    with RecordingProxy() as foreign:
        code, report, _ = _probe_json("--endpoint", foreign.url, "--timeout", "2")

    assert code == 2
    assert report["answer"]["status"] == 502
    assert report["answer"]["imds_markers"] == {"server_header": False, "json_error": False}
    assert report["answer"]["looks_like_imds"] is False
    assert any("Docker Desktop" in finding["fix"] for finding in _errors(report))


def test_probe_reports_proxies_and_bypasses_them_when_proxy_variables_are_set(emulator: ImdsEmulator) -> None:
    with RecordingProxy() as proxy:
        env = {"HTTP_PROXY": proxy.url, "HTTPS_PROXY": proxy.url, "ALL_PROXY": proxy.url}
        code, report, stderr = _probe_json("--endpoint", emulator.endpoint, env=env)

        assert proxy.recorded == []
    assert code == 0
    assert report["proxy"]["variables"] == env
    assert report["proxy"]["bypassed"] is True
    assert report["proxy"]["no_proxy_covers_endpoint"] is False
    warnings = [finding for finding in report["findings"] if finding["severity"] == "warning"]
    assert len(warnings) == 1
    assert "HTTP_PROXY" in warnings[0]["problem"]
    assert "NO_PROXY" in warnings[0]["fix"]
    assert report["identity"]["result"] == "available"
    assert_no_token_on_stderr(
        run_cli("probe", "--endpoint", emulator.endpoint, env=env), emulator.issued_tokens()
    )
    assert stderr == ""


def test_probe_hides_proxy_credentials_when_the_proxy_url_has_them(emulator: ImdsEmulator) -> None:
    env = {"HTTPS_PROXY": "http://user:s3cret@127.0.0.1:9", "NO_PROXY": "localhost,127.0.0.1"}

    result = run_cli("probe", "--endpoint", emulator.endpoint, env=env)

    assert result.returncode == 0, result.stderr
    assert "s3cret" not in result.stdout + result.stderr
    assert "HTTPS_PROXY=http://***@127.0.0.1:9" in result.stdout
    assert "[warning]" not in result.stdout


def test_probe_notes_the_override_when_the_endpoint_comes_from_the_environment(
    emulator: ImdsEmulator,
) -> None:
    code, report, _ = _probe_json(env={"AZURE_POD_IDENTITY_AUTHORITY_HOST": emulator.endpoint})

    assert code == 0
    assert report["endpoint"]["source"] == "environment"
    assert report["endpoint"]["url"] == emulator.endpoint
    infos = [finding for finding in report["findings"] if finding["severity"] == "info"]
    assert any("AZURE_POD_IDENTITY_AUTHORITY_HOST" in finding["problem"] for finding in infos)


def test_probe_reports_a_missing_identity_with_a_fix_when_imds_does_not_know_it(
    emulator: ImdsEmulator,
) -> None:
    missing = Identity.user_assigned("missing").client_id

    code, report, _ = _probe_json("--endpoint", emulator.endpoint, "--client-id", missing)

    assert code == 2
    assert report["answer"]["looks_like_imds"] is True
    identity = report["identity"]
    assert identity["result"] == "unavailable"
    assert identity["requested"] == f"client_id={missing}"
    assert identity["status"] == 400
    errors = _errors(report)
    assert len(errors) == 1
    assert "Identity not found" in errors[0]["problem"]
    assert "az vm identity assign" in errors[0]["fix"]


def test_probe_exits_64_when_two_identities_are_given() -> None:
    result = run_cli("probe", "--client-id", "a", "--msi-res-id", "b", "--endpoint", "http://127.0.0.1:9")

    assert result.returncode == 64
    assert "not allowed with" in result.stderr
    assert result.stdout == ""
