import { strict as assert } from "node:assert";
import { APP_ENV_FILE, APP_UNIT, appEnvironment, appPart, renderEnvFile, WORKER_UNIT } from "../components/render/app";

const base = {
    image: "ghcr.io/acme/app:1.4.2",
    meshAddress: "10.77.0.20",
    port: 8080,
    env: { STRIPE_KEY: "sk_live_x=y", LOG_LEVEL: "info" },
    databaseUrl: "postgresql://app:pw@10.77.0.1:5000,10.77.0.2:5000/app?target_session_attrs=read-write",
};

const unitOf = (part: ReturnType<typeof appPart>, unit: string) => part.files?.find((f) => f.path === `/etc/systemd/system/${unit}`)?.content ?? "";
const execStart = (unit: string) => (/^ExecStart=(.*)$/m.exec(unit) ?? [])[1] ?? "";

describe("app node part", () => {
    it("gives the app its variables, the database URL and the mesh address to bind, in a 0600 file", () => {
        const part = appPart(base);
        const env = part.files?.find((f) => f.path === APP_ENV_FILE);
        assert.equal(env?.permissions, "0600");
        const lines = (env?.content ?? "").trim().split("\n");
        assert.ok(lines.includes(`DATABASE_URL=${base.databaseUrl}`));
        assert.ok(lines.includes("HOST=10.77.0.20"));
        assert.ok(lines.includes("PORT=8080"));
        assert.ok(lines.includes("STRIPE_KEY=sk_live_x=y"), "a value keeps its '=' (podman reads KEY=VALUE literally)");
    });

    it("lets no user variable override what vps-ha sets", () => {
        const env = appEnvironment({ ...base, env: { PORT: "1", HOST: "0.0.0.0", DATABASE_URL: "x" } });
        assert.deepEqual([env.PORT, env.HOST, env.DATABASE_URL], ["8080", "10.77.0.20", base.databaseUrl]);
        assert.equal(renderEnvFile({ A: "1", B: "two words" }), "A=1\nB=two words\n");
    });

    it("runs the image with podman on the host network under systemd, restarting it forever", () => {
        const part = appPart(base);
        const unit = unitOf(part, APP_UNIT);
        const cmd = execStart(unit);
        assert.match(cmd, /^\/usr\/bin\/podman run --rm --replace --name vps-ha-app --init --network host --env-file \/etc\/vps-ha\/app\/app.env --pull missing /);
        assert.ok(cmd.endsWith(" ghcr.io/acme/app:1.4.2"), cmd);
        assert.match(unit, /^Restart=always$/m);
        assert.match(unit, /^After=wg-quick@wg0.service$/m);
        assert.deepEqual(part.packages, ["podman", "catatonit"]);
        assert.deepEqual(part.commands?.[1], ["systemctl", "enable", "--now", APP_UNIT]);
        assert.equal(unitOf(part, WORKER_UNIT), "", "no worker unless configured");
    });

    it("runs a worker from the same image with its own command, and quotes arguments for systemd", () => {
        const part = appPart({ ...base, command: ["bin/web", "--threads", "4"], workerCommand: ["bin/worker", "--queue", "mail billing"] });
        assert.ok(execStart(unitOf(part, APP_UNIT)).endsWith(" ghcr.io/acme/app:1.4.2 bin/web --threads 4"));
        const worker = execStart(unitOf(part, WORKER_UNIT));
        assert.match(worker, /--name vps-ha-worker /);
        assert.ok(worker.endsWith(' ghcr.io/acme/app:1.4.2 bin/worker --queue "mail billing"'), worker);
        assert.deepEqual(part.commands?.[1], ["systemctl", "enable", "--now", APP_UNIT, WORKER_UNIT]);
    });
});
