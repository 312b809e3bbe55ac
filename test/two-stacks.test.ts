// Two stacks of the same project in one Cloudflare zone and account and in one Linode and Hetzner
// account: prod and staging, from the same stack file with its defaults, under the mock runtime.
// Nothing one creates may carry a name, label or hostname the other's does.
import { strict as assert } from "node:assert";
import { Evaluation } from "../scripts/lib/mock-program";
import { evaluate, ofType } from "./helpers/program";
import { prodStack } from "./helpers/stack";

/** Every name a provider account or the zone holds: resource names, labels, hostnames, and the monitor's description (its only name). */
function accountNames(e: Evaluation): string[] {
    return e.resources.flatMap((r) => {
        const keys = ["name", "label", "hostname", ...(r.type.endsWith("LoadBalancerMonitor") ? ["description"] : [])];
        return keys.filter((k) => typeof r.inputs[k] === "string").map((k) => `${r.type.split(":").pop()} ${k}=${r.inputs[k]}`);
    });
}

describe("two stacks in one zone and one account (mock runtime)", function () {
    this.timeout(120000);
    let prod: Evaluation;
    let staging: Evaluation;
    before(async () => {
        // The shipped file is the prod stack's: its evaluation is the one shared in this process.
        prod = await evaluate();
        staging = await evaluate(prodStack(), "staging");
    });

    it("share no resource name, record name, hostname, pool, monitor or R2 bucket", () => {
        const mine = accountNames(prod);
        const theirs = new Set(accountNames(staging));
        assert.ok(mine.length > 40, `${mine.length} names`);
        assert.deepEqual(mine.filter((n) => theirs.has(n)), []);
        for (const kind of ["LoadBalancer", "LoadBalancerPool", "LoadBalancerMonitor", "DnsRecord", "R2Bucket", "HostnameTlsSetting"]) {
            assert.ok(mine.some((n) => n.startsWith(`${kind} `)), `prod has a ${kind}`);
        }
        const hostnames = (e: Evaluation) => ofType(e, "cloudflare:index/loadBalancer:LoadBalancer").map((r) => r.inputs.name).sort();
        assert.deepEqual(hostnames(prod), ["app.example.com", "candidate.example.com"]);
        assert.deepEqual(hostnames(staging), ["app-staging.example.com", "candidate-staging.example.com"]);
        assert.deepEqual(ofType(staging, "cloudflare:index/r2Bucket:R2Bucket").map((r) => r.inputs.name), ["vps-ha-staging-backups"]);
    });

    it("leaves the zone-wide settings alone, so neither stack changes the other's (or any other hostname's) TLS", () => {
        for (const e of [prod, staging]) assert.equal(ofType(e, "cloudflare:index/zoneSetting:ZoneSetting").length, 0);
    });
});
