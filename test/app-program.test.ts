import { strict as assert } from "node:assert";
import { parse } from "yaml";
import { APP_ENV_FILE, APP_UNIT_TEMPLATE, WORKER_UNIT } from "../components/render/app";
import { Evaluation } from "../scripts/lib/mock-program";
import { evaluate } from "./helpers/program";
import { prodStack, withConfig } from "./helpers/stack";

interface CloudConfig {
    packages: string[];
    write_files: { path: string; content: string; permissions: string }[];
    runcmd: string[][];
}

const cloudConfig = (e: Evaluation, node: string) => parse(e.config[node]) as CloudConfig;
const fileOf = (e: Evaluation, node: string, path: string) => cloudConfig(e, node).write_files.find((f) => f.path === path);

describe("app tier (mock runtime)", function () {
    this.timeout(60000);
    let prod: Evaluation;
    before(async () => {
        prod = await evaluate();
    });

    it("gives every app node, and only those, the app's units (the image comes from the release record)", () => {
        for (const node of ["app-1", "app-2"]) {
            const unit = fileOf(prod, node, `/etc/systemd/system/${APP_UNIT_TEMPLATE}`)?.content ?? "";
            assert.match(unit, / \$\{IMAGE\}$/m, `${node} runs the release's image`);
            assert.ok(cloudConfig(prod, node).packages.includes("podman"));
        }
        for (const node of ["lb-1", "lb-2", "db-1", "db-2", "db-3"]) assert.equal(fileOf(prod, node, APP_ENV_FILE), undefined, `${node} runs no app`);
    });

    it("hands each app the database's connection string through both HAProxy nodes and its own mesh address", () => {
        const url = prod.outputs.connectionString as string;
        assert.ok(prod.secretOutputs.includes("connectionString"));
        const nodes = prod.outputs.nodes as { name: string; role: string; meshAddress: string }[];
        for (const proxy of nodes.filter((n) => n.role === "haproxy")) assert.ok(url.includes(`${proxy.meshAddress}:5000`));
        for (const node of nodes.filter((n) => n.role === "app")) {
            const env = fileOf(prod, node.name, APP_ENV_FILE);
            assert.equal(env?.permissions, "0600");
            const lines = env?.content.trim().split("\n") ?? [];
            assert.ok(lines.includes(`DATABASE_URL=${url}`));
            assert.ok(lines.includes(`HOST=${node.meshAddress}`));
        }
    });

    it("adds the app's variables and a worker when configured, keeping the user-data secret", async () => {
        const file = withConfig({ app: { image: "ghcr.io/example/app:2.0.0", port: 9000, env: { STRIPE_KEY: "sk_live_123" }, worker: { command: ["bin/worker", "--queue", "mail"] } } }, prodStack());
        const e = await evaluate(file);
        const env = fileOf(e, "app-1", APP_ENV_FILE)?.content ?? "";
        assert.match(env, /^STRIPE_KEY=sk_live_123$/m);
        const worker = fileOf(e, "app-1", `/etc/systemd/system/${WORKER_UNIT}`)?.content ?? "";
        assert.match(worker, / \$\{IMAGE\} bin\/worker --queue mail$/m);
        for (const r of e.resources.filter((x) => x.name === "app-1" && /Instance|Server/.test(x.type))) {
            assert.ok(r.secretInputs.some((k) => k === "userData" || k === "metadatas"), "the app's secrets ride in secret user-data");
            assert.ok(!JSON.stringify(Object.fromEntries(Object.entries(r.inputs).filter(([k]) => !r.secretInputs.includes(k)))).includes("sk_live_123"));
        }
    });
});
