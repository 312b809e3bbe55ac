// Security updates as a node gets them, by Debian 13's own apt.systemd.daily and unattended-upgrade
// in the lab's root filesystem (a private overlay, no network): a local file: repository whose
// Release files carry Debian's security origin and label (and a second one with the main
// archive's) offers a newer dummy package, a newer pgbouncer (held) and a newer dummy from the
// main archive. With the node's rendered apt configuration the security dummy is upgraded, the
// held daemon and the point-release dummy are not, no reboot happens, and the node's signal
// collector reports what is pending, the run and the reboot the upgrade asked for; a later run
// whose upgrade fails writes no stamp, so the reported last success stays where it was.
import { strict as assert } from "node:assert";
import { parse } from "yaml";
import { Evaluation } from "../scripts/lib/mock-program";
import { APT_UPGRADE_DROPIN, SIGNALS_CONFIG, SIGNALS_TOOL } from "../components/render/monitoring";
import { AUTO_UPGRADES_CONF, UNATTENDED_UPGRADES_CONF } from "../components/render/unattended-upgrades";
import { SIGNALS, TEXTFILE_DIR } from "../components/render/signals";
import { evaluate } from "./helpers/program";
import { labRootfs } from "./helpers/rootfs";
import { Sandbox } from "./helpers/sandbox";
import { requireTools } from "./helpers/tools";

interface WriteFile { path: string; content: string; owner?: string; permissions?: string }

const NODE = "db-1";
const REPO = "/srv/vps-ha-test-repo";

/** Builds a dummy package into the repository's pool, and a dist's index and Release file (sourced by the scripts below). */
const REPO_LIB = String.raw`REPO=${REPO}
arch=$(dpkg --print-architecture)
work=$(mktemp -d)
deb() { # name version dist [postinst]
    d="$work/$1-$2"; mkdir -p "$d/DEBIAN" "$d/usr/share/doc/$1"
    printf 'Package: %s\nVersion: %s\nArchitecture: all\nMaintainer: vps-ha tests <tests@invalid>\nDescription: vps-ha test package\n' "$1" "$2" > "$d/DEBIAN/control"
    echo "$1 $2" > "$d/usr/share/doc/$1/version"
    if [ $# -ge 4 ]; then printf '#!/bin/sh\n%s\n' "$4" > "$d/DEBIAN/postinst"; chmod 0755 "$d/DEBIAN/postinst"; fi
    mkdir -p "$REPO/pool/$3"
    dpkg-deb --root-owner-group -Zgzip --build "$d" "$REPO/pool/$3/$1_$2_all.deb" >/dev/null
}
release() { # dist label suite
    dir="$REPO/dists/$1"; mkdir -p "$dir/main/binary-$arch"
    (cd "$REPO" && for f in pool/$1/*.deb; do
        dpkg-deb -f "$f"; echo "Filename: $f"; echo "Size: $(stat -c %s "$f")"; echo "SHA256: $(sha256sum "$f" | cut -d' ' -f1)"; echo
    done) > "$dir/main/binary-$arch/Packages"
    p="main/binary-$arch/Packages"
    printf 'Origin: Debian\nLabel: %s\nSuite: %s\nCodename: %s\nDate: %s\nArchitectures: %s\nComponents: main\nSHA256:\n %s %s %s\n' \
        "$2" "$3" "$1" "$(date -Ru)" "$arch" "$(sha256sum "$dir/$p" | cut -d' ' -f1)" "$(stat -c %s "$dir/$p")" "$p" > "$dir/Release"
}
`;

/** The dummies installed, the repository built, and the node's sources pointing at it alone. */
const BUILD_REPO = String.raw`set -eu
. /usr/local/lib/vps-ha-test-repo.sh
# Installed first: the two dummies' old versions.
deb vpsha-security-dummy 1.0 old
deb vpsha-main-dummy 1.0 old
dpkg -i "$REPO"/pool/old/*.deb >/dev/null
# Debian's security archive: the dummy's fix (its postinst asks for a reboot, as a kernel's does) and a newer pgbouncer.
deb vpsha-security-dummy 1.1 trixie-security 'touch /run/reboot-required'
deb pgbouncer 99:1.0 trixie-security
release trixie-security Debian-Security stable-security
# Debian's main archive (a point release): allowed by Debian's default 50unattended-upgrades, not by vps-ha's.
deb vpsha-main-dummy 1.1 trixie
release trixie Debian stable
# The node reaches this repository only: no network here.
rm -f /etc/apt/sources.list /etc/apt/sources.list.d/*
printf 'deb [trusted=yes] file:%s trixie-security main\ndeb [trusted=yes] file:%s trixie main\n' "$REPO" "$REPO" > /etc/apt/sources.list.d/vps-ha-test.list
`;

