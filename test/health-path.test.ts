// The widest health path validation lets through (a query with '&' and '='), where it lands: the
// HAProxy config (checked by Debian 13's HAProxy) and the script that holds HAProxy's start until
// an app answers (run by sh, with curl stood in to record the URL it is given).
import { strict as assert } from "node:assert";
import { spawnSync } from "node:child_process";
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parse } from "yaml";
import { HAPROXY_CFG, ORIGIN_PEM, ORIGIN_PULL_CA, renderWaitForApps, ROLLOUT_BEARER_FILE, ROLLOUT_TOKEN_FILE } from "../components/render/haproxy";
import { evaluate } from "./helpers/program";
import { labRootfs, runInRootfs } from "./helpers/rootfs";
import { prodStack, withConfig } from "./helpers/stack";
import { requireTools } from "./helpers/tools";

const PATH_WITH_QUERY = "/api/health?full=1&x=y_~.-";

describe("a health path with a query, where it lands", function () {
    this.timeout(300000);

    it("reaches curl as one exact URL in the wait-for-apps script", () => {
        const dir = mkdtempSync(join(tmpdir(), "vps-ha-health-path-"));
        try {
            writeFileSync(join(dir, "haproxy.cfg"), "backend app\n    server app-1 10.77.0.11:8921 check\n");
            writeFileSync(join(dir, "curl"), `#!/bin/sh\nfor a in "$@"; do printf '%s\\n' "$a"; done > ${dir}/args\nexit 0\n`);
            chmodSync(join(dir, "curl"), 0o755);
            const script = renderWaitForApps({ appHealthPath: PATH_WITH_QUERY }).replace("/etc/haproxy/haproxy.cfg", join(dir, "haproxy.cfg"));
            const r = spawnSync("sh", ["-c", script], { encoding: "utf8", timeout: 10000, env: { PATH: `${dir}:/usr/bin:/bin` } });
            assert.equal(r.status, 0, r.stderr);
            assert.equal(readFileSync(join(dir, "args"), "utf8").split("\n").at(-2), `http://10.77.0.11:8921${PATH_WITH_QUERY}`);
        } finally {
            rmSync(dir, { recursive: true, force: true });
        }
    });

    it("passes haproxy -c (Debian 13) in the HAProxy nodes' config @rootfs", async function () {
        requireTools(this, ["debootstrap", "unshare", "chroot"], true);
        const prod = prodStack();
        const e = await evaluate(withConfig({ app: { ...JSON.parse(prod.values["vps-ha:app"]), healthPath: PATH_WITH_QUERY } }));
        const files = Object.fromEntries((parse(e.config["lb-1"]).write_files as { path: string; content: string }[]).map((f) => [f.path, f.content]));
        assert.ok(files[HAPROXY_CFG].includes(`option httpchk GET ${PATH_WITH_QUERY}\n`));
        const rootfs = await labRootfs(e);
        const r = runInRootfs(rootfs, { [HAPROXY_CFG]: files[HAPROXY_CFG], [ORIGIN_PEM]: files[ORIGIN_PEM], [ORIGIN_PULL_CA]: files[ORIGIN_PULL_CA], [ROLLOUT_TOKEN_FILE]: files[ROLLOUT_TOKEN_FILE], [ROLLOUT_BEARER_FILE]: files[ROLLOUT_BEARER_FILE] }, ["haproxy", "-c", "-V", "-f", HAPROXY_CFG]);
        assert.equal(r.status, 0, `${r.stdout}${r.stderr}`);
        assert.match(r.stdout + r.stderr, /Configuration file is valid/);
    });
});
