#!/bin/bash
# Runs inside the `cargo xtask vm-test` guest, chrooted into the host's read-only root, as
# root, with /tmp on tmpfs. Starts passgate as a uhid HID security key and drives it with
# libfido2's tools and OpenSSH, the way a person's machine would. Every check writes exactly
# one line to /tmp/results/results.txt: `ok NAME` or `FAIL NAME: why`.
#
# Then python-fido2's device suite runs over hidraw, one pytest output per test file in
# /tmp/results/device-suite/, which xtask counts (xtask/src/vm.rs).
#
# usage: guest.sh PASSGATE_BINARY REPO_ROOT VENV_PYTHON DEVICE_SUITE_SDIST "FPRINTD_FILES"
set -u
PASSGATE=$1
REPO=$2
PYTHON=$3
DEVICE_SUITE=$4
FPRINTD_FILES=$5
RESULTS=/tmp/results/results.txt
export HOME=/tmp/home PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export RUST_LOG=passgate=info
PIN=4826-fido
mkdir -p "$HOME" /tmp/work
cd /tmp/work || exit 1

ok() { echo "ok $1" >> "$RESULTS"; echo "VMTEST ok $1"; }
fail() { echo "FAIL $1: $2" >> "$RESULTS"; echo "VMTEST FAIL $1: $2"; }
# check NAME COMMAND...: ok when COMMAND succeeds; its output is kept in /tmp/work/NAME.out.
check() {
    local name=$1; shift
    local started=$(date +%s%N)
    if timeout 300 "$@" > "/tmp/work/$name.out" 2>&1; then
        ok "$name"
    else
        fail "$name" "$(tail -n 3 "/tmp/work/$name.out" | tr '\n' ' ')"
    fi
    echo "VMTEST time $name $(( ($(date +%s%N) - started) / 1000000 )) ms"
}
pins() { for _ in $(seq "$1"); do echo "$PIN"; done; }
export -f pins
export PIN

device() { grep -l -i 'passgate' /sys/class/hidraw/hidraw*/device/uevent 2>/dev/null | head -n 1; }

echo "guest: $(uname -r), passgate $PASSGATE"
# udevd records the hidraw node like on a desktop: libudev's enumeration (libfido2) lists only
# devices udev has seen.
/lib/systemd/systemd-udevd --daemon
mkdir -p /tmp/state
"$PASSGATE" authenticator serve --transport uhid --presence auto --state-dir /tmp/state \
    > /tmp/work/passgate.log 2>&1 &
PASSGATE_PID=$!

wait_for_device() {
    for _ in $(seq 300); do
        uevent=$(device)
        if [ -n "$uevent" ]; then
            DEV=/dev/$(basename "$(dirname "$(dirname "$uevent")")")
            [ -c "$DEV" ] && return 0
        fi
        sleep 0.1
    done
    return 1
}
if wait_for_device; then
    ok uhid-device-appears
else
    fail uhid-device-appears "no hidraw node named passgate: $(tail -n 3 /tmp/work/passgate.log | tr '\n' ' ')"
    DEV=/dev/hidraw0
fi
udevadm settle --timeout=10
echo "guest: passgate is $DEV"

# libfido2: enumerate (by the FIDO usage page; libfido2 1.12 names only USB devices, so the
# pid.codes IDs identify passgate), getInfo, PIN, resident credential with UV.
check fido2-token-list bash -c "fido2-token -L > list.txt; cat list.txt; grep -q '^$DEV: vendor=0x1209, product=0x000a ' list.txt"
check fido2-token-info bash -c "fido2-token -I $DEV | tee /dev/stderr | grep -q 'FIDO_2_1'"
check fido2-token-set-pin bash -c "pins 2 | fido2-token -S $DEV"

CDH=$(head -c 32 /dev/urandom | base64)
USER_ID=$(head -c 16 /dev/urandom | base64)
printf '%s\n%s\n%s\n%s\n' "$CDH" vm.passgate.test alice "$USER_ID" > cred.in
check fido2-cred-make-resident-uv bash -c "pins 1 | fido2-cred -M -r -v -i cred.in -o cred.out $DEV es256"
# -V checks the attestation signature (packed self-attestation) and the UV flag.
check fido2-cred-verify-attestation bash -c "fido2-cred -V -v -i cred.out -o cred.pub es256 && sed -n 3p cred.out | grep -qx packed"
CRED_ID=$(head -n 1 cred.pub 2>/dev/null)
sed -n '2,$p' cred.pub > pub.pem 2>/dev/null

