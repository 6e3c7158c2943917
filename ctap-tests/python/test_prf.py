"""WebAuthn PRF end to end: python-fido2's PRF client extension over hmac-secret and
hmac-secret-mc, against passgate."""

import os

from fido2.client import DefaultClientDataCollector, Fido2Client
from fido2.server import Fido2Server
from fido2.utils import websafe_decode
from fido2.webauthn import PublicKeyCredentialRpEntity, PublicKeyCredentialUserEntity

from helpers import ORIGIN, RP_ID, _NoPrompt


def _client(passgate):
    return Fido2Client(passgate.device(), DefaultClientDataCollector(ORIGIN), user_interaction=_NoPrompt())


def _prf(result):
    return result.client_extension_results["prf"]


def _bytes(value):
    # Client extension results are in WebAuthn's JSON form: base64url text.
    return value if isinstance(value, bytes) else websafe_decode(value)


def test_prf_outputs_are_stable_per_salt_and_differ_across_salts(passgate):
    client = _client(passgate)
    server = Fido2Server(PublicKeyCredentialRpEntity(id=RP_ID, name="Example"))
    user = PublicKeyCredentialUserEntity(id=b"prf-user", name="prf")
    first_salt, other_salt = os.urandom(32), os.urandom(32)

    options, state = server.register_begin(user, resident_key_requirement="required", user_verification="discouraged")
    options = options.public_key
    # Ask for PRF, and evaluate it at creation (hmac-secret-mc).
    options = type(options).from_dict({**dict(options), "extensions": {"prf": {"eval": {"first": first_salt}}}})
    registration = client.make_credential(options)
    credential = server.register_complete(state, registration).credential_data
    created = _prf(registration)
    assert created["enabled"] is True
    at_creation = _bytes(created["results"]["first"])
    assert len(at_creation) == 32

    def evaluate(salt, second=None):
        request, st = server.authenticate_begin([credential], user_verification="discouraged")
        request = request.public_key
        ev = {"first": salt} if second is None else {"first": salt, "second": second}
        request = type(request).from_dict({**dict(request), "extensions": {"prf": {"eval": ev}}})
        response = client.get_assertion(request).get_response(0)
        server.authenticate_complete(st, [credential], response)
        return {k: _bytes(v) for k, v in _prf(response)["results"].items()}

    one = evaluate(first_salt)["first"]
    two = evaluate(first_salt)["first"]
    other = evaluate(other_salt)["first"]
    assert one == two, "same salt, same credential: same PRF output"
    assert one != other, "another salt gives another output"
    assert one == at_creation, "hmac-secret-mc matches a later evaluation without UV"
    both = evaluate(first_salt, other_salt)
    assert both["first"] == one and both["second"] == other

    # Survives a restart (the keys are stored encrypted with the credential).
    passgate.restart()
    client = _client(passgate)
    assert evaluate(first_salt)["first"] == one
