// Evaluates the program for a stack file under the mock runtime (see scripts/lib/mock-program.ts).
import { strict as assert } from "node:assert";
import { programDnsRecords } from "../../scripts/lab/dns-zone";
import { evaluateProgram, Evaluation, RecordedResource } from "../../scripts/lib/mock-program";
import { StackFile } from "../../scripts/lib/stack-file";
import { prodStack } from "./stack";

/** The shipped prod stack, evaluated once per test process: most test files start from it. */
let prodEvaluation: Promise<Evaluation> | undefined;

/**
 * The program's evaluation of `file` (default: the shipped prod stack). Each caller gets its own
 * copy of the prod stack's evaluation, so a test that changes what it got changes nobody else's.
 * `fresh`: the program runs again, even for a stack file this process evaluated before.
 */
export async function evaluate(file?: StackFile, stack = "prod", { fresh = false } = {}): Promise<Evaluation> {
    if (file || stack !== "prod" || fresh) return evaluateProgram({ stack, values: (file ?? prodStack()).values, secretKeys: (file ?? prodStack()).secretKeys, env: {}, fresh });
    prodEvaluation ??= evaluateProgram({ stack, values: prodStack().values, secretKeys: prodStack().secretKeys, env: {} });
    prodEvaluation.catch(() => (prodEvaluation = undefined));
    return structuredClone(await prodEvaluation);
}

export function ofType(e: Evaluation, type: string): RecordedResource[] {
    return e.resources.filter((r) => r.type === type);
}

export const TYPES = {
    linodeInstance: "linode:index/instance:Instance",
    linodeFirewall: "linode:index/firewall:Firewall",
    hcloudServer: "hcloud:index/server:Server",
    hcloudFirewall: "hcloud:index/firewall:Firewall",
    dnsRecord: "cloudflare:index/dnsRecord:DnsRecord",
    randomBytes: "random:index/randomBytes:RandomBytes",
} as const;

/** The directory agent's cache as it writes it: each member's verified record text, from the program's records. */
export function directoryCache(e: Evaluation, names: string[]): string {
    const records = programDnsRecords(e);
    const members = Object.fromEntries(names.map((n) => {
        const record = records.find((r) => r.type === "TXT" && r.name.startsWith(`_mesh.${n}.`));
        assert.ok(record, `the program publishes a directory record for ${n}`);
        return [n, (record.data as string[]).join("")];
    }));
    return JSON.stringify({ index: [], members, release: null });
}
