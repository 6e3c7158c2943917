#!/usr/bin/env python3
"""Writes relying-party/src/openapi.json (served at /openapi.json). Edit the tables here and
rerun; relying-party/tests/openapi.rs checks the document against the router and the source."""

import json
from pathlib import Path

OUT = Path(__file__).resolve().parents[1] / "src" / "openapi.json"

B64 = {"type": "string", "pattern": "^[A-Za-z0-9_-]*={0,2}$", "description": "base64url"}


def ref(name):
    return {"$ref": f"#/components/schemas/{name}"}


VERIFY_CODES = [
    "malformed_response", "wrong_credential_type", "credential_mismatch", "client_data_malformed",
    "wrong_ceremony_type", "challenge_mismatch", "origin_not_allowed", "cross_origin_not_allowed",
    "authenticator_data_malformed", "rp_id_hash_mismatch", "user_not_present",
    "user_verification_missing", "user_handle_mismatch", "bad_signature", "counter_regression",
    "backup_eligibility_changed",
]
CEREMONY_CODES = ["unknown_challenge", "challenge_expired", "wrong_ceremony", "wrong_ceremony_type",
                  "origin_not_allowed", "client_data_malformed"]
SIGN_IN_CODES = sorted(set(VERIFY_CODES + CEREMONY_CODES + [
    "unknown_credential", "credential_not_allowed", "user_handle_missing", "concurrent_use",
]))
REGISTER_CODES = sorted(set(CEREMONY_CODES + [
    "malformed_response", "wrong_credential_type", "wrong_user", "challenge_mismatch",
    "rp_id_hash_mismatch", "user_not_present", "user_verification_missing", "credential_excluded",
    "unsupported_algorithm", "cross_origin_not_allowed", "attestation_invalid",
    "registration_rejected", "credential_already_registered", "not_signed_in",
]))
BODY_CODES = ["unsupported_media_type", "body_too_large", "unreadable_body"]

