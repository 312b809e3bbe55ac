// npm run preflight -- [--stack NAME | --config FILE]
// Before a first `pulumi up`: asks Cloudflare, Linode and Hetzner (read-only calls) whether the
// tokens work and reach what the stack needs, whether the zone is active, its SSL mode and the
// Load Balancing add-on, whether R2 is enabled, whether an admin key is already in the Hetzner
// project, and whether the regions and sizes exist. The tokens come from the environment
// (CLOUDFLARE_API_TOKEN, LINODE_TOKEN, HCLOUD_TOKEN): the stack file's are encrypted.
// Exit codes: 0 nothing stops pulumi up, 1 a check found a problem, 2 a token or the stack file is missing or invalid.
import { resolve } from "node:path";
import { ConfigError, parseStackConfig } from "../components/config";
import { parseArgs, UsageError } from "./lib/args";
import { FetchLike, Finding, missingTokens, preflight, Tokens, TOKEN_ENV } from "./lib/preflight-checks";
import { readStackFile, StackFileError, stackNameOf } from "./lib/stack-file";

const USAGE = "usage: npm run preflight -- [--stack NAME | --config FILE]";

/** Node's fetch, each call bounded to 15 s. */
const liveFetch: FetchLike = (url, init) => fetch(url, { ...init, signal: AbortSignal.timeout(15000) });

export async function runPreflight(argv: string[], env: Record<string, string | undefined>, fetchLike: FetchLike, print: (line: string) => void): Promise<number> {
    let args;
    try {
        args = parseArgs(argv, { values: ["stack", "config"] });
    } catch (e) {
        if (e instanceof UsageError) {
            print(`${e.message}\n${USAGE}`);
            return 2;
        }
        throw e;
    }
    if (args.values.stack && args.values.config) {
        print(`--stack and --config name the same thing; give one\n${USAGE}`);
        return 2;
    }
    const stack = args.values.stack ?? (args.values.config ? (stackNameOf(args.values.config) ?? "dev") : "prod");
    const source = args.values.config ?? `Pulumi.${stack}.yaml`;
    let config;
    try {
        const file = readStackFile(resolve(source));
        config = parseStackConfig({ values: file.values, secretKeys: new Set(file.secretKeys), env: {}, offline: true }, stack);
    } catch (e) {
        if (e instanceof StackFileError || e instanceof ConfigError) {
            print(`${source}: ${e.message}`);
            return 2;
        }
        throw e;
    }
    const tokens: Tokens = { cloudflare: env[TOKEN_ENV.cloudflare], linode: env[TOKEN_ENV.linode], hcloud: env[TOKEN_ENV.hcloud] };
    const missing = missingTokens(config, tokens);
    if (missing.length) {
        print(`preflight needs the API token of every provider stack "${stack}" uses; missing:`);
        for (const p of missing) print(`  - ${TOKEN_ENV[p]}: export ${TOKEN_ENV[p]}=$(pulumi config get ${p === "cloudflare" ? "cloudflare:apiToken" : `${p}:token`}) or paste the token`);
        return 2;
    }
    const findings = await preflight(config, tokens, fetchLike);
    for (const f of findings) print(`${mark(f)} ${f.provider} ${f.check}: ${f.detail}`);
    const problems = findings.filter((f) => f.status === "problem").length;
    print(problems ? `${problems} problem(s) would stop pulumi up` : "nothing found that would stop pulumi up");
    return problems ? 1 : 0;
}

function mark(f: Finding): string {
    return f.status === "ok" ? "ok  " : f.status === "note" ? "note" : "FAIL";
}

if (require.main === module) {
    runPreflight(process.argv.slice(2), process.env, liveFetch, (l) => console.log(l)).then((code) => process.exit(code), (e) => {
        console.error(e instanceof Error ? e.stack : e);
        process.exit(1);
    });
}
