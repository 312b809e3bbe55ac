// What the lab realizes: the real program evaluated under the mock runtime for a stack file.
// Each node's cloud-config is exactly what its server resource received; nothing is rendered
// again here.
import { basename, dirname, resolve } from "node:path";
import { appRelease, frontDoorHostnames, parseStackConfig } from "../../components/config";
import { releaseGateScript } from "../../components/app-release";
import { buildPlan } from "../../components/plan";
import { isOwnHost } from "../../components/providers/catalogs";
import { assertLabAddress } from "./paths";
import { imagePort } from "../../components/release";
import { EdgePlan, edgePlanOf, OriginPullClient, originPullClientOf } from "./edge/spec";
import { evaluateProgram, Evaluation } from "../lib/mock-program";
import type { LabApp } from "./containers";
import { readStackFile, stackNameOf } from "../lib/stack-file";
import { LabDnsRecord, programDnsRecords } from "./dns-zone";
import type { LabNodeSpec } from "./realize";
import { LAB_ALERTS } from "./receiver";

const LAB_ALERTS_KEY = "vps-ha:alerts";

export interface StackSource {
    stack: string;
    file: string;
}

/** Where the lab's own stack files live; scripts/lab/stacks/<name>.yaml is stack <name>. */
export const LAB_STACKS_DIR = resolve(__dirname, "stacks");

export function stackSource(values: { stack?: string; config?: string }): StackSource {
    if (values.config) {
        const file = resolve(values.config);
        const labStackName = dirname(file) === LAB_STACKS_DIR ? /^([a-z][a-z0-9-]*)\.ya?ml$/.exec(basename(file))?.[1] : undefined;
        return { stack: values.stack ?? stackNameOf(values.config) ?? labStackName ?? "lab", file };
    }
    const stack = values.stack ?? "prod";
    return { stack, file: resolve(`Pulumi.${stack}.yaml`) };
}

export interface LabProgram {
    specs: LabNodeSpec[];
    /** Every DNS record the program gave Cloudflare (node addresses, the mesh directory). */
    dnsRecords: LabDnsRecord[];
    /** The application's connection string, when the stack has a database. */
    connectionString?: string;
    /** The same through the poolers. */
    pooledConnectionString?: string;
    /** What the app nodes run (the lab stands in for the image). */
    app: LabApp;
    /** The public hostname the HAProxy nodes serve the app on. */
    hostname: string;
    /** What Cloudflare's load balancer does for that hostname (none in budget mode). */
    edge?: EdgePlan;
    /** The release gate script the program gave its gate command (what `pulumi up` runs). */
    gateScript: string;
    /** What Cloudflare presents to the origins for the hostname (Authenticated Origin Pulls): the edge, and whatever in the lab asks HAProxy directly, present it too. */
    originPull: OriginPullClient;
    /** How long an image that left the release keeps running on the app nodes (vps-ha:app.retireAfterSeconds). */
    retireAfterSeconds: number;
}

/**
 * vps-ha:app.retireAfterSeconds in the lab, unless the stack file sets it: the lab's resolver
 * caches nothing, so every HAProxy node moves off a dropped image within one agent round (15 s);
 * two rounds still cover it, and the release drills wait that out instead of the default 120 s.
 */
export const LAB_RETIRE_AFTER_SECONDS = 30;

/** The stack file's values with the lab's own setting where the file has none (every evaluation alike, so no drill's publication changes it). */
function withLabSettings(values: Record<string, string>): void {
    let app: unknown;
    try {
        app = JSON.parse(values["vps-ha:app"] ?? "null");
    } catch {
        return; // not an object here (a secret as a whole): the program says what is wrong with it
    }
    if (app && typeof app === "object" && !Array.isArray(app) && !("retireAfterSeconds" in app)) {
        values["vps-ha:app"] = JSON.stringify({ ...app, retireAfterSeconds: LAB_RETIRE_AFTER_SECONDS });
    }
}

/**
 * `edits`: `vps-ha:<key>` values replacing the stack file's (a drill's next release, say). A stack
 * file without `vps-ha:alerts` gets the lab's receiver (./receiver.ts) there, as a secret, as
 * `pulumi config set --path --secret` would store it: in every evaluation, so a drill's next
 * generation keeps the Alertmanagers the bring-up gave.
 */
/**
 * `deployed`: the outputs of the deployment this run follows (a change the program decides against
 * them, such as a secrets rotation); `secret`: the edited keys set as secrets (`pulumi config set --secret`).
 */
