// Runs the real program (components/stack.ts, what index.ts runs) under Pulumi's mock runtime:
// no engine, no cloud. Every resource the program registers is recorded with its inputs, and
// which of them Pulumi marks secret. The offline plan, the lab and the program tests all read
// the stack through this one function.
import * as pulumi from "@pulumi/pulumi";
import * as settings from "@pulumi/pulumi/runtime/settings";
import { createHash } from "node:crypto";
import { adapters } from "../../components/providers";
import { GET_SSH_KEYS } from "../../components/providers/hcloud";
import { BOOTSTRAP_SUFFIX } from "../../components/providers/ssh";
import { OFFLINE_ENV } from "../../components/config";
import { DIGEST_ENV } from "../../components/desired-state";
import { DesiredDocument } from "../../components/desired-state-records";
import { txtStrings } from "../../components/directory-records";
import { openDesired, wholeNode } from "./desired-open";
import { nextGeneration } from "../../components/desired-state-records";
import { vpsHa } from "../../components/stack";
import { mockTls, mockTlsMade } from "./mock-tls";

export interface RecordedResource {
    type: string;
    name: string;
    /** The id the mock gave it (what other resources' inputs hold when they refer to it). */
    id: string;
    /** Inputs with secrets unwrapped to their plain values. */
    inputs: Record<string, unknown>;
    /** Top-level input names Pulumi held as secrets. */
    secretInputs: string[];
    outputs: Record<string, unknown>;
    /** The resource options the program gave it that decide replacement and deletion. */
    options: RecordedOptions;
}

export interface RecordedOptions {
    protect?: boolean;
    deleteBeforeReplace?: boolean;
    ignoreChanges?: string[];
    /** The names of the resources this one waits for (dependsOn, as the engine is told). */
    dependsOn?: string[];
}

export interface Evaluation {
    resources: RecordedResource[];
    /** The program's stack outputs, resolved; secrets unwrapped, see secretOutputs. */
    outputs: Record<string, unknown>;
    /** Dotted paths of stack outputs that are secret. */
    secretOutputs: string[];
    /** The cloud-config each server received (its bootstrap), by the server resource's name (= node name). */
    userData: Record<string, string>;
    /** Each node's desired-state document as the node's reader opens it from the published records. */
    desired: Record<string, DesiredDocument>;
    /** Everything each node ends up holding (bootstrap and document) in cloud-config form (desired-open.ts wholeNode). */
    config: Record<string, string>;
    /** The public IPv4 the mock gave each server, by node name. */
    publicIpv4: Record<string, string>;
    /** Resource options the engine would act on, by resource name (only those set). */
    options: Record<string, RecordedOptions>;
}

/** The registration request as the mock monitor receives it (the parts read here). */
interface RegisterRequest {
    getType(): string;
    getName(): string;
    getDependenciesList(): string[];
}

export interface ProgramInput {
    stack: string;
    values: Record<string, string>;
    secretKeys: string[];
    /** Environment the program sees (provider tokens may come from here). */
    env?: Record<string, string | undefined>;
    /** Told of every resource as it is registered (even when the program later fails). */
    onResource?: (r: RecordedResource) => void;
    /** The outputs of the stack's last deployment, as the program reads them from itself; absent: never deployed. */
    deployed?: Record<string, unknown>;
    /** The SSH keys already in the Hetzner project (its getSshKeys lookup); absent: none. */
    hcloudSshKeys?: { id: number; name: string; fingerprint: string; publicKey: string; labels: Record<string, string> }[];
    /** Run the program even when this process has an evaluation of the same input (a test of its determinism). */
    fresh?: boolean;
}

/** Cloudflare's edge ranges as the mocked invoke returns them (a few of the published ones). */
export const MOCK_CLOUDFLARE_RANGES = { ipv4Cidrs: ["173.245.48.0/20", "103.21.244.0/22", "104.16.0.0/13"], ipv6Cidrs: ["2400:cb00::/32", "2606:4700::/32"] };

const SECRET_SIG_KEY = "4dabf18193072939515e22adb298388d";
const SECRET_SIG = "1b47061264138c4ac30d75fd1eb44270";

