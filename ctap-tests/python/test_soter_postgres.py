"""SOTER verification on PostgreSQL with two `passgate rp` instances: a device registered on
one verifies on the other, a challenge is good once across both, and the same result raced
at both instances is accepted exactly once. The results are signed here with `cryptography`
(RSASSA-PSS, SHA-256, salt 20), as any SOTER client would."""

from __future__ import annotations

import base64
import json

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from rp_support import API_TOKEN, expect_error
from test_rp_postgres import cluster, pair, race  # noqa: F401  (fixtures: PostgreSQL, two instances)

BEARER = {"authorization": f"Bearer {API_TOKEN}"}
CPU_ID = "9f2c0b1e4d3a59687a6b5c4d3e2f1a0b"
UID = "com.example.pay"


class SoterDevice:
    def __init__(self) -> None:
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)

    def sign(self, text: str) -> str:
        signature = self.key.sign(text.encode(), padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=20),
                                  hashes.SHA256())
        return base64.b64encode(signature).decode()

    def registration(self, counter: int) -> dict:
        pem = self.key.public_key().public_bytes(serialization.Encoding.PEM,
                                                 serialization.PublicFormat.SubjectPublicKeyInfo).decode()
        key_json = json.dumps({"pub_key": pem, "cpu_id": CPU_ID, "counter": counter, "uid": UID},
                              separators=(",", ":"))
        return {"keyJson": key_json, "keyJsonSignature": self.sign(key_json)}

    def result(self, raw: str, counter: int) -> dict:
        text = json.dumps({"raw": raw, "fid": "1", "counter": counter, "tee_n": "t", "tee_v": "1",
                           "fp_n": "f", "fp_v": "1", "cpu_id": CPU_ID, "uid": UID}, separators=(",", ":"))
        return {"resultJSON": text, "resultJSONSignature": self.sign(text)}


def test_soter_verification_across_instances_on_postgresql(pair):  # noqa: F811
    a, b = pair
    on_a, on_b = a.browser(), b.browser()
    device = SoterDevice()
    assert on_a.ok("POST", "/api/soter/devices", device.registration(10), headers=BEARER)["counter"] == 10
    challenge = on_b.ok("POST", "/api/soter/challenge", {"cpuId": CPU_ID}, headers=BEARER)["challenge"]
    result = device.result(challenge, 11)
    # The same result at both instances at once: exactly one accepts it.
    replies = race([lambda: on_a.post("/api/soter/verify", result, headers=BEARER),
                    lambda: on_b.post("/api/soter/verify", result, headers=BEARER)])
    statuses = sorted(r.status for r in replies)
    assert statuses[0] == 200 and statuses[1] in (400, 403), replies
    loser = next(r for r in replies if r.status != 200)
    assert loser.code in ("soter_challenge_unknown", "soter_counter_not_increasing"), loser
    # Older counters, and the challenge again, are refused on either instance.
    c2 = on_a.ok("POST", "/api/soter/challenge", {}, headers=BEARER)["challenge"]
    expect_error(on_b.post("/api/soter/verify", device.result(c2, 11), headers=BEARER), 403,
                 "soter_counter_not_increasing")
    expect_error(on_b.post("/api/soter/verify", device.result(challenge, 12), headers=BEARER), 400,
                 "soter_challenge_unknown")
    # The refused attempt did not consume c2.
    assert on_b.ok("POST", "/api/soter/verify", device.result(c2, 12), headers=BEARER)["counter"] == 12
    # A second key for the device needs replace, a newer counter and the current key's consent.
    other = SoterDevice()
    expect_error(on_a.post("/api/soter/devices", other.registration(20), headers=BEARER), 409, "soter_device_exists")
    rotate = {**other.registration(20), "replace": True}
    # The rotation must be authorised by the registered key, and the device keeps its counter
    # (12, from its last signed result), not the 20 the new key declares.
    expect_error(on_a.post("/api/soter/devices", rotate, headers=BEARER), 403, "soter_replacement_unauthorised")
    rotate["currentKeySignature"] = device.sign(rotate["keyJson"])
    assert on_a.ok("POST", "/api/soter/devices", rotate, headers=BEARER)["counter"] == 12
    c3 = on_b.ok("POST", "/api/soter/challenge", {}, headers=BEARER)["challenge"]
    expect_error(on_b.post("/api/soter/verify", device.result(c3, 21), headers=BEARER), 400, "soter_bad_signature")
    assert on_b.ok("POST", "/api/soter/verify", other.result(c3, 21), headers=BEARER)["verified"] is True
