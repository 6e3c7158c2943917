"""The FIDO conformance server API (`/attestation/options` and friends) with the request bodies of
the FIDO conformance tools' server tests, driven by python-fido2's Fido2Client through our
authenticator WITHOUT a PIN: the options must honour the caller's authenticatorSelection,
attestation and extensions (echoed), so a client asking for `userVerification: discouraged` gets
options an authenticator without a PIN can satisfy; and `clientExtensionResults` entries of an
unexpected type (`{"credProtect": 2}`) or `null` are ignored, as sign-in already does."""

from __future__ import annotations

import pytest
from fido2.client import DefaultClientDataCollector, Fido2Client, UserInteraction

from helpers import ORIGIN
from rp_support import RpServer, b64u, create, get, response_json


class NoPin(UserInteraction):
    """A person at an authenticator without a PIN: presence only."""

    def request_pin(self, permissions, rp_id):
        raise AssertionError("the options asked for user verification the authenticator cannot do")


@pytest.fixture
def rp(tmp_path):
    # Registration and sign-in without UV: the server's policy allows it, the request chooses.
    server = RpServer(tmp_path, f"sqlite://{tmp_path}/rp.sqlite3", tmp_path / "receipt-key.p8",
                      extra=["--no-require-uv"])
    try:
        yield server
    finally:
        status = server.stop()
    assert status == 0, f"passgate rp exited with {status} on SIGTERM\n{server.log_tail()}"


def client(passgate) -> Fido2Client:
    return Fido2Client(passgate.device(), client_data_collector=DefaultClientDataCollector(ORIGIN),
                       user_interaction=NoPin())


# The conformance tools' ServerPublicKeyCredentialCreationOptionsRequest example (residentKey
# as the older boolean), with the userVerification the no-PIN case asks for.
CREATION_REQUEST = {
    "username": "johndoe@example.com",
    "displayName": "John Doe",
    "authenticatorSelection": {
        "residentKey": False,
        "authenticatorAttachment": "cross-platform",
        "userVerification": "discouraged",
    },
    "attestation": "direct",
    "extensions": {"example.extension": True},
}


@pytest.mark.timeout(120)
def test_options_honour_the_request_and_a_no_pin_authenticator_registers_and_signs_in(rp, passgate):
    conf = rp.browser()
    options = conf.post("/attestation/options", CREATION_REQUEST)
    assert options.status == 200 and options.body["status"] == "ok", options
    selection = options.body["authenticatorSelection"]
    assert selection == {
        "residentKey": "discouraged",
        "requireResidentKey": False,
        "userVerification": "discouraged",
        "authenticatorAttachment": "cross-platform",
    }, selection
    assert options.body["attestation"] == "direct"
    assert options.body["extensions"] == {"example.extension": True, "credProps": True}
    assert options.body["user"]["name"] == "johndoe@example.com"
    assert options.body["user"]["displayName"] == "John Doe"

    created = create(client(passgate), options.body)
    assert not created.response.attestation_object.auth_data.is_user_verified()
    response = response_json(created)
    # Unsigned client output of an unexpected type: ignored, not a failed registration.
    response["clientExtensionResults"] = {"credProtect": 2, "credProps": {"rk": False}}
    result = conf.post("/attestation/result", response)
    assert (result.status, result.body) == (200, {"status": "ok", "errorMessage": ""}), result

    # The conformance tools' ServerPublicKeyCredentialGetOptionsRequest example.
    options = conf.post("/assertion/options",
                        {"username": "johndoe@example.com", "userVerification": "discouraged"})
    assert options.status == 200 and options.body["status"] == "ok", options
    assert [c["id"] for c in options.body["allowCredentials"]] == [b64u(created.raw_id)]
    assertion = response_json(get(client(passgate), options.body))
    result = conf.post("/assertion/result", assertion)
    assert (result.status, result.body) == (200, {"status": "ok", "errorMessage": ""}), result


@pytest.mark.timeout(120)
def test_null_extension_results_register_and_required_uv_is_kept(rp, passgate):
    conf = rp.browser()
    options = conf.post("/attestation/options", {
        "username": "nulluser", "displayName": "Null User",
        "authenticatorSelection": {"requireResidentKey": False, "userVerification": "discouraged"},
        "attestation": "none",
    })
    assert options.status == 200, options
    assert options.body["authenticatorSelection"]["residentKey"] == "discouraged"
    created = create(client(passgate), options.body)
    response = response_json(created)
    response["clientExtensionResults"] = None
    result = conf.post("/attestation/result", response)
    assert (result.status, result.body) == (200, {"status": "ok", "errorMessage": ""}), result

    # Asking for UV the authenticator cannot give is refused before the person is asked.
    options = conf.post("/attestation/options", {
        "username": "uvuser", "authenticatorSelection": {"userVerification": "required"},
    })
    assert options.body["authenticatorSelection"]["userVerification"] == "required"
    # A bad value is named.
    bad = conf.post("/attestation/options", {
        "username": "baduser", "authenticatorSelection": {"userVerification": "sometimes"},
    })
    assert bad.status == 400 and bad.body["status"] == "failed", bad
    assert bad.body["errorMessage"].startswith("invalid_option:"), bad
