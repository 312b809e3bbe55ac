import { strict as assert } from "node:assert";
import { APP_ENV_FILE, APP_UNIT_TEMPLATE, appEnvironment, appPart, renderEnvFile, WORKER_ENV_FILE, WORKER_UNIT } from "../components/render/app";
import { DIRECTORY_CONFIG_DIR } from "../components/render/directory-agent";

const base = {
    meshAddress: "10.77.0.20",
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
        assert.ok(!lines.some((l) => l.startsWith("PORT=")), "each image's unit instance passes its own PORT");
        assert.ok(lines.includes("STRIPE_KEY=sk_live_x=y"), "a value keeps its '=' (podman reads KEY=VALUE literally)");
    });

    it("lets no user variable override what vps-ha sets", () => {
        const env = appEnvironment({ ...base, env: { HOST: "0.0.0.0", DATABASE_URL: "x" } });
        assert.deepEqual([env.HOST, env.DATABASE_URL], ["10.77.0.20", base.databaseUrl]);
        assert.equal(renderEnvFile({ A: "1", B: "two words" }), "A=1\nB=two words\n");
    });

    it("runs each image as an instance of a template unit named by its port, the image read from the agent's env file", () => {
        const part = appPart(base);
        const unit = unitOf(part, APP_UNIT_TEMPLATE);
        const cmd = execStart(unit);
        assert.match(cmd, /^\/usr\/bin\/podman run --rm --replace --name vps-ha-app-%i --init --uidmap=0:200000:65536 --gidmap=0:200000:65536 --cap-drop=all --security-opt=no-new-privileges --read-only --network host --env-file \/etc\/vps-ha\/app\/app.env --env PORT=%i --pull missing /);
        assert.ok(cmd.endsWith(" ${IMAGE}"), cmd);
        assert.match(unit, /^EnvironmentFile=\/etc\/vps-ha\/app\/release-%i.env$/m);
        assert.match(unit, /^ExecStop=\/usr\/bin\/podman stop --ignore -t 10 vps-ha-app-%i$/m);
        assert.match(unit, /^Restart=always$/m);
        assert.match(unit, /^After=wg-quick@wg0.service$/m);
        assert.deepEqual(part.packages, ["podman", "catatonit"]);
        assert.deepEqual(part.commands, [["systemctl", "daemon-reload"]], "the agent starts what the release names");
        assert.equal(unitOf(part, WORKER_UNIT), "", "no worker unless configured");
        assert.ok(!JSON.stringify(part).includes("ghcr.io"), "no image anywhere in the node's user-data");
        const agent = JSON.parse(part.files?.find((f) => f.path === `${DIRECTORY_CONFIG_DIR}/app.json`)?.content ?? "{}");
        assert.equal(agent.app.webUnit, "vps-ha-app@{port}.service");
        assert.equal(agent.app.worker, null);
    });

    it("runs a worker on the active image with its own command, and quotes arguments for systemd", () => {
        const part = appPart({ ...base, command: ["bin/web", "--threads", "4"], workerCommand: ["bin/worker", "--queue", "mail billing"] });
        assert.ok(execStart(unitOf(part, APP_UNIT_TEMPLATE)).endsWith(" ${IMAGE} bin/web --threads 4"));
        const worker = unitOf(part, WORKER_UNIT);
        assert.match(execStart(worker), /--name vps-ha-worker /);
        assert.ok(execStart(worker).endsWith(' ${IMAGE} bin/worker --queue "mail billing"'), worker);
        assert.match(worker, new RegExp(`^EnvironmentFile=${WORKER_ENV_FILE}$`, "m"));
        const agent = JSON.parse(part.files?.find((f) => f.path === `${DIRECTORY_CONFIG_DIR}/app.json`)?.content ?? "{}");
        assert.deepEqual(agent.app.worker, { unit: WORKER_UNIT, envFile: WORKER_ENV_FILE });
    });
});
