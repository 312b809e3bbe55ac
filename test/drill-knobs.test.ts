import { strict as assert } from "node:assert";
import { parseStackConfig } from "../components/config";
import { DesiredContent } from "../components/desired-state-records";
import { applyDrillKnobs, failStartDropIn, stampFile } from "../components/drill-knobs";
import { raw, withConfig } from "./helpers/stack";

const file = (path: string, content: string) => ({ path, mode: "0644", owner: "root:root", content });

function configWith(drill: unknown) {
    return parseStackConfig(raw(withConfig({ drill })), "prod");
}

describe("drill knobs (vps-ha:drill)", () => {
    it("are validated like every key, naming the path and what is allowed", () => {
        assert.throws(() => configWith({ revision: "Not OK" }), /vps-ha:drill\.revision[^]*1-32 characters/);
        assert.throws(() => configWith({ failStart: { node: "nope", unit: "haproxy.service" } }), /vps-ha:drill\.failStart\.node[^]*"nope" is not a node of this stack; allowed: /);
        const db = configWith(undefined).nodes.db[0].name;
        assert.throws(() => configWith({ failStart: { node: db, unit: "haproxy.service" } }), new RegExp(`vps-ha:drill\\.failStart\\.unit[^]*${db} is a db node and runs no haproxy\\.service`));
        assert.throws(() => configWith({ failStart: { node: db, unit: "sshd.service" } }), /vps-ha:drill\.failStart\.unit/);
        assert.equal(configWith({ failStart: { node: db, unit: "vps-ha-patroni.service" } }).drill?.failStart?.node, db);
        assert.equal(configWith(undefined).drill, undefined);
    });

    it("stamps a revision where the format ignores it: a comment, a JSON object's key, a tool's last line", () => {
        const yml = stampFile(file("/etc/patroni/patroni.yml", "scope: x\n"), "r2");
        assert.equal(yml.content, "scope: x\n# vps-ha revision r2\n");
        const json = stampFile(file("/etc/vps-ha/switchover.json", '{\n "a": 1\n}\n'), "r2");
        assert.deepEqual(JSON.parse(json.content), { a: 1, _revision: "r2" });
        assert.ok(json.content.endsWith("}\n"));
        const tool = stampFile(file("/usr/local/sbin/vps-ha-rollout", "#!/usr/bin/python3\nimport x"), "r2");
        assert.equal(tool.content, "#!/usr/bin/python3\nimport x\n# vps-ha revision r2\n");
        // A format without a safe comment (a certificate, a list of passwords) is left as it is.
        const pem = file("/etc/ssl/x.pem", "-----BEGIN CERTIFICATE-----\n");
        assert.equal(stampFile(pem, "r2"), pem);
        assert.equal(stampFile(file("/etc/x.json", "[1]"), "r2").content, "[1]");
    });

    it("applies the revision to every node and says which files it could not stamp", () => {
        const contents: Record<string, DesiredContent> = {
            a: { files: [file("/etc/a.conf", "x = 1\n"), file("/etc/a.pem", "PEM")] },
            b: { files: [file("/etc/b.json", "{}")] },
        };
        const r = applyDrillKnobs({ drill: { revision: "r3" } }, contents);
        assert.notEqual(r.contents.a.files[0].content, contents.a.files[0].content);
        assert.deepEqual(JSON.parse(r.contents.b.files[0].content), { _revision: "r3" });
        assert.deepEqual(r.unstamped, { a: ["/etc/a.pem"] });
        assert.equal(applyDrillKnobs({ drill: undefined }, contents).contents, contents);
    });

    it("keeps one node's daemon from starting: a drop-in, and a restart (not a reload) of that unit", () => {
        const contents: Record<string, DesiredContent> = {
            "lb-1": { files: [file("/etc/haproxy/haproxy.cfg", "global\n")], restarts: [{ unit: "haproxy.service", paths: ["/etc/haproxy/haproxy.cfg"], reload: true }] },
            "lb-2": { files: [file("/etc/haproxy/haproxy.cfg", "global\n")], restarts: [{ unit: "haproxy.service", paths: ["/etc/haproxy/haproxy.cfg"], reload: true }] },
        };
        const r = applyDrillKnobs({ drill: { failStart: { node: "lb-1", unit: "haproxy.service" } } }, contents);
        const dropIn = failStartDropIn("haproxy.service");
        assert.deepEqual(r.contents["lb-1"].files.map((f) => f.path), ["/etc/haproxy/haproxy.cfg", dropIn.path]);
        assert.match(dropIn.content, /^ExecStartPre=\/bin\/false$/m);
        assert.deepEqual(r.contents["lb-1"].restarts, [{ unit: "haproxy.service", paths: ["/etc/haproxy/haproxy.cfg", dropIn.path] }]);
        assert.deepEqual(r.contents["lb-2"], contents["lb-2"]);
    });
});