function isSecretWrapper(v: unknown): v is { value: unknown } {
    return typeof v === "object" && v !== null && (v as Record<string, unknown>)[SECRET_SIG_KEY] === SECRET_SIG;
}

/** Unwraps Pulumi's secret markers, noting the top-level keys that held one anywhere inside. */
function unwrap(value: unknown, onSecret: () => void): unknown {
    if (isSecretWrapper(value)) {
        onSecret();
        return unwrap(value.value, onSecret);
    }
    if (Array.isArray(value)) return value.map((v) => unwrap(v, onSecret));
    if (typeof value === "object" && value !== null) {
        return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, unwrap(v, onSecret)]));
    }
    return value;
}

/** Deterministic bytes for a named random resource, so every evaluation renders the same text. */
function mockBytes(name: string, length: number): Buffer {
    const out = Buffer.alloc(length);
    for (let i = 0, block = 0; i < length; block++) i += createHash("sha256").update(`${name}/${block}`).digest().copy(out, i);
    return out;
}

/** A deterministic password for a named RandomPassword (letters and digits, as the program asks). */
function mockPassword(name: string, length: number): string {
    const symbols = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    return [...mockBytes(`password/${name}`, length)].map((b) => symbols[b % symbols.length]).join("");
}

/**
 * A node's lab public address, in 198.18.0.0/15 (the range set aside for benchmarking networks)
 * past 198.18.0.x (the bridge and the lab's own services). From the node's name, so an
 * evaluation with nodes added or removed gives every other node the address it had.
 */
function labAddress(node: string, taken: Set<string>): string {
    const span = 2 * 65536 - 512; // 198.18.1.0 .. 198.19.255.254
    for (let n = createHash("sha256").update(node).digest().readUInt32BE(0) % span; ; n = (n + 1) % span) {
        const v = 256 + n;
        const address = `198.${18 + Math.floor(v / 65536)}.${Math.floor(v / 256) % 256}.${v % 256}`;
        if (!taken.has(address)) return address;
    }
}

/** The node a server resource stands for: its own name, or its host's bootstrap command's. */
function nodeNameOf(resourceName: string): string {
    return resourceName.endsWith(BOOTSTRAP_SUFFIX) ? resourceName.slice(0, -BOOTSTRAP_SUFFIX.length) : resourceName;
}

/** The clock the mocked generation command reads: fixed, so evaluations render the same records. */
export const MOCK_GENERATION_EPOCH_MS = 1767225600000; // 2026-01-01
const generations = new Map<string, { digest: string; generation: number }>();

/**
 * A desired state's generation command (desired-state.ts) as the provider runs it: once on create,
 * again on an update (its digest changed) with the previous output. The state it keeps is this
 * process's, by stack and resource name, as a stack's state file keeps it across `pulumi up`s.
 */
export function mockGeneration(stack: string, name: string, digest: string): string {
    const key = `${stack}/${name}`;
    const generation = generationFor(key, digest);
    generations.set(key, { digest, generation });
    return String(generation);
}

/** The generation the command would output for this digest now (no state changed). */
function generationFor(key: string, digest: string): number {
    const last = generations.get(key);
    return last && last.digest === digest ? last.generation : nextGeneration(last?.generation, MOCK_GENERATION_EPOCH_MS);
}

/** A TXT record's text, its quoted strings joined (as a resolver hands it over). */
function txtText(content: string): string {
    return txtStrings(content).join("");
}

let evaluating = false;

/** What an evaluation read of the mock's state: each generation command's output (by stack/name) and each TLS resource's outputs. */
interface MockState {
    generations: Map<string, { digest: string; generation: number }>;
    tls: Map<string, Record<string, string>>;
}

/** An evaluation as the cache keeps it: never handed out, only copies of it. */
interface CachedEvaluation extends MockState {
    data: EvaluationData;
    config?: Record<string, string>;
}

type EvaluationData = Omit<Evaluation, "config">;