# path, method, operationId, summary, request schema or None, response schema, error codes,
# auth ("session", "bearer", None), rate limited
ROUTES = [
    ("/healthz", "get", "healthz", "Liveness: the process answers.", None, "Health", [], None, False),
    ("/readyz", "get", "readyz", "Readiness: the database answers and the schema is current.", None, "Ready",
     ["database_unavailable"], None, False),
    ("/openapi.json", "get", "openapi", "This document.", None, "Any", [], None, False),
    ("/api/register/options", "post", "registerOptions",
     "Begin a registration: a new account, or (with a session) another passkey for it.",
     "RegisterOptionsRequest", "PublicKeyCredentialCreationOptionsJSON",
     ["invalid_username", "username_taken", "invalid_option", "malformed_request"] + BODY_CODES, None, True),
    ("/api/register/verify", "post", "registerVerify",
     "Finish a registration; a new account also gets a session cookie.",
     "RegistrationResponseJSON", "RegistrationResult", REGISTER_CODES + BODY_CODES, None, False),
    ("/api/login/options", "post", "loginOptions",
     "Begin a sign-in with a username, or without (discoverable: autofill / conditional UI). An empty body means discoverable.",
     "LoginOptionsRequest", "PublicKeyCredentialRequestOptionsJSON",
     ["unknown_user", "no_credentials", "invalid_option", "malformed_request"] + BODY_CODES, None, True),
    ("/api/login/verify", "post", "loginVerify", "Finish a sign-in; sets the session cookie.",
     "AuthenticationResponseJSON", "AuthenticationResult", SIGN_IN_CODES + BODY_CODES, None, False),
    ("/api/logout", "post", "logout", "End the session (the cookie is cleared).", None, "SignedOut",
     [], None, False),
    ("/api/session", "get", "session", "The signed-in user and session.", None, "Session",
     ["not_signed_in"], "session", False),
    ("/api/credentials", "get", "listCredentials", "The signed-in user's passkeys.", None,
     "CredentialList", ["not_signed_in"], "session", False),
    ("/api/credentials/{id}", "patch", "renameCredential", "Rename a passkey.", "RenameRequest",
     "Renamed", ["not_signed_in", "invalid_name", "unknown_credential", "malformed_request"] + BODY_CODES,
     "session", False),
    ("/api/credentials/{id}", "delete", "deleteCredential",
     "Delete a passkey. Needs a user verification within step_up_max_age_secs (re-auth) and refuses the last passkey.",
     None, "Deleted", ["not_signed_in", "step_up_required", "unknown_credential", "last_credential"],
     "session", False),
    ("/api/reauth/options", "post", "reauthOptions",
     "Begin a re-authentication (step-up) of the signed-in user.", None,
     "PublicKeyCredentialRequestOptionsJSON", ["not_signed_in", "no_credentials"], "session", True),
    ("/api/reauth/verify", "post", "reauthVerify", "Finish a re-authentication; marks the session verified now.",
     "AuthenticationResponseJSON", "Verified", SIGN_IN_CODES + ["not_signed_in"] + BODY_CODES, "session", False),
    ("/api/actions/options", "post", "actionOptions",
     "Begin a signed action: the challenge is a 16-byte nonce followed by SHA-256 of the payload's UTF-8 bytes.",
     "ActionRequest", "ActionOptions",
     ["not_signed_in", "missing_payload", "invalid_payload", "malformed_request"] + BODY_CODES, "session", True),
    ("/api/actions/verify", "post", "actionVerify",
     "Finish a signed action: verifies the assertion and returns a signed receipt.",
     "AuthenticationResponseJSON", "ActionResult", SIGN_IN_CODES + ["not_signed_in"] + BODY_CODES,
     "session", False),
    ("/api/receipts/key", "get", "receiptKey", "The public key that signs receipts (JWK and SPKI).", None,
     "ReceiptKey", [], None, False),
    ("/api/receipts/verify", "post", "verifyReceipt", "Check a receipt's signature with the server's key.",
     "ReceiptVerifyRequest", "ReceiptValidity", ["malformed_request"] + BODY_CODES, None, False),
    ("/api/receipts/{id}", "get", "getReceipt", "A stored receipt, byte for byte as issued.", None,
     "SignedReceipt", ["unknown_receipt"], None, False),
    ("/api/verify/assertion", "post", "verifyAssertion",
     "Stateless assertion verification for other backends: a stored credential record, an AuthenticationResponseJSON and what was expected in; a typed verdict out. Nothing is stored.",
     "VerifyAssertionRequest", "VerifyAssertionResult",
     sorted(set(VERIFY_CODES + ["invalid_api_token", "bad_public_key", "malformed_request"] + BODY_CODES)),
     "bearer", False),
    ("/attestation/options", "post", "fidoAttestationOptions",
     "FIDO conformance-server shape of /api/register/options (adds status and errorMessage).",
     "RegisterOptionsRequest", "ConformanceOptions", ["status: failed"], None, True),
    ("/attestation/result", "post", "fidoAttestationResult",
     "FIDO conformance-server shape of /api/register/verify.", "RegistrationResponseJSON",
     "ConformanceStatus", ["status: failed"], None, False),
    ("/assertion/options", "post", "fidoAssertionOptions",
     "FIDO conformance-server shape of /api/login/options.", "LoginOptionsRequest", "ConformanceOptions",
     ["status: failed"], None, True),
    ("/assertion/result", "post", "fidoAssertionResult",
     "FIDO conformance-server shape of /api/login/verify.", "AuthenticationResponseJSON",
     "ConformanceStatus", ["status: failed"], None, False),
]

obj = lambda props, required=(), **kw: {"type": "object", "properties": props, "required": list(required), **kw}