describe("unattended-upgrades with a node's rendered apt configuration @rootfs", function () {
    this.timeout(10 * 60_000);
    let prod: Evaluation;
    let sb: Sandbox | undefined;
    const run = (argv: string[], timeoutMs = 120_000) => sb!.exec(NODE, argv, { timeoutMs });
    const version = (pkg: string) => run(["dpkg-query", "-W", "-f=${Version}", pkg]).stdout;
    const signalFile = () => run(["cat", `${TEXTFILE_DIR}/${SIGNALS.upgradesPending.file}`]).stdout;
    const collect = () => {
        const r = run([SIGNALS_TOOL, "--config", SIGNALS_CONFIG, "upgrades"]);
        assert.equal(r.status, 0, `vps-ha-signals upgrades: ${r.stdout}${r.stderr}`);
        return signalFile();
    };
    const value = (text: string, metric: string) => {
        const line = text.split("\n").find((l) => l.startsWith(`${metric} `));
        return line === undefined ? undefined : Number(line.split(" ")[1]);
    };

    before(async function () {
        requireTools(this, ["ip", "unshare", "nsenter", "chroot", "mount"], true);
        prod = await evaluate();
        const rootfs = await labRootfs(prod);
        sb = await Sandbox.open(`vhtest-uu${process.pid}`, rootfs, [{ name: NODE, address: "10.99.0.11" }]);
        const doc = parse(prod.config[NODE]) as { write_files: WriteFile[] };
        // The node's apt configuration and its signal collector, as rendered.
        const wanted = (p: string) => p.startsWith("/etc/apt/") || p === APT_UPGRADE_DROPIN || p === SIGNALS_CONFIG || p.startsWith("/etc/vps-ha/signal") || p === SIGNALS_TOOL || p.startsWith("/usr/local/lib/vps-ha/python/");
        const files = doc.write_files.filter((f) => wanted(f.path));
        for (const p of [AUTO_UPGRADES_CONF, UNATTENDED_UPGRADES_CONF, SIGNALS_TOOL]) assert.ok(files.some((f) => f.path === p), `${NODE} gets ${p}`);
        for (const f of files) sb.write(NODE, f.path, f.content, f.permissions ?? "0644", "root:root");
        sb.write(NODE, "/usr/local/lib/vps-ha-test-repo.sh", REPO_LIB);
        const built = run(["sh", "-c", BUILD_REPO]);
        assert.equal(built.status, 0, `building the test repository: ${built.stdout}${built.stderr}`);
    });

    after(async () => {
        await sb?.close();
    });

    it("apt.systemd.daily's update stage reads the repository; the signals count the security upgrades by what they wait for", () => {
        const r = run(["/usr/lib/apt/apt.systemd.daily", "update"]);
        assert.equal(r.status, 0, r.stdout + r.stderr);
        assert.equal(run(["test", "-f", "/var/lib/apt/periodic/update-stamp"]).status, 0, "apt-get update succeeded: its stamp is written");
        const text = collect();
        assert.equal(value(text, `${SIGNALS.upgradesPending.name}{waits_for="unattended-upgrades"}`), 1, text);
        assert.equal(value(text, `${SIGNALS.upgradesPending.name}{waits_for="release"}`), 1, text);
        assert.equal(value(text, SIGNALS.rebootRequired.name), 0, text);
        assert.equal(value(text, SIGNALS.upgradesLastSuccess.name), undefined, `no upgrade run yet:\n${text}`);
    });

    it("the install stage upgrades the security dummy only: the held pgbouncer and the point release stay, no reboot", () => {
        const pgbouncer = version("pgbouncer");
        assert.match(pgbouncer, /^\d/, "pgbouncer is installed in the root filesystem");
        const started = Math.floor(Date.now() / 1000);
        const r = run(["/usr/lib/apt/apt.systemd.daily", "install"], 300_000);
        assert.equal(r.status, 0, r.stdout + r.stderr);
        const log = run(["cat", "/var/log/unattended-upgrades/unattended-upgrades.log"]).stdout;
        assert.equal(version("vpsha-security-dummy"), "1.1", log);
        assert.equal(version("pgbouncer"), pgbouncer, log);
        assert.equal(version("vpsha-main-dummy"), "1.0", log);
        assert.match(log, /Allowed origins are: origin=Debian,codename=trixie-security,label=Debian-Security\n/, log);
        assert.match(log, /Initial blacklist: haproxy\$ pgbouncer\$ patroni\$ etcd-server\$ postgresql-\[0-9\]\+\$/, log);
        assert.match(log, /Packages that will be upgraded: vpsha-security-dummy\n/, log);
        assert.doesNotMatch(log, /reboot/i, "Automatic-Reboot is off");
        assert.equal(run(["test", "-f", "/run/reboot-required"]).status, 0, "the upgrade asked for a reboot");
        const text = collect();
        assert.equal(value(text, `${SIGNALS.upgradesPending.name}{waits_for="unattended-upgrades"}`), 0, text);
        assert.equal(value(text, `${SIGNALS.upgradesPending.name}{waits_for="release"}`), 1, text);
        assert.equal(value(text, SIGNALS.rebootRequired.name), 1, text);
        const at = value(text, SIGNALS.upgradesLastSuccess.name);
        assert.ok(at !== undefined && at >= started - 1 && at <= Date.now() / 1000 + 1, `last success ${at}, run started ${started}:\n${text}`);
    });

    it("apt-daily-upgrade.service's drop-in loads cleanly (systemd-analyze verify) and its ExecStopPost writes the signals", () => {
        const doc = parse(prod.config[NODE]) as { write_files: WriteFile[] };
        const dropIn = doc.write_files.find((f) => f.path === APT_UPGRADE_DROPIN);
        assert.ok(dropIn, `${NODE} gets ${APT_UPGRADE_DROPIN}`);
        const verify = run(["systemd-analyze", "verify", "--man=no", "/usr/lib/systemd/system/apt-daily-upgrade.service"]);
        // verify exits 0 on an unknown key too, naming the file on stderr: nothing may be said.
        assert.equal(verify.status, 0, verify.stderr);
        assert.equal(verify.stderr.trim(), "", "systemd-analyze verify has nothing to say about the unit and its drop-in");
        const line = dropIn.content.split("\n").find((l) => l.startsWith("ExecStopPost="));
        assert.equal(line, `ExecStopPost=-${SIGNALS_TOOL} --config ${SIGNALS_CONFIG} upgrades`);
        // What systemd runs after each run: the signals' file written anew.
        assert.equal(run(["rm", `${TEXTFILE_DIR}/${SIGNALS.upgradesPending.file}`]).status, 0);
        const r = run(line!.replace(/^ExecStopPost=-/, "").split(" "));
        assert.equal(r.status, 0, r.stdout + r.stderr);
        assert.match(signalFile(), /^vpsha_upgrades_pending\{waits_for="release"\} 1$/m);
    });
    it("a run that fails leaves the last success where it was: the security updates' time ages toward UpgradesFailing", () => {
        // A newer security dummy whose configuration fails, as a broken maintainer script does.
        const built = run(["sh", "-c", "set -eu; . /usr/local/lib/vps-ha-test-repo.sh; deb vpsha-security-dummy 1.2 trixie-security 'exit 1'; release trixie-security Debian-Security stable-security"]);
        assert.equal(built.status, 0, built.stdout + built.stderr);
        // apt.systemd.daily runs each stage once a day: both stamps two days old, as before a day's run.
        assert.equal(run(["touch", "-d", "2 days ago", "/var/lib/apt/periodic/update-stamp", "/var/lib/apt/periodic/upgrade-stamp"]).status, 0);
        const before = Number(run(["stat", "-c", "%Y", "/var/lib/apt/periodic/upgrade-stamp"]).stdout);
        assert.equal(run(["/usr/lib/apt/apt.systemd.daily", "update"]).status, 0);
        const r = run(["/usr/lib/apt/apt.systemd.daily", "install"], 300_000);
        assert.equal(r.status, 0, `apt.systemd.daily itself exits 0: ${r.stdout}${r.stderr}`);
        const log = run(["cat", "/var/log/unattended-upgrades/unattended-upgrades.log"]).stdout;
        assert.match(log, /Packages that will be upgraded: vpsha-security-dummy\n(.*\n)*.*ERROR/, log);
        assert.equal(Number(run(["stat", "-c", "%Y", "/var/lib/apt/periodic/upgrade-stamp"]).stdout), before, "the failed run wrote no stamp");
        const text = collect();
        assert.equal(value(text, SIGNALS.upgradesLastSuccess.name), before, text);
    });
});
