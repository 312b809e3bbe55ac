// Which of the shared rootfs's packages a lab node has, and what that leaves enabled in it.
import assert from "node:assert/strict";
import { lstatSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { dependencyClosure, disablePackageUnits, foreignPackages, parseDpkgStatus } from "../scripts/lab/node-packages";

/** The link itself, whether or not its target exists on this machine. */
const linked = (p: string) => {
    try {
        return lstatSync(p).isSymbolicLink();
    } catch {
        return false;
    }
};

const STATUS = `Package: libc6
Status: install ok installed
Priority: required

Package: etcd-server
Status: install ok installed
Priority: optional
Depends: adduser, libc6 (>= 2.34)

Package: haproxy
Status: install ok installed
Priority: optional
Pre-Depends: libc6
Depends: liblua5.4-0 | lua-any, libssl3t64 (>= 3.0.0),
 adduser

Package: liblua5.4-0
Status: install ok installed
Priority: optional

Package: libssl3t64
Status: install ok installed
Priority: optional
Provides: libssl3

Package: adduser
Status: install ok installed
Priority: important

Package: podman
Status: install ok installed
Priority: optional
Depends: conmon:any, libssl3

Package: conmon
Status: install ok installed
Priority: optional

Package: removed-one
Status: deinstall ok config-files
Priority: optional
`;

describe("lab nodes on real systemd: each node's own packages", function () {
    const installed = parseDpkgStatus(STATUS);

    it("reads installed packages with their dependencies (alternatives, continuation lines, versions, arch qualifiers)", function () {
        assert.deepEqual([...installed.keys()], ["libc6", "etcd-server", "haproxy", "liblua5.4-0", "libssl3t64", "adduser", "podman", "conmon"]);
        assert.deepEqual(installed.get("haproxy")?.depends, [["libc6"], ["liblua5.4-0", "lua-any"], ["libssl3t64"], ["adduser"]]);
        assert.deepEqual(installed.get("podman")?.depends, [["conmon"], ["libssl3"]]);
    });

    it("follows dependencies through provided names", function () {
        assert.deepEqual([...dependencyClosure(installed, ["podman"])].sort(), ["conmon", "libssl3t64", "podman"]);
    });

    it("a node has what Debian requires, the lab's own and what its packages pull in; the rest is foreign", function () {
        assert.deepEqual(foreignPackages(installed, ["adduser"], ["podman"]), ["etcd-server", "haproxy", "liblua5.4-0"]);
        assert.deepEqual(foreignPackages(installed, ["adduser"], ["haproxy", "etcd-server"]), ["conmon", "podman"]);
    });

    it("removes the enablement of a foreign package's units, and nothing else", function () {
        const root = mkdtempSync(join(tmpdir(), "vh-node-packages-"));
        try {
            mkdirSync(join(root, "var/lib/dpkg/info"), { recursive: true });
            writeFileSync(join(root, "var/lib/dpkg/info/etcd-server.list"), "/.\n/usr/bin/etcd\n/usr/lib/systemd/system/etcd.service\n");
            writeFileSync(join(root, "var/lib/dpkg/info/haproxy:amd64.list"), "/lib/systemd/system/haproxy.service\n");
            const wants = join(root, "etc/systemd/system/multi-user.target.wants");
            mkdirSync(wants, { recursive: true });
            for (const u of ["etcd.service", "haproxy.service", "ssh.service"]) symlinkSync(`/usr/lib/systemd/system/${u}`, join(wants, u));
            assert.deepEqual(disablePackageUnits(root, ["etcd-server", "haproxy"]), ["etcd.service", "haproxy.service"]);
            assert.equal(linked(join(wants, "etcd.service")), false);
            assert.equal(linked(join(wants, "haproxy.service")), false);
            assert.equal(linked(join(wants, "ssh.service")), true);
        } finally {
            rmSync(root, { recursive: true, force: true });
        }
    });
});
