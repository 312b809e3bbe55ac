// npx --no-install tsx scripts/stand-down.ts, with its parameters in the environment
// (components/stand-down.ts: VPS_HA_STAND_DOWN_NODE, _PROVIDER, _SERVER, optionally _SECONDS and
// _API, and the provider's token, HCLOUD_TOKEN or LINODE_TOKEN).
// `pulumi up` runs it before a member moved to another provider gets its new server: it shuts the
// old server down through its provider's API and waits until it is off. Exit 0 when the server is
// off or gone (the outcome on the last line), 1 when it could not be shut down, 2 when the
// environment is wrong; each failure is one line on stderr, never a stack trace.
import { standDown, standDownEnvProblems, standDownOptionsFromEnv } from "../components/stand-down";

const oneLine = (e: unknown) => (e instanceof Error ? e.message : String(e)).replace(/\s*\n\s*/g, " ");

export async function main(env: NodeJS.ProcessEnv = process.env): Promise<number> {
    const problems = standDownEnvProblems(env, { requireToken: true });
    if (problems.length > 0) {
        for (const p of problems) console.error(`stand-down: ${p}`);
        return 2;
    }
    const opts = standDownOptionsFromEnv(env);
    try {
        const r = await standDown({ ...opts, log: (line) => console.log(line) });
        console.log(`${opts.node}: ${r.outcome} (${opts.provider} server ${opts.serverId}, ${r.seconds.toFixed(1)} s)`);
        return 0;
    } catch (e) {
        console.error(`stand-down: ${oneLine(e)}`);
        return 1;
    }
}

if (require.main === module) {
    main().then((code) => process.exit(code), (e) => {
        console.error(`stand-down: unexpected failure: ${oneLine(e)}`);
        process.exit(1);
    });
}
