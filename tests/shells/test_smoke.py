from __future__ import annotations

from azure_imds_credential.testing import ImdsEmulator, decode_jwt_claims
from tests.conftest import Shell


def test_credential_returns_emulator_token_when_imds_healthy(shell: Shell, emulator: ImdsEmulator) -> None:
    cred = shell.credential(endpoint=emulator.endpoint)
    token = shell.call(cred.get_token, "https://storage.azure.com/.default")
    assert decode_jwt_claims(token.token)["aud"] == "https://storage.azure.com"
    info = shell.call(cred.get_token_info, "https://storage.azure.com/.default")
    assert info.token == token.token and info.refresh_on is not None
    assert len(emulator.token_requests) == 1
    assert emulator.token_requests[0].headers["metadata"] == "true"