CDH2=$(head -c 32 /dev/urandom | base64)
printf '%s\n%s\n' "$CDH2" vm.passgate.test > assert.in
check fido2-assert-get-uv bash -c "pins 1 | fido2-assert -G -r -v -i assert.in -o assert.out $DEV es256 && sed -n 5p assert.out | grep -qxF '$USER_ID'"
check fido2-assert-verify bash -c "head -n 4 assert.out | fido2-assert -V -v pub.pem es256"
check fido2-token-list-credentials bash -c "pins 1 | fido2-token -L -k vm.passgate.test $DEV | tee /dev/stderr | grep -qF '$CRED_ID'"
check fido2-token-delete bash -c "pins 1 | fido2-token -D -i '$CRED_ID' $DEV && ! (pins 1 | fido2-token -L -k vm.passgate.test $DEV | grep -qF '$CRED_ID')"

# python-fido2's own hidraw backend: register with UV through the PIN, then sign in.
check python-fido2-hidraw "$PYTHON" "$REPO/xtask/vm/hidraw_client.py" "$PIN"

# OpenSSH: a resident ecdsa-sk key made on passgate, then a login to sshd with it.
cat > /tmp/askpin <<ASK
#!/bin/sh
echo '$PIN'
ASK
chmod 755 /tmp/askpin
export SSH_ASKPASS=/tmp/askpin SSH_ASKPASS_REQUIRE=force DISPLAY=:0
check ssh-keygen-ecdsa-sk-resident ssh-keygen -q -t ecdsa-sk -O resident -O application=ssh:vm -N '' -C vm-test -f "$HOME/id_sk"

mkdir -p /tmp/ssh /run/sshd
chmod 700 /tmp/ssh
ssh-keygen -q -t ed25519 -N '' -f /tmp/ssh/host_ed25519
cp "$HOME/id_sk.pub" /tmp/ssh/authorized_keys 2>/dev/null
cat > /tmp/ssh/sshd_config <<CONF
Port 2222
ListenAddress 127.0.0.1
HostKey /tmp/ssh/host_ed25519
AuthorizedKeysFile /tmp/ssh/authorized_keys
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
PermitRootLogin yes
PidFile /tmp/ssh/sshd.pid
CONF
/usr/sbin/sshd -f /tmp/ssh/sshd_config -E /tmp/ssh/sshd.log
check ssh-login-with-sk-key bash -c "ssh -F /dev/null -i $HOME/id_sk -o IdentitiesOnly=yes -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o BatchMode=yes -p 2222 root@127.0.0.1 echo vm-ssh-login-ok | grep -qx vm-ssh-login-ok || { cat /tmp/ssh/sshd.log >&2; false; }"
[ -f /tmp/ssh/sshd.pid ] && kill "$(cat /tmp/ssh/sshd.pid)"

# passgate install --user: the unit it writes, and the udev rules it prints, applied by the
# real udev to the real device (rules in /run/udev/rules.d: the guest's /etc is read-only).
check install-user-unit bash -c "XDG_CONFIG_HOME=/tmp/home/.config '$PASSGATE' install --user --no-start > install.txt 2>&1; cat install.txt; grep -q '^ExecStart=$PASSGATE authenticator serve --transport uhid --presence auto-detect\$' /tmp/home/.config/systemd/user/passgate-authenticator.service"
# The rules' evaluation tags the node uaccess with our rules and not without them.
mkdir -p /run/udev/rules.d
udevadm test /sys/class/hidraw/$(basename "$DEV") > udev-without.txt 2>&1
grep '^KERNEL==' install.txt > /run/udev/rules.d/70-passgate-uhid.rules
udevadm test /sys/class/hidraw/$(basename "$DEV") > udev-with.txt 2>&1
echo "guest: udev without our rules: $(grep -E 'TAGS=|ID_SECURITY_TOKEN' udev-without.txt | tr '\n' ' ')"
echo "guest: udev with our rules: $(grep -E 'TAGS=|ID_SECURITY_TOKEN|passgate-uhid' udev-with.txt | tr '\n' ' ')"
# CURRENT_TAGS is what this evaluation of the rules set (TAGS also keeps the tags udevd gave
# at "add", where systemd's fido_id already tags a FIDO node uaccess and security-device).
check udev-rules-tag-uaccess bash -c "grep -E '^CURRENT_TAGS=.*:uaccess:' udev-with.txt && ! grep -E '^CURRENT_TAGS=.*:uaccess:' udev-without.txt"

