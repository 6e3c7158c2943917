"""python-fido2 over its own Linux hidraw backend (no TCP plugin), in the vm-test guest.

Finds passgate among the FIDO HID devices, then registers a discoverable credential with
user verification through the PIN and signs in with it, both checked by python-fido2's
Fido2Server. Prints `ok` and exits 0, or raises.
"""

import os
import sys

from fido2.client import DefaultClientDataCollector, Fido2Client, UserInteraction
from fido2.hid import CtapHidDevice
from fido2.server import Fido2Server
from fido2.webauthn import (
    PublicKeyCredentialRpEntity,
    PublicKeyCredentialUserEntity,
    ResidentKeyRequirement,
    UserVerificationRequirement,
)


class Pin(UserInteraction):
    def __init__(self, pin):
        self.pin = pin

    def request_pin(self, permissions, rd_id):
        return self.pin


def main(pin: str) -> None:
    devices = [d for d in CtapHidDevice.list_devices() if "passgate" in (d.product_name or "")]
    assert len(devices) == 1, f"expected one passgate HID device, found {devices}"
    device = devices[0]
    assert device.descriptor.path.startswith("/dev/hidraw"), device.descriptor.path
    client = Fido2Client(
        device,
        client_data_collector=DefaultClientDataCollector("https://vm.passgate.test"),
        user_interaction=Pin(pin),
    )
    server = Fido2Server(PublicKeyCredentialRpEntity(id="vm.passgate.test", name="VM"))
    user = PublicKeyCredentialUserEntity(id=os.urandom(16), name="bob", display_name="Bob")
    options, state = server.register_begin(
        user,
        resident_key_requirement=ResidentKeyRequirement.REQUIRED,
        user_verification=UserVerificationRequirement.REQUIRED,
    )
    made = client.make_credential(options.public_key)
    auth_data = server.register_complete(state, made)
    assert auth_data.is_user_verified(), "UV flag missing after PIN"
    assert made.response.attestation_object.fmt == "packed"

    options, state = server.authenticate_begin(
        user_verification=UserVerificationRequirement.REQUIRED
    )
    selection = client.get_assertion(options.public_key)
    response = selection.get_response(0)
    assert response.response.user_handle == user.id
    server.authenticate_complete(state, [auth_data.credential_data], response)
    print("ok", device.descriptor.path, device.product_name)


if __name__ == "__main__":
    main(sys.argv[1])
