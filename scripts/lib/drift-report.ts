// The drift report: a pure function over the engine events of two runs, a refresh in preview
// (the cloud against the state) and a preview with refresh (the program against the cloud).
// Per drifted resource: `type name`, the operation, and each changed property old -> new with
// every secret masked. No I/O; scripts/drift-check.ts runs Pulumi and feeds the events in.
import type { EngineEvent, OpType, StepEventMetadata, StepEventStateMetadata } from "@pulumi/pulumi/automation";
import { COMPUTED, diffPaths, formatPath, lookup, Lookup, maskValue, MASK, parsePath, Segment } from "./drift-values";

export type Phase = "refresh" | "preview";
export type DriftOp = "update" | "delete" | "replace" | "create";

export interface PropertyChange {
    path: string;
    kind: string;
    /** Absent when the property is absent on that side. */
    old?: unknown;
    new?: unknown;
    secret?: true;
}

export interface DriftedResource {
    phase: Phase;
    resource: string;
    urn: string;
    op: DriftOp;
    changes: PropertyChange[];
}

export interface DriftReport {
    stack: string;
    drift: boolean;
    resources: DriftedResource[];
}

export interface EventStreams {
    refresh?: EngineEvent[];
    preview?: EngineEvent[];
}

/**
 * Properties always masked, wherever they appear in a path: the program's
 * additionalSecretOutputs (hcloud userData, linode metadatas, command stdin) and the secret
 * outputs of the random and tls resources it uses, plus credentials by name.
 */
export const DEFAULT_SECRET_KEYS: readonly string[] = [
    "userData", "metadatas", "stdin", "result", "bcryptHash", "base64", "hex",
    "privateKeyPem", "privateKeyOpenssh", "privateKeyPemPkcs8", "password", "token", "apiToken",
    "accessKeyId", "secretAccessKey", "connectionString", "readOnlyConnectionString",
];

// DiffKind (3.248) has no secret flag of its own; a kind outside the six it defines is masked, not guessed at.
const KNOWN_KINDS = new Set(["add", "add-replace", "delete", "delete-replace", "update", "update-replace"]);
const REPLACE_OPS = new Set<OpType>(["replace", "create-replacement", "delete-replaced", "read-replacement", "import-replacement", "discard-replaced"]);
const RANK: Record<DriftOp, number> = { update: 1, create: 2, delete: 3, replace: 4 };

/** `urn:pulumi:prod::vps-ha::vps-ha:index:Node$hcloud:index/server:Server::db-1` -> `hcloud:index/server:Server db-1`. */
export function shortUrn(urn: string): string {
    const parts = urn.split("::");
    if (parts.length < 4) return urn;
    const chain = parts[2].split("$");
    return `${chain[chain.length - 1]} ${parts.slice(3).join("::")}`;
}

function driftOp(meta: StepEventMetadata, phase: Phase): DriftOp | undefined {
    if (REPLACE_OPS.has(meta.op)) return "replace";
    if (meta.op === "update" || meta.op === "delete" || meta.op === "create") return meta.op;
    // A refresh step's own op (older CLIs, or a preview run with refresh): judge by its states.
    // In the preview run these are skipped: the refresh run reports them, the preview step says what up would do.
    if (meta.op === "refresh" && phase === "refresh") {
        if (!meta.new) return "delete";
        if (meta.old && diffPaths(meta.old.outputs, meta.new.outputs).length > 0) return "update";
    }
    return undefined;
}

function side(state: StepEventStateMetadata | undefined, path: Segment[], outputsFirst: boolean): Lookup {
    if (!state) return { found: false, secret: false };
    const [a, b] = outputsFirst ? [state.outputs, state.inputs] : [state.inputs, state.outputs];
    const first = lookup(a, path);
    return first.found ? first : lookup(b, path);
}

function changesOf(meta: StepEventMetadata, op: DriftOp, phase: Phase, secretKeys: ReadonlySet<string>): PropertyChange[] {
    if (op === "create" || op === "delete") return [];
    let entries: { path: string; kind: string; inputDiff: boolean }[];
    if (meta.detailedDiff && Object.keys(meta.detailedDiff).length > 0) {
        entries = Object.entries(meta.detailedDiff).map(([path, d]) => ({ path, kind: String(d.diffKind), inputDiff: d.inputDiff }));
    } else if (meta.diffs && meta.diffs.length > 0) {
        entries = meta.diffs.map((path) => ({ path, kind: "update", inputDiff: false }));
    } else {
        const [a, b] = phase === "refresh" ? [meta.old?.outputs, meta.new?.outputs] : [meta.old?.inputs, meta.new?.inputs];
        entries = diffPaths(a ?? {}, b ?? {}).map((p) => ({ path: formatPath(p), kind: "update", inputDiff: phase === "preview" }));
    }
    return entries
        .sort((x, y) => x.path.localeCompare(y.path))
        .map(({ path, kind, inputDiff }) => {
            const segments = parsePath(path);
            const before = side(meta.old, segments, phase === "refresh" || !inputDiff);
            const after = side(meta.new, segments, phase === "refresh");
            const secret = before.secret || after.secret || !KNOWN_KINDS.has(kind) || segments.some((s) => typeof s === "string" && secretKeys.has(s));
            const show = (l: Lookup) => (secret ? MASK : maskValue(l.value, secretKeys));
            const change: PropertyChange = { path, kind };
            if (before.found && !kind.startsWith("add")) change.old = show(before);
            if (after.found && !kind.startsWith("delete")) change.new = show(after);
            if (secret) change.secret = true;
            return change;
        });
}

