// Red/black release drills. Each starts from the stack file's own release, adds a candidate image
// beside it (the lab imports a stand-in under that name on every app node), publishes the
// program's new DNS records and runs the program's own release gate; then switches colours under
// HTTP and database load: no request may fail, and what visitors are served must move from the
// old image to the new one within the directory's convergence bound. Each ends as it started:
// the stack file's release, the candidate removed and its containers stopped.
import { Agent } from "node:https";
import { Agent as HttpAgent } from "node:http";
import { join } from "node:path";
import { appRelease, parseStackConfig } from "../../../components/config";
import { appUnit } from "../../../components/render/app";
import { imagePort } from "../../../components/release";
import { readStackFile } from "../../lib/stack-file";
import { publishLabDns } from "../dns";
import { EDGE_NAME, ORIGIN_PULL_FILES, originPullTls } from "../edge";
import { elapsed, Log, run, sleep } from "../exec";
import { importStandIns } from "../containers";
import { getOnce } from "../load/web";
import { labStack } from "../stack";
import { netnsName, STATE_DIR } from "../paths";
import { labProgram, LabProgram, stackSource } from "../program";
import { execInNode, labNodes } from "../realize";
import { labDnsRecords } from "../up";
import { UNAFFECTED_RTO_SECONDS } from "./db";
import { faultUnderLoad, webTargets } from "./harness";
import { Drill, DrillContext, DrillResult } from "./types";

/** A change reaches every node within a record TTL and an agent round; the lab's resolver caches nothing, so this is generous. */
const CONVERGE_MS = 120_000;
/** Answers in a row that must name the new image before the switch counts as done. */
const SERVED_IN_A_ROW = 10;

interface Release {
    active: string;
    candidate?: string;
}

/** The stack file's release and app settings, and a candidate image name on another port. */
function stackRelease(): { release: Release; app: Record<string, unknown>; candidate: string } {
    const source = labStack()?.source ?? stackSource({});
    const file = readStackFile(source.file);
    const config = parseStackConfig({ values: file.values, secretKeys: new Set(file.secretKeys), env: {}, offline: true }, source.stack);
    const active = appRelease(config).active;
    const repo = active.replace(/(@sha256:[0-9a-f]{64}|:[A-Za-z0-9._-]+)$/, "");
    const port = imagePort(config.app.port, active);
    const candidate = [1, 2, 3, 4, 5].map((n) => `${repo}:lab-candidate-${n}`).find((c) => imagePort(config.app.port, c) !== port) as string;
    const app = JSON.parse(file.values["vps-ha:app"]) as Record<string, unknown>;
    delete app.image;
    delete app.release;
    return { release: { active }, app, candidate };
}

async function publishRelease(log: Log, r: Release | undefined): Promise<LabProgram> {
    const source = labStack()?.source ?? stackSource({});
    const { app } = stackRelease();
    // A shorter gate than the default 600 s: a broken switch fails the drill sooner.
    const program = await labProgram(source, r ? { app: { ...app, release: { ...r, gateTimeoutSeconds: 180 } } } : {});
    await publishLabDns(labDnsRecords(program), log);
    log(`release: published ${r ? `active ${r.active}${r.candidate ? `, candidate ${r.candidate}` : ""}` : "the stack file's own release"}`);
    return program;
}

/**
 * The program's gate command, run as `pulumi up` would, from the edge's namespace against each
 * HAProxy node in turn (Cloudflare would reach one of them; here both must be ready).
 */