/** Evaluations by their whole input, the latest used last: the tests evaluate many stack files more than once. */
const evaluations = new Map<string, CachedEvaluation>();
/** Enough for a test process; a long lab run keeps only its latest. */
const CACHED_EVALUATIONS = 64;

/**
 * The program's evaluation of the input. An input evaluated before in this process is not run
 * again when a run now would give the same: each generation command would output what it did
 * then, and no TLS resource was renewed since. Each call gets its own copy.
 */
export async function evaluateProgram(input: ProgramInput): Promise<Evaluation> {
    if (evaluating) throw new Error("evaluateProgram runs one program at a time");
    const { onResource, fresh, ...rest } = input;
    // Without an env of its own, the program reads this process's.
    const key = createHash("sha256").update(JSON.stringify({ ...rest, env: rest.env ?? process.env })).digest("hex");
    const cached = fresh ? undefined : evaluations.get(key);
    if (cached && [...cached.generations].every(([k, g]) => generationFor(k, g.digest) === g.generation) && [...cached.tls].every(([name, out]) => mockTlsMade(name) === out)) {
        // As the run it stands for would leave it: each generation command's last output is this one's.
        for (const [k, g] of cached.generations) generations.set(k, { ...g });
        evaluations.delete(key);
        evaluations.set(key, cached);
        const copy = withConfig(structuredClone(cached.data), () => structuredClone((cached.config ??= configOf(cached.data))));
        if (onResource) for (const r of copy.resources) onResource(r);
        return copy;
    }
    const used: MockState = { generations: new Map(), tls: new Map() };
    const data = await run(input, used);
    evaluations.delete(key);
    evaluations.set(key, { ...used, data: structuredClone(data) });
    if (evaluations.size > CACHED_EVALUATIONS) evaluations.delete(evaluations.keys().next().value as string);
    return withConfig(data, () => configOf(data));
}

/** Everything each node ends up holding, in cloud-config form. */
function configOf(e: EvaluationData): Record<string, string> {
    return Object.fromEntries(Object.entries(e.userData).map(([n, u]) => [n, wholeNode(u, e.desired[n])]));
}

/** The evaluation with its config, made when first read: most evaluations never read it. */
function withConfig(data: EvaluationData, make: () => Record<string, string>): Evaluation {
    let config: Record<string, string> | undefined;
    return Object.defineProperty(data, "config", { enumerable: true, get: () => (config ??= make()) }) as Evaluation;
}