# The device goes away when passgate exits.
kill -TERM "$PASSGATE_PID"
wait "$PASSGATE_PID" 2>/dev/null
gone=no
for _ in $(seq 50); do
    if [ -z "$(device)" ] && [ ! -e "$DEV" ]; then gone=yes; break; fi
    sleep 0.1
done
if [ "$gone" = yes ]; then ok uhid-device-removed-on-exit; else fail uhid-device-removed-on-exit "$DEV still there"; fi
echo "---- passgate log ----"
tail -n 40 /tmp/work/passgate.log

# Our conformance suite over hidraw, against a fresh passgate (it resets and sets a PIN).
mkdir -p /tmp/state2
"$PASSGATE" authenticator serve --transport uhid --presence auto --state-dir /tmp/state2 \
    > /tmp/work/passgate2.log 2>&1 &
PASSGATE_PID=$!
wait_for_device
check conformance-over-hidraw bash -c "'$PASSGATE' conformance --target hid --presence-auto --allow-reset > conformance.txt 2>&1; tail -n 30 conformance.txt; tail -n 1 conformance.txt | grep -Eq '^[1-9][0-9]* passed, 0 failed'"
grep -E '^(FAIL|SKIP)' /tmp/work/conformance.txt | head -n 20
tail -n 1 /tmp/work/conformance.txt
kill -TERM "$PASSGATE_PID"
wait "$PASSGATE_PID" 2>/dev/null

# python-fido2's device suite (tests/device of its sdist, the suite Yubico runs against real
# keys) over hidraw with python-fido2's own Linux backend: the plugin starts passgate on uhid
# on a fresh state directory, and the suite's "unplug and replug the key" stops passgate and
# starts it again on the same state, so the device is destroyed and created again and the
# suite finds the new hidraw node. No other passgate may be running here: the plugin's
# discovery takes every device named passgate. Two pytest sessions, as Yubico runs the suite
# (one session, not one per file as over TCP: starting python is slow under emulation): the
# files that need fingerprints (with the real fprintd on a virtual sensor), then the rest.
# Outputs: /tmp/results/device-suite/{fprintd,others}.txt.
mkdir -p /tmp/results/device-suite /tmp/device-suite
device_suite() {
    local name=$1 fprintd=$2; shift 2
    local started=$(date +%s%N)
    (
        cd "$DEVICE_SUITE" || exit 1
        PASSGATE_BIN=$PASSGATE PASSGATE_DEVICE_TRANSPORT=uhid \
        PASSGATE_DEVICE_STATE=/tmp/device-suite/$name PASSGATE_DEVICE_FPRINTD=$fprintd \
        PASSGATE_TEST_TIMEOUT_SCALE=10 \
        PYTHONPATH=$REPO/ctap-tests/python/device_suite:$REPO/ctap-tests/python \
        PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 \
            timeout 1800 "$PYTHON" -m pytest -p passgate_device_plugin -p no:cacheprovider \
            -rfEs -v --timeout=600 "$@"
    ) > "/tmp/results/device-suite/$name.txt" 2>&1
    echo "VMTEST time device-suite $name $(( ($(date +%s%N) - started) / 1000000 )) ms: $(tail -n 1 "/tmp/results/device-suite/$name.txt")"
    grep -E '^(FAILED|ERROR)' "/tmp/results/device-suite/$name.txt" | head -n 20
    tail -n 20 "/tmp/device-suite/$name/passgate.log" 2>/dev/null
}
fprintd_files=() other_files=()
for file in "$DEVICE_SUITE"/tests/device/test_*.py; do
    name=$(basename "$file" .py)
    case " $FPRINTD_FILES " in
        *" $name "*) fprintd_files+=("tests/device/$name.py") ;;
        *) other_files+=("tests/device/$name.py") ;;
    esac
done
[ ${#fprintd_files[@]} -gt 0 ] && device_suite fprintd 1 "${fprintd_files[@]}"
device_suite others "" "${other_files[@]}"
echo "guest: done"
