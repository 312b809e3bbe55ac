// The HAProxy pair's rendered config and origin certificate, checked by Debian 13's own HAProxy 3.0.
import { strict as assert } from "node:assert";
import { generateKeyPairSync } from "node:crypto";
import { parse } from "yaml";
import { Evaluation } from "../scripts/lib/mock-program";
import { HAPROXY_CFG, ORIGIN_PEM } from "../components/render/haproxy";
import { evaluate } from "./helpers/program";
import { labRootfs, runInRootfs } from "./helpers/rootfs";
import { requireTools } from "./helpers/tools";

function filesOf(userData: string): Record<string, string> {
    return Object.fromEntries((parse(userData).write_files as { path: string; content: string }[]).map((f) => [f.path, f.content]));
}

describe("HAProxy pair config", function () {
    this.timeout(900000);
    let prod: Evaluation;
    before(async () => {
        prod = await evaluate();
    });

    it("routes 5000 to the Patroni primary and 5001 to replicas on the mesh address only", () => {
        for (const lb of ["lb-1", "lb-2"]) {
            const cfg = filesOf(prod.userData[lb])[HAPROXY_CFG];
            const mesh = (prod.outputs.nodes as { name: string; meshAddress: string }[]).find((n) => n.name === lb)?.meshAddress;
            assert.match(cfg, new RegExp(`bind ${mesh}:5000\\n`));
            assert.match(cfg, new RegExp(`bind ${mesh}:5001\\n`));
            assert.match(cfg, /option httpchk OPTIONS \/primary/);
            assert.match(cfg, /on-marked-down shutdown-sessions/);
            for (const db of ["db-1", "db-2", "db-3"]) assert.match(cfg, new RegExp(`server ${db} 10\\.77\\.0\\.\\d+:5432 check port 8008`));
            for (const app of ["app-1", "app-2"]) assert.match(cfg, new RegExp(`server ${app} 10\\.77\\.0\\.\\d+:8080 check`));
            assert.doesNotMatch(cfg, /bind (0\.0\.0\.0|\*):50/);
        }
        assert.equal(filesOf(prod.userData["db-1"])[HAPROXY_CFG], undefined);
    });

    it("every rendered haproxy.cfg passes haproxy -c (Debian 13, HAProxy 3.0)", async function () {
        requireTools(this, ["debootstrap", "unshare", "chroot"], true);
        const rootfs = await labRootfs(prod);
        for (const lb of ["lb-1", "lb-2"]) {
            const files = filesOf(prod.userData[lb]);
            const r = runInRootfs(rootfs, { [HAPROXY_CFG]: files[HAPROXY_CFG], [ORIGIN_PEM]: files[ORIGIN_PEM] }, ["haproxy", "-c", "-V", "-f", HAPROXY_CFG]);
            assert.equal(r.status, 0, `${lb}: ${r.stdout}${r.stderr}`);
            assert.match(r.stdout + r.stderr, /Configuration file is valid/);
        }
        const version = runInRootfs(rootfs, {}, ["haproxy", "-v"]);
        assert.match(version.stdout, /HAProxy version 3\.0\./);
        // And the check does catch a broken file.
        const broken = runInRootfs(rootfs, { [HAPROXY_CFG]: filesOf(prod.userData["lb-1"])[HAPROXY_CFG].replace("balance roundrobin", "balance sideways") }, ["haproxy", "-c", "-V", "-f", HAPROXY_CFG]);
        assert.notEqual(broken.status, 0);
        // It loads the origin certificate too: the Origin CA certificate with a key that is not its own is refused.
        const files = filesOf(prod.userData["lb-1"]);
        const otherKey = generateKeyPairSync("ec", { namedCurve: "P-256" }).privateKey.export({ format: "pem", type: "sec1" }).toString();
        const wrongPem = files[ORIGIN_PEM].replace(/-----BEGIN EC PRIVATE KEY-----[\s\S]+-----END EC PRIVATE KEY-----\n/, otherKey);
        assert.notEqual(wrongPem, files[ORIGIN_PEM]);
        const mismatched = runInRootfs(rootfs, { [HAPROXY_CFG]: files[HAPROXY_CFG], [ORIGIN_PEM]: wrongPem }, ["haproxy", "-c", "-V", "-f", HAPROXY_CFG]);
        assert.notEqual(mismatched.status, 0, mismatched.stdout + mismatched.stderr);
    });
});
