// unattended-upgrades' files (components/render/unattended-upgrades.ts): their apt.conf shape, the
// refusals, and what every node of the prod stack gets; the held patterns against the packages
// the nodes really install. Run by Debian 13's own unattended-upgrade in upgrades-daemons.test.ts.
import { strict as assert } from "node:assert";
import { parse } from "yaml";
import { Evaluation } from "../scripts/lib/mock-program";
import { APT_UPGRADE_DROPIN, UPGRADE_SIGNALS_UNIT } from "../components/render/monitoring";
import {
    AUTO_UPGRADES_CONF,
    HELD_PACKAGES,
    NODE_UNATTENDED_UPGRADES,
    renderAptConf,
    renderAutoUpgrades,
    renderUnattendedUpgrades,
    SECURITY_ORIGIN,
    UNATTENDED_UPGRADES_CONF,
} from "../components/render/unattended-upgrades";
import { evaluate } from "./helpers/program";

interface Doc { packages: string[]; write_files: { path: string; content: string }[]; runcmd: string[][] }

describe("unattended-upgrades' files", () => {
    let prod: Evaluation;
    before(async function () {
        this.timeout(120_000);
        prod = await evaluate();
    });

    it("renders apt.conf: a value quoted, a list replacing Debian's (#clear), never a reboot", () => {
        assert.equal(renderAutoUpgrades().split("\n").slice(1).join("\n"), 'APT::Periodic::Update-Package-Lists "1";\nAPT::Periodic::Unattended-Upgrade "1";\n');
        const text = renderUnattendedUpgrades(NODE_UNATTENDED_UPGRADES);
        assert.ok(text.includes(
            '#clear Unattended-Upgrade::Origins-Pattern;\nUnattended-Upgrade::Origins-Pattern {\n    "origin=Debian,codename=${distro_codename}-security,label=Debian-Security";\n};\n',
        ), text);
        assert.ok(text.includes('#clear Unattended-Upgrade::Package-Blacklist;\nUnattended-Upgrade::Package-Blacklist {\n    "haproxy$";\n'), text);
        assert.match(text, /^\/\/ A database member's reboot is ordered like any other restart: never one on its own.\nUnattended-Upgrade::Automatic-Reboot "false";$/m);
        assert.match(text, /^Unattended-Upgrade::Automatic-Reboot "false";$/m);
        assert.match(text, /^Unattended-Upgrade::Remove-Unused-Dependencies "false";$/m);
        assert.deepEqual(NODE_UNATTENDED_UPGRADES.origins, [SECURITY_ORIGIN]);
    });

    it("refuses an empty origin list, a pattern that is not key=value pairs, a held name that is no package pattern, a quote", () => {
        assert.throws(() => renderUnattendedUpgrades({ origins: [], held: [] }), /unattended-upgrades: origins must name at least one archive/);
        assert.throws(() => renderUnattendedUpgrades({ origins: ["Debian-Security"], held: [] }), /origin pattern "Debian-Security" must be key=value pairs joined by commas/);
        assert.throws(() => renderUnattendedUpgrades({ origins: [SECURITY_ORIGIN], held: ["Bad Name"] }), /held package "Bad Name" must be a package name or a pattern of one/);
        assert.throws(() => renderAptConf([], { "A::B": 'say "hi"' }), /apt.conf: value "say \\"hi\\"" must not hold a quote/);
        assert.throws(() => renderAptConf([], { "A::": "1" }), /apt.conf: key "A::" must be names joined by ::/);
    });

    it("every node of the prod stack gets the package, both files, the upgrade signals' timer and apt-daily-upgrade's drop-in", () => {
        for (const [name, config] of Object.entries(prod.config)) {
            const doc = parse(config) as Doc;
            assert.ok(doc.packages.includes("unattended-upgrades"), name);
            const paths = doc.write_files.map((f) => f.path);
            for (const p of [AUTO_UPGRADES_CONF, UNATTENDED_UPGRADES_CONF, APT_UPGRADE_DROPIN, `/etc/systemd/system/${UPGRADE_SIGNALS_UNIT}.timer`]) assert.ok(paths.includes(p), `${name} gets ${p}`);
            assert.equal(doc.write_files.find((f) => f.path === UNATTENDED_UPGRADES_CONF)?.content, renderUnattendedUpgrades(NODE_UNATTENDED_UPGRADES), name);
            const signals = JSON.parse(doc.write_files.find((f) => f.path === "/etc/vps-ha/signals.json")!.content) as Record<string, unknown>;
            assert.deepEqual(signals.upgrades, {}, `${name}'s signals config reads apt's own paths`);
        }
    });

    it("holds the daemons the rollout orders, by the names the nodes install, and nothing else they install", () => {
        const installed = [...new Set(Object.values(prod.config).flatMap((c) => (parse(c) as Doc).packages))].sort();
        const held = installed.filter((p) => HELD_PACKAGES.some((re) => new RegExp(`^(?:${re})`).test(p)));
        assert.deepEqual(held, ["etcd-server", "haproxy", "patroni", "pgbouncer", "postgresql-17"]);
        // Every pattern names a package some node installs (a renamed package would be upgraded unattended).
        for (const re of HELD_PACKAGES) assert.ok(installed.some((p) => new RegExp(`^(?:${re})`).test(p)), `${re} matches none of ${installed.join(" ")}`);
    });
});