async function run(input: ProgramInput, used: MockState): Promise<EvaluationData> {
    evaluating = true;
    const savedEnv = { ...process.env };
    // Pulumi formats a stack trace for every promise and resource it makes, which nobody reads
    // under mocks; through tsx's source maps that is a large share of an evaluation's time. An
    // error's trace is formatted when first read: read after this, it is source-mapped again.
    const sourceMaps = process.sourceMapsEnabled;
    process.setSourceMapsEnabled(false);
    // Pulumi also takes a stack trace for every promise and resource (its leak report, the
    // resource's source position), formatted at once: under mocks, that was a fifth of the
    // time. VPS_HA_TRACES=1 keeps them, for a trace of an error the program throws.
    const traceLimit = Error.stackTraceLimit;
    // The source position lifts the limit for a whole trace of every resource: no position then.
    const positions = pulumi.Resource as unknown as { callsites: () => unknown[] };
    const callsites = positions.callsites;
    // The leak report (at exit, the promises still pending) wraps each of Pulumi's promises in two
    // more: left out with the traces.
    const leaks = require("@pulumi/pulumi/runtime/debuggable") as { debuggablePromise: <T>(p: Promise<T>, ctx?: unknown) => Promise<T> };
    const debuggablePromise = leaks.debuggablePromise;
    if (process.env.VPS_HA_TRACES !== "1") {
        Error.stackTraceLimit = 0;
        positions.callsites = () => [];
        leaks.debuggablePromise = (p) => p;
    }
    try {
        const resources: RecordedResource[] = [];
        const options = new Map<string, RecordedOptions>();
        const publicIpv4: Record<string, string> = {};
        let ids = 1000;
        await pulumi.runtime.setMocks(
            {
                newResource(args) {
                    // The root stack resource: the engine's, not the program's.
                    if (args.type === "pulumi:pulumi:Stack") return { id: `${args.name}-stack`, state: {} };
                    const secretInputs: string[] = [];
                    const inputs = Object.fromEntries(
                        Object.entries(args.inputs as Record<string, unknown>).map(([k, v]) => [k, unwrap(v, () => secretInputs.includes(k) || secretInputs.push(k))]),
                    );
                    let outputs: Record<string, unknown> = { ...inputs };
                    if (args.type === "random:index/randomPassword:RandomPassword") {
                        // As a real one: a new password when its keepers change (the first secretsVersion keeps the name's).
                        const keepers = JSON.stringify(inputs.keepers ?? {});
                        const seed = keepers === "{}" || keepers === '{"secretsVersion":"1"}' ? args.name : `${args.name}/${keepers}`;
                        outputs = { ...inputs, result: mockPassword(seed, Number(inputs.length)) };
                    }
                    if (args.type === "random:index/randomBytes:RandomBytes") {
                        const bytes = mockBytes(args.name, Number(inputs.length));
                        outputs = { ...inputs, base64: bytes.toString("base64"), hex: bytes.toString("hex") };
                    }
                    const digest = (inputs.environment as Record<string, string> | undefined)?.[DIGEST_ENV];
                    if (args.type === "command:local:Command" && digest !== undefined) {
                        const stdout = mockGeneration(input.stack, args.name, digest);
                        used.generations.set(`${input.stack}/${args.name}`, { digest, generation: Number(stdout) });
                        outputs = { ...inputs, stdout, stderr: "" };
                    }
                    if (args.type === "random:index/randomId:RandomId") {
                        // As a real RandomId: new bytes when the keepers change (a replacement), the same otherwise.
                        const bytes = mockBytes(`${args.name}/${JSON.stringify(inputs.keepers ?? {})}`, Number(inputs.byteLength));
                        outputs = { ...inputs, hex: bytes.toString("hex"), b64Std: bytes.toString("base64"), dec: BigInt(`0x${bytes.toString("hex")}`).toString() };
                    }
                    if (args.type === "pulumi:pulumi:StackReference") outputs = { name: inputs.name, outputs: input.deployed ?? {}, secretOutputNames: [] };
                    const tls = mockTls(args.type, args.name, inputs);
                    if (Object.keys(tls).length) used.tls.set(args.name, tls);
                    outputs = { ...outputs, ...tls };
                    for (const adapter of Object.values(adapters)) {
                        const o = adapter.mocks.outputs(args.type, args.name, inputs, () => (publicIpv4[nodeNameOf(args.name)] ??= labAddress(nodeNameOf(args.name), new Set(Object.values(publicIpv4)))));
                        if (o) outputs = o;
                    }
                    const recorded = { type: args.type, name: args.name, id: String(ids++), inputs, secretInputs, outputs, options: options.get(`${args.type}::${args.name}`) ?? {} };
                    resources.push(recorded);
                    input.onResource?.(recorded);
                    return { id: recorded.id, state: outputs };
                },
                call(args) {
                    if (args.token === "cloudflare:index/getIpRanges:getIpRanges") return { ...MOCK_CLOUDFLARE_RANGES, etag: "mock", jdcloudCidrs: [] };
                    if (args.token === GET_SSH_KEYS) return { id: "mock", sshKeys: input.hcloudSshKeys ?? [] };
                    return {};
                },
            },
            "vps-ha",
            input.stack,
            false,
            "organization",
        );
        // The mock monitor hands newResource no options, and a transformation (below) sees the
        // dependencies as objects: their names come from the registration request itself.
        const monitor = settings.getMonitor() as unknown as { registerResource(req: RegisterRequest, cb: unknown): unknown };
        const register = monitor.registerResource.bind(monitor);
        monitor.registerResource = (req: RegisterRequest, cb: unknown) => {
            const key = `${req.getType()}::${req.getName()}`;
            const deps = req.getDependenciesList().map((urn) => urn.slice(urn.lastIndexOf("::") + 2));
            if (deps.length) options.set(key, { ...options.get(key), dependsOn: deps });
            return register(req, cb);
        };
        pulumi.runtime.setAllConfig(input.values, input.secretKeys);
        if (input.env) {
            for (const k of Object.keys(process.env)) if (!(k in input.env)) delete process.env[k];
            Object.assign(process.env, input.env);
        }
        // Offline: a secret the stack file leaves out is listed, not refused (see RawConfig.offline).
        process.env[OFFLINE_ENV] = "1";
        // As the engine runs it: under a root stack resource, which lets a stack transformation see
        // each resource's options as the program gave them (the mock monitor is not told of them).
        let stackOutputs: unknown;
        await pulumi.runtime.runInPulumiStack(async () => {
            pulumi.runtime.registerStackTransformation(({ type, name, opts }) => {
                const seen: RecordedOptions = {};
                if (opts.protect !== undefined) seen.protect = opts.protect;
                const custom = opts as pulumi.CustomResourceOptions;
                if (custom.deleteBeforeReplace !== undefined) seen.deleteBeforeReplace = custom.deleteBeforeReplace;
                if (opts.ignoreChanges !== undefined) seen.ignoreChanges = opts.ignoreChanges;
                options.set(`${type}::${name}`, { ...options.get(`${type}::${name}`), ...seen });
                return undefined;
            });
            stackOutputs = await vpsHa();
            return {};
        });
        const secretOutputs: string[] = [];
        const outputs = (await resolveDeep(stackOutputs, "", secretOutputs)) as Record<string, unknown>;
        await settle(() => resources.length);

        const userData: Record<string, string> = {};
        for (const r of resources) {
            for (const adapter of Object.values(adapters)) {
                const u = adapter.mocks.userData(r.type, r.inputs);
                if (u !== undefined) userData[nodeNameOf(r.name)] = u;
            }
        }
        const records = new Map<string, string>();
        for (const r of resources) {
            if (r.type === "cloudflare:index/dnsRecord:DnsRecord" && r.inputs.type === "TXT") records.set(String(r.inputs.name), txtText(String(r.inputs.content)));
        }
        const desired = await openDesired(userData, records);
        return { resources, outputs, secretOutputs, userData, desired, publicIpv4, options: Object.fromEntries(resources.map((r) => [r.name, r.options])) };
    } finally {
        process.env = savedEnv;
        process.setSourceMapsEnabled(sourceMaps);
        Error.stackTraceLimit = traceLimit;
        positions.callsites = callsites;
        leaks.debuggablePromise = debuggablePromise;
        evaluating = false;
    }
}

