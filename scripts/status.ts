// npm run status -- --stack NAME [--json]
// The stack's health at a glance, from the user's machine and without SSH: the HAProxy nodes'
// status view (node-agent/vpsha/status_view.py) through the app's hostname, with the token HAProxy
// checks. Its URL and token are stack outputs (statusUrl, statusToken: a secret). Exit 0 healthy,
// 1 degraded, 2 when the status could not be read (one line saying why, never a stack trace).
import { spawnSync } from "node:child_process";
import { resolve } from "node:path";
import { UsageError } from "./lib/args";
import { checkToken, exitCodeOf, formatStatus, fromStackOutputs, httpFailure, parseStatusArgs, parseStatusDoc, pulumiFailure, STATUS_TOKEN_ENV, STATUS_USAGE, StatusError } from "./lib/status-report";
import { ROLLOUT_TOKEN_HEADER } from "../components/render/haproxy";

const ROOT = resolve(__dirname, "..");
/** The view reads every source at once, each bounded by a few seconds; HAProxy gives it 15 s. */
const ANSWER_TIMEOUT_MS = 20000;

function stackOutputs(stack: string): { url: string; token: string } {
    const r = spawnSync("pulumi", ["stack", "output", "--stack", stack, "--show-secrets", "--json"], {
        cwd: ROOT, encoding: "utf8", timeout: 60000, stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, PULUMI_SKIP_UPDATE_CHECK: "true" },
    });
    const code = (r.error as NodeJS.ErrnoException | undefined)?.code;
    if (code === "ENOENT") throw new StatusError("the Pulumi CLI is not on PATH: install it (curl -fsSL https://get.pulumi.com | sh), or give --url with VPS_HA_STATUS_TOKEN");
    if (code === "ETIMEDOUT") throw new StatusError(`pulumi stack output --stack ${stack} did not finish within 60 s`);
    if (r.status !== 0) throw new StatusError(pulumiFailure(stack, `${r.stderr ?? ""}\n${r.stdout ?? ""}`));
    return fromStackOutputs(stack, r.stdout);
}

async function ask(url: string, token: string): Promise<string> {
    let res: Response;
    try {
        res = await fetch(url, { headers: { [ROLLOUT_TOKEN_HEADER]: token, Accept: "application/json" }, redirect: "error", signal: AbortSignal.timeout(ANSWER_TIMEOUT_MS) });
    } catch (e) {
        const err = e as Error & { cause?: { code?: string; message?: string } };
        const why = err.name === "TimeoutError" ? `no answer within ${ANSWER_TIMEOUT_MS / 1000} s` : (err.cause?.code ?? err.cause?.message ?? err.message);
        throw new StatusError(`no answer from ${url}: ${why}`);
    }
    const body = await res.text().catch(() => "");
    if (res.status !== 200) throw new StatusError(httpFailure(url, res.status));
    return body;
}

export async function main(argv: string[], env: NodeJS.ProcessEnv = process.env): Promise<number> {
    let args;
    try {
        args = parseStatusArgs(argv);
    } catch (e) {
        if (e instanceof UsageError) {
            console.error(`status: ${e.message}\n${STATUS_USAGE}`);
            return 2;
        }
        throw e;
    }
    try {
        const { url, token } = args.stack !== undefined ? stackOutputs(args.stack) : { url: args.url!, token: checkToken(env[STATUS_TOKEN_ENV], STATUS_TOKEN_ENV) };
        const doc = parseStatusDoc(url, await ask(url, token));
        console.log(args.json ? JSON.stringify(doc, null, 2) : formatStatus(args.stack ?? new URL(url).host, doc));
        return exitCodeOf(doc);
    } catch (e) {
        if (e instanceof StatusError) {
            console.error(`status: ${e.message}`);
            return 2;
        }
        throw e;
    }
}

if (require.main === module) {
    main(process.argv.slice(2)).then((code) => process.exit(code), (e) => {
        // Not the user's to fix; still one line.
        console.error(`status: unexpected failure: ${e instanceof Error ? e.message : String(e)}`);
        process.exit(2);
    });
}