async function runGate(log: Log, program: LabProgram): Promise<{ ok: boolean; notes: string[] }> {
    const notes: string[] = [];
    let ok = true;
    const stack = labStack();
    const hosts = [stack?.hostname ?? "", ...(program.gateScript.match(/https:\/\/([^/]+)\//g) ?? []).map((u) => u.slice(8, -1))];
    for (const lb of labNodes().filter((n) => n.role === "haproxy")) {
        const t = Date.now();
        // As Cloudflare: the origin-pull certificate on each connection to HAProxy.
        const curl = [`--cacert ${join(STATE_DIR, "edge", "origin-ca.pem")} --cert ${ORIGIN_PULL_FILES.cert} --key ${ORIGIN_PULL_FILES.key}`, ...[...new Set(hosts)].filter(Boolean).map((h) => `--resolve ${h}:443:${lb.publicIpv4}`)].join(" ");
        const r = await run(["nsenter", `--net=/run/netns/${netnsName(EDGE_NAME)}`, "--", "env", `VPS_HA_GATE_CURL_ARGS=${curl}`, "sh", "-c", program.gateScript], { timeoutMs: 15 * 60_000, allowFail: true });
        const passed = r.code === 0;
        ok &&= passed;
        notes.push(`release gate via ${lb.name}: ${passed ? "passed" : "FAILED"} in ${elapsed(t)}${passed ? "" : `: ${(r.stderr || r.stdout).trim().slice(-400)}`}`);
        log(notes[notes.length - 1]);
    }
    return { ok, notes };
}

/** Waits (bounded) until every edge serves `image` SERVED_IN_A_ROW times in a row; seconds taken. */
async function waitServed(image: string, timeoutMs: number): Promise<number> {
    const want = `vps-ha lab app ${image}`;
    const agents = { http: new HttpAgent({ keepAlive: false }), https: new Agent({ keepAlive: false, ...originPullTls() }) };
    const hostname = labStack()?.hostname ?? "";
    const started = Date.now();
    try {
        for (const target of webTargets([])) {
            let inARow = 0;
            while (inARow < SERVED_IN_A_ROW) {
                if (Date.now() - started > timeoutMs) throw new Error(`${target.name} did not serve ${image} within ${timeoutMs / 1000} s`);
                const r = await getOnce(agents, target, hostname, "/", 5_000);
                inARow = r.ok && r.served === want ? inARow + 1 : 0;
                await sleep(200);
            }
        }
        return (Date.now() - started) / 1000;
    } finally {
        agents.http.destroy();
        agents.https.destroy();
    }
}

/** Waits (bounded) until the web unit for `image` has stopped on every app node, the program's retireAfterSeconds after it left the release. */
async function waitStopped(log: Log, image: string, basePort: number, retireAfterSeconds: number): Promise<void> {
    const unit = appUnit(imagePort(basePort, image));
    const started = Date.now();
    // The retirement, then a record TTL and a round for the agent to see the record.
    const bound = retireAfterSeconds + 120;
    const deadline = started + bound * 1000;
    for (const n of labNodes().filter((x) => x.role === "app")) {
        for (;;) {
            const r = await execInNode(n.name, ["systemctl", "is-active", unit], { timeoutMs: 10_000, allowFail: true });
            // Only a stopped state counts: a node that cannot be asked has not shown anything stopped.
            // ("failed": the container's exit on SIGTERM may count as a failure; it runs no more.)
            const state = r.stdout.trim();
            if (state === "inactive" || state === "failed") break;
            if (!["active", "activating", "deactivating", "reloading"].includes(state)) throw new Error(`${n.name}: systemctl is-active ${unit} answered ${JSON.stringify(state || r.stderr.trim())}`);
            if (Date.now() > deadline) throw new Error(`${n.name}: ${unit} still runs ${bound} s after the candidate was removed (retireAfterSeconds ${retireAfterSeconds})`);
            await sleep(5_000);
        }
        log(`release: ${n.name} stopped ${unit} (after ${elapsed(started)} of waiting)`);
    }
}

function basePort(): number {
    const source = labStack()?.source ?? stackSource({});
    const file = readStackFile(source.file);
    return parseStackConfig({ values: file.values, secretKeys: new Set(file.secretKeys), env: {}, offline: true }, source.stack).app.port;
}

/** The candidate beside the active image, on every app node, gated. */
async function deployCandidate(ctx: DrillContext, active: string, candidate: string, notes: string[]): Promise<boolean> {
    const stack = labStack();
    if (!stack) throw new Error("release: the lab is not up");
    await importStandIns(labNodes().filter((n) => n.role === "app").map((n) => n.name), stack.app, [candidate], ctx.log);
    const program = await publishRelease(ctx.log, { active, candidate });
    const gate = await runGate(ctx.log, program);
    notes.push(...gate.notes);
    return gate.ok;
}

/** Back to the stack file's release: the candidate removed, its containers stopped, the active image served. */
async function cleanup(ctx: DrillContext, active: string, candidate: string, notes: string[]): Promise<boolean> {
    try {
        const program = await publishRelease(ctx.log, undefined);
        await waitServed(active, CONVERGE_MS);
        const gate = await runGate(ctx.log, program);
        notes.push(...gate.notes.map((n) => `cleanup: ${n}`));
        const t = Date.now();
        await waitStopped(ctx.log, candidate, basePort(), program.retireAfterSeconds);
        notes.push(`cleanup: ${candidate} stopped on every app node ${elapsed(t)} after the release dropped it (retireAfterSeconds ${program.retireAfterSeconds})`);
        return gate.ok;
    } catch (e) {
        notes.push(`cleanup failed: ${(e as Error).message}`);
        return false;
    }
}

/** Switches colours from `from` to `to` under load, then gates the new release. */
async function switchUnderLoad(ctx: DrillContext, drill: string, from: string, to: string, notes: string[]): Promise<DrillResult> {
    // Filled in by the switch (a closure; an object keeps TypeScript's narrowing honest).
    const seen = { gateOk: false, switchSeconds: null as number | null };
    const result = await faultUnderLoad(ctx, {
        drill, target: `${from} -> ${to}`, lost: [], rtoTargetSeconds: UNAFFECTED_RTO_SECONDS,
        expectServed: { from: `vps-ha lab app ${from}`, to: `vps-ha lab app ${to}` },
        fault: async () => {
            const program = await publishRelease(ctx.log, { active: to, candidate: from });
            const t = Date.now();
            try {
                await waitServed(to, CONVERGE_MS);
                seen.switchSeconds = (Date.now() - t) / 1000;
            } catch (e) {
                notes.push((e as Error).message);
            }
            const gate = await runGate(ctx.log, program);
            seen.gateOk = gate.ok;
            notes.push(...gate.notes);
        },
        repair: async () => undefined,
    });
    notes.push(seen.switchSeconds === null ? `visitors were not served ${to} within ${CONVERGE_MS / 1000} s` : `every edge served ${to} ${seen.switchSeconds.toFixed(1)} s after the switch was published`);
    return { ...result, passed: result.passed && seen.gateOk && seen.switchSeconds !== null };
}

async function releaseDrill(ctx: DrillContext, drill: string, back: boolean): Promise<DrillResult> {
    const { release, candidate } = stackRelease();
    const active = release.active;
    const notes: string[] = [];
    let ok = await deployCandidate(ctx, active, candidate, notes);
    let result: DrillResult | undefined;
    try {
        if (!back) {
            result = await switchUnderLoad(ctx, drill, active, candidate, notes);
        } else {
            // Switched first (not measured), then rolled back under load.
            await publishRelease(ctx.log, { active: candidate, candidate: active });
            await waitServed(candidate, CONVERGE_MS);
            result = await switchUnderLoad(ctx, drill, candidate, active, notes);
        }
    } finally {
        ok = (await cleanup(ctx, active, candidate, notes)) && ok;
    }
    return { ...result, notes: [...result.notes, ...notes], passed: result.passed && ok };
}

export const releaseSwitch: Drill = {
    name: "release-switch",
    description: "deploy a candidate image beside the active one (gated), then swap colours under load: no failed request, visitors move to the new image",
    run: (ctx) => releaseDrill(ctx, "release-switch", false),
};

export const releaseRollback: Drill = {
    name: "rollback",
    description: "with a new release switched in, swap back under load: no failed request, visitors move back to the previous image; the candidate is then removed",
    run: (ctx) => releaseDrill(ctx, "rollback", true),
};