SCHEMAS = {
    "Any": {"type": "object"},
    "Error": obj({"error": obj({"code": {"type": "string", "description": "Stable machine-readable reason; see x-error-codes on each operation."},
                                "message": {"type": "string", "description": "For people; may change."}},
                               ["code", "message"])}, ["error"]),
    "Health": obj({"status": {"const": "ok"}}, ["status"]),
    "Ready": obj({"status": {"const": "ready"}, "database": {"enum": ["sqlite", "postgres"]},
                  "schemaVersion": {"type": "integer"}}, ["status", "database"]),
    "RegisterOptionsRequest": obj({"username": {"type": "string", "maxLength": 64},
                                   "displayName": {"type": "string"},
                                   "attestation": {"enum": ["none", "indirect", "direct", "enterprise"]}}),
    "LoginOptionsRequest": obj({"username": {"type": "string"},
                                "userVerification": {"enum": ["required", "preferred", "discouraged"]}}),
    "RenameRequest": obj({"name": {"type": "string", "minLength": 1, "maxLength": 64}}, ["name"]),
    "ActionRequest": obj({"payload": {"description": "A string (used as is) or any JSON value (serialised); 1 to 8192 bytes."}}, ["payload"]),
    "ReceiptVerifyRequest": obj({"receiptJson": {"type": "string"}, "signature": B64}, ["receiptJson", "signature"]),
    "PublicKeyCredentialDescriptorJSON": obj({"type": {"const": "public-key"}, "id": B64,
                                              "transports": {"type": "array", "items": {"type": "string"}}}, ["type", "id"]),
    "PublicKeyCredentialCreationOptionsJSON": obj({
        "rp": obj({"id": {"type": "string"}, "name": {"type": "string"}}, ["name"]),
        "user": obj({"id": B64, "name": {"type": "string"}, "displayName": {"type": "string"}}, ["id", "name", "displayName"]),
        "challenge": B64,
        "pubKeyCredParams": {"type": "array", "items": obj({"type": {"const": "public-key"}, "alg": {"type": "integer"}})},
        "timeout": {"type": "integer"},
        "excludeCredentials": {"type": "array", "items": ref("PublicKeyCredentialDescriptorJSON")},
        "authenticatorSelection": obj({"residentKey": {"type": "string"}, "requireResidentKey": {"type": "boolean"},
                                       "userVerification": {"type": "string"}, "authenticatorAttachment": {"type": "string"}}),
        "attestation": {"type": "string"},
        "extensions": {"type": "object"},
    }, ["rp", "user", "challenge", "pubKeyCredParams"]),
    "PublicKeyCredentialRequestOptionsJSON": obj({
        "challenge": B64, "timeout": {"type": "integer"}, "rpId": {"type": "string"},
        "allowCredentials": {"type": "array", "items": ref("PublicKeyCredentialDescriptorJSON")},
        "userVerification": {"type": "string"}, "extensions": {"type": "object"},
    }, ["challenge"]),
    "RegistrationResponseJSON": obj({
        "id": B64, "rawId": B64, "type": {"const": "public-key"},
        "authenticatorAttachment": {"type": "string"},
        "clientExtensionResults": {"type": "object"},
        "response": obj({"clientDataJSON": B64, "attestationObject": B64, "authenticatorData": B64,
                         "transports": {"type": "array", "items": {"type": "string"}},
                         "publicKey": B64, "publicKeyAlgorithm": {"type": "integer"}},
                        ["clientDataJSON", "attestationObject"]),
    }, ["id", "rawId", "type", "response"]),
    "AuthenticationResponseJSON": obj({
        "id": B64, "rawId": B64, "type": {"const": "public-key"},
        "authenticatorAttachment": {"type": ["string", "null"]},
        "clientExtensionResults": {"type": "object"},
        "response": obj({"clientDataJSON": B64, "authenticatorData": B64, "signature": B64,
                         "userHandle": {"type": ["string", "null"]}},
                        ["clientDataJSON", "authenticatorData", "signature"]),
    }, ["id", "rawId", "type", "response"]),
    "User": obj({"id": B64, "name": {"type": "string"}, "displayName": {"type": "string"}}, ["id", "name", "displayName"]),
    "Credential": obj({
        "id": B64, "name": {"type": "string"}, "algorithm": {"type": "integer"},
        "createdAt": {"type": "integer", "description": "unix ms"},
        "lastUsedAt": {"type": ["integer", "null"], "description": "unix ms"},
        "backupEligible": {"type": "boolean"}, "backupState": {"type": "boolean"},
        "deviceType": {"enum": ["singleDevice", "multiDevice"]},
        "transports": {"type": "array", "items": {"type": "string"}},
        "aaguid": {"type": "string"}, "authenticator": {"type": "string", "description": "Name for the AAGUID"},
        "signCount": {"type": "integer"}, "counterRegressions": {"type": "integer"},
        "current": {"type": "boolean", "description": "In the list: the credential of this session"},
    }, ["id", "name", "deviceType", "aaguid", "signCount"]),
    "CredentialList": obj({"credentials": {"type": "array", "items": ref("Credential")}}, ["credentials"]),
    "Verdict": obj({
        "credentialId": B64, "userHandle": {"type": ["string", "null"]},
        "userPresent": {"type": "boolean"}, "userVerified": {"type": "boolean"},
        "backupEligible": {"type": "boolean"}, "backupState": {"type": "boolean"},
        "signCount": {"type": "integer"},
        "counter": obj({"status": {"enum": ["notSupported", "increased", "regressed"]},
                        "stored": {"type": "integer"}, "received": {"type": "integer"}}, ["status"]),
        "origin": {"type": "string"},
    }, ["credentialId", "userPresent", "userVerified", "signCount", "counter", "origin"]),
    "RegistrationResult": obj({"verified": {"const": True}, "user": ref("User"), "credential": ref("Credential")},
                              ["verified", "user", "credential"]),
    "AuthenticationResult": obj({"verified": {"const": True}, "user": ref("User"), "credential": ref("Credential"),
                                 "verdict": ref("Verdict")}, ["verified", "user", "credential", "verdict"]),
    "Verified": obj({"verified": {"const": True}, "verdict": ref("Verdict")}, ["verified", "verdict"]),
    "SignedOut": obj({"signedOut": {"const": True}}, ["signedOut"]),
    "Session": obj({"user": ref("User")}, ["user"]),
    "Renamed": obj({"id": B64, "name": {"type": "string"}}, ["id", "name"]),
    "Deleted": obj({"deleted": B64}, ["deleted"]),
    "ActionOptions": obj({"publicKey": ref("PublicKeyCredentialRequestOptionsJSON"), "payload": {"type": "string"}},
                         ["publicKey", "payload"]),
    "Receipt": obj({
        "type": {"const": "passgate.action-receipt.v1"}, "id": B64, "rpId": {"type": "string"},
        "userId": B64, "userName": {"type": "string"}, "credentialId": B64,
        "credentialPublicKey": {**B64, "description": "COSE key, base64url"},
        "payload": {"type": "string"}, "payloadSha256": B64,
        "challenge": {**B64, "description": "16-byte nonce || payloadSha256"},
        "approvedAt": {"type": "integer", "description": "unix ms"},
        "userVerified": {"type": "boolean"}, "origin": {"type": "string"},
        "assertion": obj({"authenticatorData": B64, "clientDataJSON": B64, "signature": B64}),
    }),
    "SignedReceipt": obj({"receipt": ref("Receipt"),
                          "receiptJson": {"type": "string", "description": "The exact bytes signed (UTF-8)"},
                          "signature": {**B64, "description": "ES256 (ASN.1 DER) over receiptJson"},
                          "keyId": {"type": "string"}}, ["receipt", "receiptJson", "signature", "keyId"]),
    "ActionResult": obj({"verified": {"const": True}, "receipt": ref("SignedReceipt")}, ["verified", "receipt"]),
    "ReceiptKey": obj({"keyId": {"type": "string"}, "alg": {"const": "ES256"}, "jwk": {"type": "object"},
                       "spki": B64}, ["keyId", "alg", "jwk", "spki"]),
    "ReceiptValidity": obj({"valid": {"type": "boolean"}, "keyId": {"type": "string"}}, ["valid", "keyId"]),
    "VerifyAssertionRequest": obj({
        "credential": obj({"id": B64, "publicKey": {**B64, "description": "COSE_Key"},
                           "signCount": {"type": "integer", "default": 0}, "userHandle": B64,
                           "backupEligible": {"type": "boolean", "description": "BE at registration; checked when given"}},
                          ["id", "publicKey", "userHandle"]),
        "response": ref("AuthenticationResponseJSON"),
        "expectedChallenge": B64,
        "expectedOrigins": {"type": "array", "items": {"type": "string"}},
        "expectedRpId": {"type": "string"},
        "requireUserVerification": {"type": "boolean", "default": True},
        "counterPolicy": {"enum": ["reject", "report"], "default": "reject"},
        "allowCrossOrigin": {"type": "boolean", "default": False},
    }, ["credential", "response", "expectedChallenge", "expectedOrigins", "expectedRpId"]),
    "VerifyAssertionResult": obj({"verified": {"const": True}, "verdict": ref("Verdict")}, ["verified", "verdict"]),
    "ConformanceOptions": {"allOf": [ref("ConformanceStatus"), {"type": "object"}]},
    "ConformanceStatus": obj({"status": {"enum": ["ok", "failed"]}, "errorMessage": {"type": "string"}},
                             ["status", "errorMessage"]),
}


