"""State survives restarts, and the state directory is private to its owner."""

import stat

from helpers import authenticate, make_server, register


def test_credentials_survive_restart(passgate):
    server = make_server()
    client = passgate.client()
    resident = register(client, server, user_name="alice", resident=True)
    plain = register(client, server, user_name="bob", resident=False)
    [before] = authenticate(client, server, [resident, plain], allow=[plain])

    passgate.restart()
    client = passgate.client()

    [after] = authenticate(
        client, server, [resident, plain], allow=[plain], current_sign_count=before.sign_count
    )
    assert after.credential_id == plain.credential_id
    assert after.sign_count > before.sign_count, "the counter must not go back after a restart"

    [found] = authenticate(client, server, [resident, plain], allow=None)
    assert found.credential_id == resident.credential_id
    assert found.user_handle == resident.user_id


def test_state_dir_permissions(passgate):
    server = make_server()
    client = passgate.client()
    register(client, server, user_name="alice", resident=True)
    register(client, server, user_name="bob", resident=False)

    state = passgate.state_dir
    assert (state / "device.key").is_file()
    entries = [state, *state.rglob("*")]
    files = [p for p in entries if p.is_file()]
    assert len(files) >= 2, f"expected the device key and credential files, got {entries}"
    wrong = []
    for path in entries:
        mode = stat.S_IMODE(path.lstat().st_mode)
        if path.is_symlink():
            wrong.append((str(path), "symlink"))
        elif path.is_dir() and mode != 0o700:
            wrong.append((str(path), oct(mode)))
        elif path.is_file() and mode != 0o600:
            wrong.append((str(path), oct(mode)))
    assert wrong == [], f"state entries with the wrong mode: {wrong}"