export async function labProgram(source: StackSource, edits: Record<string, unknown> = {}, deployed?: Record<string, unknown>, secret: string[] = []): Promise<LabProgram> {
    const file = readStackFile(source.file);
    if (file.values[LAB_ALERTS_KEY] === undefined) {
        file.values[LAB_ALERTS_KEY] = JSON.stringify(LAB_ALERTS);
        file.secretKeys.push(LAB_ALERTS_KEY);
    }
    for (const [key, value] of Object.entries(edits)) file.values[`vps-ha:${key}`] = JSON.stringify(value);
    for (const key of secret) if (!file.secretKeys.includes(`vps-ha:${key}`)) file.secretKeys.push(`vps-ha:${key}`);
    withLabSettings(file.values);
    const e = await evaluateProgram({ stack: source.stack, values: file.values, secretKeys: file.secretKeys, env: {}, ...(deployed ? { deployed } : {}) });
    const connectionString = typeof e.outputs.connectionString === "string" ? e.outputs.connectionString : undefined;
    const pooledConnectionString = typeof e.outputs.pooledConnectionString === "string" ? e.outputs.pooledConnectionString : undefined;
    // The program accepted this file, so it parses; the lab needs a few of its values.
    const config = parseStackConfig({ values: file.values, secretKeys: new Set(file.secretKeys), env: {}, offline: true }, source.stack);
    const a = config.app;
    const release = appRelease(config);
    const app: LabApp = {
        images: [release.active, ...(release.candidate ? [release.candidate] : [])], port: imagePort(a.port, release.active), healthPath: a.healthPath,
        ...(a.command ? { command: a.command } : {}), ...(a.worker ? { workerCommand: a.worker.command } : {}),
    };
    const hostname = frontDoorHostnames(config).app;
    const edge = edgePlanOf(e, hostname);
    return { specs: specsOf(e), dnsRecords: programDnsRecords(e), app, hostname, gateScript: gateScriptOf(e, buildPlan(config)), originPull: originPullClientOf(e, hostname), retireAfterSeconds: a.retireAfterSeconds, ...(edge ? { edge } : {}), ...(connectionString ? { connectionString } : {}), ...(pooledConnectionString ? { pooledConnectionString } : {}) };
}

export async function labSpecs(source: StackSource): Promise<LabNodeSpec[]> {
    return (await labProgram(source)).specs;
}

/** The gate command's script as the program registered it; it must be what the pure renderer makes. */
function gateScriptOf(e: Evaluation, plan: ReturnType<typeof buildPlan>): string {
    const gates = e.resources.filter((r) => r.type === "command:local:Command" && r.name.endsWith("-gate"));
    if (gates.length !== 1 || typeof gates[0].inputs.create !== "string") throw new Error(`lab: expected one release gate command, found ${gates.length}`);
    if (gates[0].inputs.create !== releaseGateScript(plan)) throw new Error("lab: the release gate command differs from the rendered gate");
    return gates[0].inputs.create;
}

function specsOf(e: Evaluation): LabNodeSpec[] {
    const nodes = e.outputs.nodes as { name: string; role: string; provider: string; meshAddress: string; dnsName: string; publicIpv4?: string }[];
    return nodes.map((n) => {
        const userData = e.userData[n.name];
        if (!userData) throw new Error(`lab: the program gave node ${n.name} no user-data`);
        // A rented server's address is the one the mock gave it. A host you bring keeps the
        // address its stack file names (its DNS record points there), so a lab stack gives such a
        // host a lab address.
        const own = isOwnHost(n.provider);
        const publicIpv4 = own ? n.publicIpv4 : e.publicIpv4[n.name];
        if (!publicIpv4) throw new Error(`lab: the program gave node ${n.name} no public address`);
        if (own && !isLabAddress(publicIpv4)) {
            throw new Error(`lab: node ${n.name} is a host you bring (provider ${n.provider}) at ${publicIpv4}; in a lab stack its host must be a lab address in 198.18.0.0/15 past 198.18.0.255`);
        }
        return { name: n.name, role: n.role, provider: n.provider, publicIpv4, meshAddress: n.meshAddress, userData, dnsNames: [n.dnsName], ...(e.config[n.name] ? { config: e.config[n.name] } : {}) };
    });
}

function isLabAddress(ip: string): boolean {
    try {
        assertLabAddress(ip);
        return !ip.startsWith("198.18.0.");
    } catch {
        return false;
    }
}
