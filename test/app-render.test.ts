import { strict as assert } from "node:assert";
import { APP_ENV_FILE, APP_UNIT_TEMPLATE, appEnvironment, appPart, renderEnvFile, WORKER_ENV_FILE, WORKER_UNIT } from "../components/render/app";
import { DIRECTORY_CONFIG_DIR } from "../components/render/directory-agent";
import { execWord } from "../components/render/systemd";
import { evaluate } from "./helpers/program";
import { labRootfs } from "./helpers/rootfs";
import { Sandbox } from "./helpers/sandbox";
import { requireTools } from "./helpers/tools";

const base = {
    meshAddress: "10.77.0.20",
    env: { STRIPE_KEY: "sk_live_x=y", LOG_LEVEL: "info" },
    databaseUrl: "postgresql://app:pw@10.77.0.1:5000,10.77.0.2:5000/app?target_session_attrs=read-write",
    retireAfterSeconds: 45,
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
        assert.match(unit, /^SuccessExitStatus=143$/m, "a stop on purpose is a clean stop");
        assert.match(unit, /^Restart=always$/m);
        assert.match(unit, /^After=wg-quick@wg0.service$/m);
        assert.deepEqual(part.packages, ["podman", "catatonit"]);
        assert.deepEqual(part.commands, [["systemctl", "daemon-reload"]], "the agent starts what the release names");
        assert.equal(unitOf(part, WORKER_UNIT), "", "no worker unless configured");
        assert.ok(!JSON.stringify(part).includes("ghcr.io"), "no image anywhere in the node's user-data");
        const agent = JSON.parse(part.files?.find((f) => f.path === `${DIRECTORY_CONFIG_DIR}/app.json`)?.content ?? "{}");
        assert.equal(agent.app.webUnit, "vps-ha-app@{port}.service");
        assert.equal(agent.app.worker, null);
        assert.equal(agent.app.retireAfterSeconds, 45, "the agent stops a dropped image after the stack's retireAfterSeconds");
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

/**
 * Reads back the argv systemd parsed, from its own unit dump (`Command Line:`, written by
 * quote_command_line: a word that needs it is put in double quotes with `"`, `\\`, `` ` `` and `$`
 * backslash-escaped; words are separated by one space).
 */
function parseDumpedCommandLine(line: string): string[] {
    const words: string[] = [];
    let i = 0;
    while (i < line.length) {
        let word = "";
        if (line[i] === '"') {
            for (i++; i < line.length && line[i] !== '"'; i++) word += line[i] === "\\" ? line[++i] : line[i];
            if (line[i] !== '"') throw new Error(`unterminated quote in ${line}`);
            i++;
        } else {
            for (; i < line.length && line[i] !== " "; i++) word += line[i];
        }
        if (i < line.length && line[i] !== " ") throw new Error(`no space after a word at ${i} in ${line}`);
        words.push(word);
        i++;
    }
    return words;
}

/** Words systemd would split, unquote, unescape or refuse if written bare (systemd.service(5), "Command lines"). */
const AWKWARD = [
    "bin/web", "--name", 'a "quoted" word', '"', "two  spaces", " lead", "trail ", "--opt=a b", "back\\slash", "\\", "trail\\",
    ";", "\\;", "x;y", "it's", "'single quoted'", "\\x41", "a\\nb", "\\\"", "#hash", "*glob?", "~", "{}", "-", "@x", "=", "ünïcödé", "\u00a0nbsp", "`tick`",
];

describe("app command lines, parsed by Debian 13's systemd @rootfs", function () {
    this.timeout(900000);
    let sb: Sandbox | undefined;
    /** What systemd parsed as `unit`'s ExecStart, from `systemd-analyze verify` (systemd 257's own unit loader; nothing is started); none if it refused the unit. */
    const parsedExecStart = (name: string, content: string): { commands: string[][]; refused?: string } => {
        const s = sb as Sandbox;
        s.write("app", `/etc/systemd/system/${name}`, content);
        const r = s.exec("app", ["systemd-analyze", "verify", `/etc/systemd/system/${name}`], { env: { SYSTEMD_LOG_LEVEL: "debug" }, timeoutMs: 60000 });
        const out = r.stdout + r.stderr;
        if (out.includes(`Unit ${name} has a bad unit file setting.`)) {
            const why = out.split("\n").filter((l) => l.includes(name) && !/Handling|unit_file_build_name_map|bad unit file setting|fatal error/.test(l));
            return { commands: [], refused: why.join("\n") || "refused" };
        }
        const start = out.indexOf(`→ Unit ${name}:`);
        assert.ok(start >= 0, `no dump of ${name}: ${out.slice(-2000)}`);
        const unit = out.slice(start, out.indexOf("\n\t→ Unit ", start + 1) >= 0 ? out.indexOf("\n\t→ Unit ", start + 1) : undefined);
        const exec = unit.indexOf("→ ExecStart:");
        assert.ok(exec >= 0, `no ExecStart in the dump of ${name}: ${unit.slice(0, 3000)}`);
        const lines = unit.slice(exec).split("\n").slice(1);
        const commands: string[][] = [];
        for (const l of lines) {
            const m = /^\t+Command Line: (.*)$/.exec(l);
            if (m) commands.push(parseDumpedCommandLine(m[1]));
            else if (/→ /.test(l)) break;
        }
        return { commands };
    };

    before(async function () {
        requireTools(this, ["debootstrap", "unshare", "chroot", "nsenter", "ip"], true);
        const rootfs = await labRootfs(await evaluate());
        sb = await Sandbox.open(`vhtest-cmd${process.pid}`, rootfs, [{ name: "app", address: "10.77.0.20" }]);
        const version = sb.exec("app", ["systemctl", "--version"]);
        assert.match(version.stdout, /^systemd 257 /);
    });
    after(async () => {
        await sb?.close();
    });

    it("gives the app and the worker exactly the words configured: quotes, backslashes, semicolons and spaces included", () => {
        const worker = [...AWKWARD].reverse();
        const part = appPart({ ...base, command: AWKWARD, workerCommand: worker });
        const web = parsedExecStart("vps-ha-app@8921.service", unitOf(part, APP_UNIT_TEMPLATE));
        assert.equal(web.refused, undefined);
        assert.equal(web.commands.length, 1, JSON.stringify(web));
        const argv = web.commands[0];
        assert.deepEqual(argv.slice(argv.indexOf("${IMAGE}") + 1), AWKWARD);
        assert.deepEqual(argv.slice(0, 6), ["/usr/bin/podman", "run", "--rm", "--replace", "--name", "vps-ha-app-8921"], "the instance specifier is still resolved");
        assert.ok(argv.includes("PORT=8921"));
        const w = parsedExecStart("vps-ha-worker.service", unitOf(part, WORKER_UNIT));
        assert.equal(w.commands.length, 1, JSON.stringify(w));
        assert.deepEqual(w.commands[0].slice(w.commands[0].indexOf("${IMAGE}") + 1), worker);
    });

    it("would not, written bare: the check sees systemd re-split, unescape or refuse them", () => {
        const bare = (words: string[]) => unitOf(appPart({ ...base, command: ["bin/web"] }), APP_UNIT_TEMPLATE).replace(/^(ExecStart=.*) bin\/web$/m, `$1 ${words.join(" ")}`);
        const tail = (r: { commands: string[][] }) => r.commands[0].slice(r.commands[0].indexOf("${IMAGE}") + 1);
        // An unbalanced quote: systemd drops the line.
        assert.match(parsedExecStart("vps-ha-app@8922.service", bare(['"', "x"])).refused ?? "", /Unbalanced quoting/);
        // A bare ';' ends the command: two where the unit means one, refused for a service that is not oneshot.
        assert.match(parsedExecStart("vps-ha-app@8923.service", bare(["a", ";", "b"])).refused ?? "", /more than one ExecStart=/);
        // Quotes, backslashes and spaces: loaded, but not the words meant (systemd reads "\\s" as a space, "\\x41" as "A").
        const words = ['a "quoted" word', "two  spaces", "back\\slash", "x;y", "\\x41", "'single quoted'"];
        const loaded = parsedExecStart("vps-ha-app@8924.service", bare(words));
        assert.deepEqual(tail(loaded), ["a", "quoted", "word", "two", "spaces", "back lash", "x;y", "A", "single quoted"]);
        // Quoted by the renderer, the same words (and the ';') come through word for word.
        for (const [unit, cmd] of [["vps-ha-app@8925.service", words], ["vps-ha-app@8926.service", ["a", ";", "b", '"', "x"]]] as const) {
            const quoted = parsedExecStart(unit, unitOf(appPart({ ...base, command: [...cmd] }), APP_UNIT_TEMPLATE));
            assert.equal(quoted.commands.length, 1, JSON.stringify(quoted));
            assert.deepEqual(tail(quoted), cmd);
        }
    });

    it("refuses, in the renderer too, what no quoting carries through systemd ('%', '$', control characters)", () => {
        for (const w of ["100%", "$HOME", "a\nb", "tab\tx"]) assert.throws(() => execWord(w), /cannot hold/);
        assert.equal(execWord("plain-word"), "plain-word");
        assert.equal(execWord('say "hi"'), '"say \\"hi\\""');
    });
});