def error_response(description):
    return {"description": description, "content": {"application/json": {"schema": ref("Error")}}}


def operation(path, method, op_id, summary, request, response, codes, auth, limited):
    op = {"operationId": op_id, "summary": summary, "responses": {
        "200": {"description": "OK", "content": {"application/json": {"schema": ref(response)}}}}}
    if "{id}" in path:
        op["parameters"] = [{"name": "id", "in": "path", "required": True, "schema": B64}]
    if request:
        op["requestBody"] = {"required": request not in ("LoginOptionsRequest",),
                             "content": {"application/json": {"schema": ref(request)}}}
    error_codes = [c for c in codes if not c.startswith("status")]
    if path.startswith("/attestation") or path.startswith("/assertion"):
        op["responses"]["400"] = {"description": "status: failed, errorMessage starts with the error code",
                                  "content": {"application/json": {"schema": ref("ConformanceStatus")}}}
    elif error_codes:
        op["responses"]["4XX"] = error_response("A client error; `error.code` is one of x-error-codes")
        op["x-error-codes"] = sorted(set(error_codes))
    if request:
        op["responses"]["413"] = error_response("body_too_large")
        op["responses"]["415"] = error_response("unsupported_media_type: send application/json")
    if limited:
        op["responses"]["429"] = error_response("rate_limited: too many option requests from this address")
    if auth == "session":
        op["security"] = [{"session": []}]
        op["responses"]["401"] = error_response("not_signed_in")
    elif auth == "bearer":
        op["security"] = [{"apiToken": []}]
        op["responses"]["401"] = error_response("invalid_api_token")
    return op


def main():
    paths = {}
    for path, method, *rest in ROUTES:
        paths.setdefault(path, {})[method] = operation(path, method, *rest)
    doc = {
        "openapi": "3.1.0",
        "info": {
            "title": "passgate relying party",
            "version": "0.1.0",
            "description": "Passkey ceremonies, sessions, signed actions with receipts, and assertion verification for other backends. Every error is a 4xx/5xx with {\"error\":{\"code\",\"message\"}}; a rejected request changes nothing stored. Request bodies must be application/json.",
        },
        "paths": paths,
        "components": {
            "schemas": SCHEMAS,
            "securitySchemes": {
                "session": {"type": "apiKey", "in": "cookie", "name": "passgate_session",
                            "description": "HttpOnly, Secure, SameSite=Strict session cookie set by the verify endpoints"},
                "apiToken": {"type": "http", "scheme": "bearer",
                             "description": "A token from the api_tokens setting (--api-token)"},
            },
        },
    }
    OUT.write_text(json.dumps(doc, indent=1, sort_keys=False) + "\n")


if __name__ == "__main__":
    main()