/** Resolves every Output inside a value, recording the paths of secret ones. */
async function resolveDeep(value: unknown, path: string, secrets: string[]): Promise<unknown> {
    if (pulumi.Output.isInstance(value)) {
        const out = value as pulumi.Output<unknown>;
        if (await pulumi.isSecret(out)) secrets.push(path);
        const inner = await new Promise<unknown>((resolve) => out.apply((v) => resolve(v)));
        return resolveDeep(inner, path, secrets);
    }
    if (Array.isArray(value)) return Promise.all(value.map((v, i) => resolveDeep(v, `${path}[${i}]`, secrets)));
    if (typeof value === "object" && value !== null && !(value instanceof pulumi.Resource)) {
        const entries = await Promise.all(Object.entries(value).map(async ([k, v]) => [k, await resolveDeep(v, path ? `${path}.${k}` : k, secrets)] as const));
        return Object.fromEntries(entries);
    }
    return value;
}

/** Waits (bounded) until no new resource has been registered for a few event-loop turns. */
async function settle(count: () => number): Promise<void> {
    let last = -1;
    let quiet = 0;
    for (let turn = 0; turn < 2000 && quiet < 5; turn++) {
        await new Promise((r) => setTimeout(r, 2));
        quiet = count() === last ? quiet + 1 : 0;
        last = count();
    }
    if (quiet < 5) throw new Error("the program kept registering resources for 2000 turns; gave up waiting for it to settle");
}
