// Evaluates the program for a stack file under the mock runtime (see scripts/lib/mock-program.ts).
import { evaluateProgram, Evaluation, RecordedResource } from "../../scripts/lib/mock-program";
import { StackFile } from "../../scripts/lib/stack-file";
import { prodStack } from "./stack";

export async function evaluate(file: StackFile = prodStack(), stack = "prod"): Promise<Evaluation> {
    return evaluateProgram({ stack, values: file.values, secretKeys: file.secretKeys, env: {} });
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
