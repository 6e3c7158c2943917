"""Enrolls a finger on fprintd's virtual device. Run with Debian's /usr/bin/python3 (it needs the
system's dbus and gi modules): fprint_enroll.py USER SOCKET FINGER_ID [FINGER_NAME]."""

import socket
import sys

import dbus
import dbus.mainloop.glib
from gi.repository import GLib

user, sock, finger = sys.argv[1:4]
finger_name = sys.argv[4] if len(sys.argv) > 4 else "right-index-finger"
dbus.mainloop.glib.DBusGMainLoop(set_as_default=True)
bus = dbus.SystemBus()
manager = dbus.Interface(bus.get_object("net.reactivated.Fprint", "/net/reactivated/Fprint/Manager"),
                         "net.reactivated.Fprint.Manager")
device = dbus.Interface(bus.get_object("net.reactivated.Fprint", manager.GetDefaultDevice()),
                        "net.reactivated.Fprint.Device")
loop = GLib.MainLoop()
result = {}


def on_status(status, done):
    if done:
        result["status"] = str(status)
        loop.quit()


def scan():
    s = socket.socket(socket.AF_UNIX)
    s.connect(sock)
    s.sendall(f"SCAN {finger}".encode())
    s.close()
    return True  # keep scanning until enrollment completes


device.connect_to_signal("EnrollStatus", on_status)
device.Claim(user)
device.EnrollStart(finger_name)
GLib.timeout_add(150, scan)
GLib.timeout_add(15000, loop.quit)
loop.run()
device.EnrollStop()
device.Release()
print(result.get("status", "timeout"))
sys.exit(0 if result.get("status") == "enroll-completed" else 1)
