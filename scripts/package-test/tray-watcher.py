#!/usr/bin/env python3
"""A StatusNotifierWatcher for the package test: `tray-watcher.py OUT_JSON TIMEOUT_SECS`.

Desktop panels (KDE, GNOME's AppIndicator extension, waybar, …) own the D-Bus name
org.kde.StatusNotifierWatcher on the session bus; an app's tray icon (Tauri on Linux
uses libayatana-appindicator) registers its StatusNotifierItem with it. Under Xvfb
there is no panel, so this script plays one: it owns the name, waits (at most
TIMEOUT_SECS) for the first RegisterStatusNotifierItem, then reads what a panel would
show, and writes it to OUT_JSON:

    {"service": ":1.5", "path": "/org/ayatana/NotificationItem/…", "pid": 123,
     "id": "…", "title": "…", "status": "Active", "icon": "…",
     "menu": ["Show AnyCode", "Open in browser", …]}

`menu` holds the labels of the item's dbusmenu (com.canonical.dbusmenu GetLayout), in
order, nested items flattened. It exits 0 once OUT_JSON is written, 1 on timeout.
"""
import json
import sys

from gi.repository import Gio, GLib

WATCHER_XML = """
<node>
  <interface name="org.kde.StatusNotifierWatcher">
    <method name="RegisterStatusNotifierItem"><arg type="s" direction="in"/></method>
    <method name="RegisterStatusNotifierHost"><arg type="s" direction="in"/></method>
    <property name="RegisteredStatusNotifierItems" type="as" access="read"/>
    <property name="IsStatusNotifierHostRegistered" type="b" access="read"/>
    <property name="ProtocolVersion" type="i" access="read"/>
    <signal name="StatusNotifierItemRegistered"><arg type="s"/></signal>
  </interface>
</node>
"""

out_path = sys.argv[1]
timeout = int(sys.argv[2])
loop = GLib.MainLoop()
items = []
result = {"ok": False}


def call(bus, service, path, iface, method, args, reply):
    return bus.call_sync(service, path, iface, method, args, GLib.VariantType(reply),
                         Gio.DBusCallFlags.NONE, 5000, None).unpack()


def labels(layout):
    """The labels of a dbusmenu layout (id, props, children), depth first."""
    _id, props, children = layout
    out = []
    if props.get("label"):
        out.append(props["label"].replace("_", ""))
    for child in children:
        out.extend(labels(child))
    return out


def describe(bus, sender, arg):
    # libayatana-appindicator passes its object path; other items pass a bus name.
    service, path = (sender, arg) if arg.startswith("/") else (arg, "/StatusNotifierItem")
    props = call(bus, service, path, "org.freedesktop.DBus.Properties", "GetAll",
                 GLib.Variant("(s)", ("org.kde.StatusNotifierItem",)), "(a{sv})")[0]
    menu = []
    if props.get("Menu"):
        layout = call(bus, service, props["Menu"], "com.canonical.dbusmenu", "GetLayout",
                      GLib.Variant("(iias)", (0, -1, [])), "(u(ia{sv}av))")[1]
        menu = labels(layout)
    pid = call(bus, "org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus",
               "GetConnectionUnixProcessID", GLib.Variant("(s)", (service,)), "(u)")[0]
    return {"service": service, "path": path, "pid": pid, "id": props.get("Id"),
            "title": props.get("Title"), "status": props.get("Status"),
            "icon": props.get("IconName"), "menu": menu}


def on_call(bus, sender, _path, _iface, method, params, invocation):
    if method == "RegisterStatusNotifierItem":
        arg = params.unpack()[0]
        items.append(sender + (arg if arg.startswith("/") else ""))
        invocation.return_value(None)
        bus.emit_signal(None, "/StatusNotifierWatcher", "org.kde.StatusNotifierWatcher",
                        "StatusNotifierItemRegistered", GLib.Variant("(s)", (arg,)))
        # Read the item once the app's main loop has answered this call.
        GLib.timeout_add(500, finish, bus, sender, arg)
    else:
        invocation.return_value(None)


def finish(bus, sender, arg):
    # The menu is built right after the icon: give it a few tries to appear.
    try:
        info = describe(bus, sender, arg)
    except GLib.Error as e:
        info = {"error": e.message}
    if not info.get("menu") and finish.tries < 20:
        finish.tries += 1
        return True
    result.update(info, ok="error" not in info)
    loop.quit()
    return False


finish.tries = 0


def on_get(_bus, _sender, _path, _iface, prop):
    return {
        "RegisteredStatusNotifierItems": GLib.Variant("as", items),
        "IsStatusNotifierHostRegistered": GLib.Variant("b", True),
        "ProtocolVersion": GLib.Variant("i", 0),
    }[prop]


def on_bus(bus, _name):
    node = Gio.DBusNodeInfo.new_for_xml(WATCHER_XML)
    bus.register_object("/StatusNotifierWatcher", node.interfaces[0], on_call, on_get, None)


def on_name_lost(_bus, _name):
    result["error"] = "could not own org.kde.StatusNotifierWatcher"
    loop.quit()


def on_timeout():
    result.setdefault("error", f"no tray icon registered within {timeout} s")
    loop.quit()
    return False


Gio.bus_own_name(Gio.BusType.SESSION, "org.kde.StatusNotifierWatcher", Gio.BusNameOwnerFlags.NONE,
                 on_bus, lambda *_: print("tray-watcher: ready", flush=True), on_name_lost)
GLib.timeout_add_seconds(timeout, on_timeout)
loop.run()
with open(out_path, "w") as f:
    json.dump(result, f, indent=1)
sys.exit(0 if result.get("ok") else 1)
