// `npm run drift` before it reaches Pulumi: what it needs, and how it says so (exit 2, no stack
// trace). The Pulumi runs themselves are covered by the report's recorded events (drift-report.test.ts).
import { strict as assert } from "node:assert";
import { spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { missingPrerequisites, PrereqFacts } from "../scripts/lib/drift-prereqs";

const ROOT = join(__dirname, "..");

const nodes = { app: [{ provider: "linode" }, { provider: "hcloud" }], db: [{ provider: "hcloud" }] };
const ready: PrereqFacts = {
    stack: "prod",
    cliVersion: "v3.200.0",
    login: { ok: true },
    credentialsFile: true,
    env: { LINODE_TOKEN: "x", HCLOUD_TOKEN: "y", CLOUDFLARE_API_TOKEN: "z" },
    stackFile: "Pulumi.prod.yaml",
    stackDoc: { config: { "vps-ha:nodes": nodes } },
};

describe("drift check prerequisites", () => {
    it("has nothing to say when everything is there", () => {
        assert.deepEqual(missingPrerequisites(ready), []);
        // Tokens from stack config secrets do as well as environment variables.
        const config = { "vps-ha:nodes": nodes, "linode:token": { secure: "v1:abc" }, "hcloud:token": { secure: "v1:def" }, "cloudflare:apiToken": { secure: "v1:ghi" } };
        assert.deepEqual(missingPrerequisites({ ...ready, env: {}, stackDoc: { config } }), []);
    });

    it("names a missing CLI and a missing login with how to get them", () => {
        const p = missingPrerequisites({ ...ready, cliVersion: undefined, login: undefined, credentialsFile: false, env: { ...ready.env } });
        assert.equal(p.length, 2, p.join("\n"));
        assert.match(p[0], /Pulumi CLI is not on PATH.*curl -fsSL https:\/\/get\.pulumi\.com \| sh/);
        assert.match(p[1], /PULUMI_ACCESS_TOKEN.*pulumi login/);
        // Without a CLI a token in the environment is taken on trust.
        assert.equal(missingPrerequisites({ ...ready, cliVersion: undefined, login: undefined, credentialsFile: false, env: { ...ready.env, PULUMI_ACCESS_TOKEN: "t" } }).length, 1);
        const refused = missingPrerequisites({ ...ready, login: { ok: false, detail: "401 Unauthorized: No credentials provided or are invalid." } });
        assert.match(refused[0], /no Pulumi backend login \(401 Unauthorized/);
    });

    it("asks only for the tokens of the providers the stack uses, and always Cloudflare's", () => {
        const p = missingPrerequisites({ ...ready, env: {} });
        assert.deepEqual(p.map((x) => /set the (\w+) environment variable/.exec(x)?.[1]), ["CLOUDFLARE_API_TOKEN", "LINODE_TOKEN", "HCLOUD_TOKEN"]);
        const own = missingPrerequisites({ ...ready, env: {}, stackDoc: { config: { "vps-ha:nodes": { app: [{ provider: "ssh" }] } } } });
        assert.equal(own.length, 1);
        assert.match(own[0], /CLOUDFLARE_API_TOKEN.*pulumi config set --secret cloudflare:apiToken <token> --stack prod/);
    });

    it("flags the example's placeholder secrets, which no environment variable can stand in for", () => {
        const config = { "vps-ha:nodes": nodes, "linode:token": { secure: "v1:placeholder:replace-me" }, "vps-ha:database": { backups: { secretAccessKey: { secure: "v1:placeholder:x" } } } };
        const p = missingPrerequisites({ ...ready, stackDoc: { config } });
        assert.equal(p.length, 1, p.join("\n"));
        assert.match(p[0], /placeholder secrets.*\(linode:token, vps-ha:database\.backups\.secretAccessKey\)/);
    });

    it("wants the passphrase of a passphrase-encrypted stack, and the stack file itself", () => {
        assert.match(missingPrerequisites({ ...ready, stackDoc: { ...ready.stackDoc, encryptionsalt: "v1:abc" } })[0], /PULUMI_CONFIG_PASSPHRASE/);
        assert.deepEqual(missingPrerequisites({ ...ready, stackDoc: { ...ready.stackDoc, encryptionsalt: "v1:abc" }, env: { ...ready.env, PULUMI_CONFIG_PASSPHRASE: "p" } }), []);
        assert.match(missingPrerequisites({ ...ready, stackDoc: undefined }).join("\n"), /Pulumi\.prod\.yaml is missing/);
    });
});

describe("npm run drift, as a process @cli", function () {
    this.timeout(60000);
    let home: string;
    let nodeBin: string;
    before(() => {
        home = mkdtempSync(join(tmpdir(), "vps-ha-drift-"));
        nodeBin = join(home, "node-bin");
        mkdirSync(nodeBin);
        symlinkSync(process.execPath, join(nodeBin, "node"));
    });
    after(() => rmSync(home, { recursive: true, force: true }));
    // PATH holds node (and, when given, a stand-in `pulumi`) and nothing else, whatever the machine has.
    const drift = (args: string[], extraPath?: string) => {
        const PATH = [extraPath, nodeBin].filter(Boolean).join(":");
        const r = spawnSync(process.execPath, [join(ROOT, "node_modules/tsx/dist/cli.mjs"), join(ROOT, "scripts/drift-check.ts"), ...args], {
            cwd: ROOT, encoding: "utf8", timeout: 50000, env: { PATH, HOME: home },
        });
        return { code: r.status, out: r.stdout, err: r.stderr };
    };

    it("without the Pulumi CLI, says what is missing and how to get it: exit 2, no stack trace", () => {
        const r = drift(["--stack", "prod"]);
        assert.equal(r.code, 2, r.err);
        assert.match(r.err, /The drift check cannot run/);
        assert.match(r.err, /Pulumi CLI is not on PATH/);
        assert.match(r.err, /get\.pulumi\.com/);
        assert.match(r.err, /PULUMI_ACCESS_TOKEN/);
        assert.doesNotMatch(r.err, /\n\s+at /, "no stack trace");
        assert.equal(r.out, "");
    });

    it("with a CLI that is not logged in, passes on the CLI's own reason", () => {
        const bin = join(home, "bin");
        mkdirSync(bin, { recursive: true });
        writeFileSync(join(bin, "pulumi"), [
            "#!/bin/sh",
            'case "$1" in',
            "  version) echo v3.200.0 ;;",
            "  *) echo 'error: 401 Unauthorized: No credentials provided or are invalid.' >&2; exit 255 ;;",
            "esac",
        ].join("\n") + "\n", { mode: 0o755 });
        const r = drift(["--stack", "prod"], bin);
        assert.equal(r.code, 2, r.err);
        assert.doesNotMatch(r.err, /Pulumi CLI is not on PATH/);
        assert.match(r.err, /no Pulumi backend login \(401 Unauthorized: No credentials provided or are invalid\.\)/);
        assert.doesNotMatch(r.err, /\n\s+at /, "no stack trace");
    });

    it("exits 2 with the usage on bad arguments", () => {
        for (const args of [[], ["--stack"], ["--bogus"], ["--stack", "prod", "extra"]]) {
            const r = drift(args);
            assert.equal(r.code, 2, `${args.join(" ")}: ${r.err}`);
            assert.match(r.err, /usage: npm run drift -- --stack NAME/);
        }
    });
});
