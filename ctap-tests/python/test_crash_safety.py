"""SIGKILL during a burst of makeCredential: every credential whose response arrived survives."""

import hashlib
import os
import threading
import time

from fido2.ctap2 import Ctap2

from helpers import ES256, RP_ID, cose_to_cryptography, ecdsa_valid

BURST_LIMIT = 2000
KILL_AFTER = 0.3
# Kill no earlier than KILL_AFTER, and not before this many responses arrived (a slow machine
# gets up to MAX_WAIT seconds to produce them).
MIN_RECEIVED = 5
MAX_WAIT = 20.0


def _burst(ctap2, received, stop, errors):
    rp = {"id": RP_ID, "name": "Example"}
    params = [{"type": "public-key", "alg": ES256}]
    for i in range(BURST_LIMIT):
        if stop.is_set():
            return
        resident = i % 2 == 0
        try:
            response = ctap2.make_credential(
                os.urandom(32),
                rp,
                {"id": i.to_bytes(4, "big") + os.urandom(8), "name": f"user{i}"},
                params,
                options={"rk": True} if resident else None,
            )
        except Exception as exc:  # the kill cuts the connection mid-request
            errors.append(exc)
            return
        cred = response.auth_data.credential_data
        received.append((cred.credential_id, dict(cred.public_key), resident))


def test_sigkill_during_make_credential_burst(passgate):
    ctap2 = Ctap2(passgate.device())
    received: list = []
    errors: list = []
    stop = threading.Event()
    worker = threading.Thread(target=_burst, args=(ctap2, received, stop, errors), daemon=True)
    worker.start()
    time.sleep(KILL_AFTER)
    deadline = time.monotonic() + MAX_WAIT
    while len(received) < MIN_RECEIVED and worker.is_alive() and time.monotonic() < deadline:
        time.sleep(0.01)
    passgate.kill()
    stop.set()
    worker.join(timeout=30)
    assert not worker.is_alive(), "the burst did not stop after the kill"

    count = len(received)
    assert count >= MIN_RECEIVED, (
        f"only {count} credentials were received before the kill; errors: {errors}"
    )
    assert count < BURST_LIMIT, "the burst finished before the kill: nothing was interrupted"
    print(f"{count} credentials received before SIGKILL")

    passgate.start()
    ctap2 = Ctap2(passgate.device())
    rp_id_hash = hashlib.sha256(RP_ID.encode()).digest()
    bad = []
    for credential_id, cose_key, resident in received:
        client_data_hash = os.urandom(32)
        try:
            assertion = ctap2.get_assertion(
                RP_ID, client_data_hash, [{"type": "public-key", "id": credential_id}]
            )
        except Exception as exc:
            bad.append((credential_id.hex(), resident, repr(exc)))
            continue
        auth_data = bytes(assertion.auth_data)
        if assertion.auth_data.rp_id_hash != rp_id_hash:
            bad.append((credential_id.hex(), resident, "wrong rpIdHash"))
        elif not assertion.auth_data.is_user_present():
            bad.append((credential_id.hex(), resident, "UP not set"))
        elif not ecdsa_valid(
            cose_to_cryptography(cose_key), auth_data + client_data_hash, assertion.signature
        ):
            bad.append((credential_id.hex(), resident, "invalid signature"))
    assert bad == [], f"{len(bad)} of {count} received credentials are unusable: {bad[:5]}"