function weight(op: DriftOp, meta: StepEventMetadata): number {
    const info = meta.detailedDiff && Object.keys(meta.detailedDiff).length > 0 ? 2 : meta.diffs && meta.diffs.length > 0 ? 1 : 0;
    return RANK[op] * 10 + info;
}

function stepsOf(events: EngineEvent[]): StepEventMetadata[] {
    return [...events]
        .sort((a, b) => a.sequence - b.sequence)
        .flatMap((e) => [e.resourcePreEvent?.metadata, e.resOutputsEvent?.metadata].filter((m): m is StepEventMetadata => m !== undefined));
}

/** The drifted resources one run's events show, in the order the engine first named them. */
export function driftFromEvents(events: EngineEvent[], phase: Phase, secretKeys: Iterable<string> = DEFAULT_SECRET_KEYS): DriftedResource[] {
    const keys = new Set(secretKeys);
    const byUrn = new Map<string, { op: DriftOp; meta: StepEventMetadata }>();
    const order = new Set<string>();
    for (const meta of stepsOf(events)) {
        order.add(meta.urn);
        const op = driftOp(meta, phase);
        if (!op) continue;
        const seen = byUrn.get(meta.urn);
        // The strongest operation wins; at equal strength the step that carries a diff (a replace's
        // own step, not its delete-replaced), and then the later event (outputs after pre).
        if (!seen || weight(op, meta) >= weight(seen.op, seen.meta)) byUrn.set(meta.urn, { op, meta });
    }
    return [...order].flatMap((urn) => {
        const hit = byUrn.get(urn);
        return hit ? [{ phase, resource: shortUrn(urn), urn, op: hit.op, changes: changesOf(hit.meta, hit.op, phase, keys) }] : [];
    });
}

export function buildReport(stack: string, streams: EventStreams, secretKeys?: Iterable<string>): DriftReport {
    const resources = [
        ...driftFromEvents(streams.refresh ?? [], "refresh", secretKeys),
        ...driftFromEvents(streams.preview ?? [], "preview", secretKeys),
    ];
    return { stack, drift: resources.length > 0, resources };
}

const SIGN: Record<DriftOp, string> = { update: "~", delete: "-", replace: "+-", create: "+" };
const HEADINGS: Record<Phase, string> = {
    refresh: "The cloud differs from the state (refresh, old = state, new = cloud):",
    preview: "What `pulumi up` would do now (preview with refresh, old = cloud, new = program):",
};
const WHOLE: Record<Phase, Partial<Record<DriftOp, string>>> = {
    refresh: { delete: "gone from the cloud" },
    preview: { create: "missing: up would create it", delete: "no longer in the program: up would delete it" },
};

function show(v: unknown): string {
    if (v === MASK || v === COMPUTED) return v;
    const text = JSON.stringify(v) ?? "null";
    return text.length > 160 ? `${text.slice(0, 157)}...` : text;
}

export function formatReport(r: DriftReport): string {
    if (!r.drift) return `No drift in stack "${r.stack}": the cloud matches the state, and the program matches the cloud.`;
    const lines = [`Drift in stack "${r.stack}": ${r.resources.length} finding(s)`];
    for (const phase of ["refresh", "preview"] as const) {
        const found = r.resources.filter((x) => x.phase === phase);
        if (found.length === 0) continue;
        lines.push("", HEADINGS[phase]);
        for (const x of found) {
            const why = WHOLE[phase][x.op];
            lines.push(`  ${SIGN[x.op].padEnd(2)} ${x.op.padEnd(7)} ${x.resource}${why ? `  (${why})` : ""}`);
            for (const c of x.changes) {
                const from = "old" in c ? show(c.old) : "(absent)";
                const to = "new" in c ? show(c.new) : "(absent)";
                lines.push(`        ${c.path}: ${from} → ${to}${c.kind.endsWith("-replace") ? "  (forces replacement)" : ""}`);
            }
        }
    }
    return lines.join("\n");
}

/** The JSON form: the report itself (already masked), with a stable key order. */
export function reportJson(r: DriftReport): string {
    return JSON.stringify(r, null, 2) + "\n";
}
