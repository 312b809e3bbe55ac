// The lab's stand-in for Cloudflare R2: s3rver over HTTPS on the lab bridge, with a certificate
// from the lab CA for the R2 host name, knowing the access key the nodes were given. s3rver itself
// answers unsigned requests and checks no V4 signature (pgBackRest's); as R2 does, the stand-in
// refuses both before s3rver sees them (s3-auth.ts). The keys it knows are the credentials file's,
// read again when the file changes (a token made or deleted in Cloudflare's dashboard); each
// request it admits is noted by key in key-use.jsonl beside the file.
//   usage: s3-server.ts --address A --port P --dir D --key F --cert F --bucket B --credentials F
import { appendFileSync, readFileSync, statSync } from "node:fs";
import { dirname, join } from "node:path";
import S3rver from "s3rver";
import { DUMMY_ACCOUNT } from "s3rver/lib/models/account";
import { parseArgs } from "../lib/args";
import { credentialKeys, S3_KEY_USE, s3KeyOf, s3Refusal } from "./s3-auth";

async function main(): Promise<void> {
    const v = parseArgs(process.argv.slice(2), { values: ["address", "port", "dir", "key", "cert", "bucket", "credentials"] }).values as Record<string, string>;
    const secrets = new Map<string, string>();
    let readAt = -1;
    const keys = () => {
        const at = statSync(v.credentials).mtimeMs;
        if (at === readAt) return secrets;
        readAt = at;
        secrets.clear();
        for (const k of credentialKeys(JSON.parse(readFileSync(v.credentials, "utf8")))) {
            DUMMY_ACCOUNT.createKeyPair(k.accessKeyId, k.secretAccessKey);
            secrets.set(k.accessKeyId, k.secretAccessKey);
        }
        return secrets;
    };
    keys();
    const use = join(dirname(v.credentials), S3_KEY_USE);
    const server = new S3rver({
        address: v.address,
        port: Number(v.port),
        directory: v.dir,
        silent: true,
        key: readFileSync(v.key),
        cert: readFileSync(v.cert),
        configureBuckets: [{ name: v.bucket }],
        // The nodes use path-style requests; without this, s3rver would read the R2 host name
        // itself as a bucket name (its CNAME-style virtual hosting).
        vhostBuckets: false,
    });
    server.middleware.unshift(async (ctx, next) => {
        const refused = s3Refusal({ method: ctx.method, url: ctx.originalUrl, headers: ctx.headers }, keys());
        if (!refused) {
            appendFileSync(use, JSON.stringify({ at: Date.now(), key: s3KeyOf(String(ctx.headers.authorization ?? "")) }) + "\n");
            return next();
        }
        ctx.status = 403;
        ctx.type = "application/xml";
        ctx.body = `<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>${refused.code}</Code><Message>${refused.message.replace(/[<>&]/g, (c) => `&#${c.charCodeAt(0)};`)}</Message></Error>`;
    });
    await server.run();
    console.log(`s3 endpoint on https://${v.address}:${v.port}, bucket ${v.bucket}`);
    const stop = () => server.close().finally(() => process.exit(0));
    process.on("SIGTERM", stop);
    process.on("SIGINT", stop);
}

main().catch((e) => {
    console.error(e);
    process.exit(1);
});
