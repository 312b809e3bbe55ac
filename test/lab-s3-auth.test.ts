import { strict as assert } from "node:assert";
import { execFile } from "node:child_process";
import { createServer, IncomingMessage, Server } from "node:http";
import { AddressInfo } from "node:net";
import { credentialKeys, S3Refusal, S3Request, s3KeyOf, s3Refusal } from "../scripts/lab/s3-auth";
import { requireTools } from "./helpers/tools";

// The lab's R2 stand-in checks signatures as R2 does: each request below is signed by curl's own
// Signature Version 4 implementation (--aws-sigv4), not by the code under test.
const KEY = "AKIDLABTEST";
const SECRET = "lab/secret+key=0123456789";

function curl(args: string[]): Promise<string> {
    return new Promise((resolve, reject) => execFile("curl", ["-sS", "--max-time", "5", ...args], (err, stdout, stderr) => (err ? reject(new Error(`${err.message}: ${stderr}`)) : resolve(stdout))));
}

describe("lab: the S3 stand-in's request signatures (AWS Signature Version 4)", () => {
    let server: Server;
    let base: string;
    const seen: (S3Refusal | undefined)[] = [];
    const requests: S3Request[] = [];
    before(async function () {
        requireTools(this, ["curl"]);
        server = createServer((req: IncomingMessage, res) => {
            req.resume();
            req.on("end", () => {
                const r = { method: req.method ?? "GET", url: req.url ?? "/", headers: req.headers };
                requests.push(r);
                seen.push(s3Refusal(r, new Map([[KEY, SECRET]])));
                res.end("ok");
            });
        });
        await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
        base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    });
    after(() => server?.close());

    const signed = (secret: string, key = KEY) => ["--aws-sigv4", "aws:amz:auto:s3", "--user", `${key}:${secret}`, "-H", "x-amz-content-sha256: UNSIGNED-PAYLOAD"];

    it("takes what pgBackRest sends: a listing with a query, an upload with a body, a HEAD and a DELETE", async () => {
        seen.length = 0;
        await curl([...signed(SECRET), `${base}/bucket/?delimiter=%2F&list-type=2&prefix=prod%2Farchive%2Fprod%2F17-1%2F`]);
        await curl([...signed(SECRET), "-X", "PUT", "--data-binary", "WAL segment bytes", `${base}/bucket/prod/archive/prod/17-1/000000010000000000000001-abc.gz`]);
        await curl([...signed(SECRET), "-I", `${base}/bucket/prod/backup/prod/backup.info`]);
        await curl([...signed(SECRET), "-X", "DELETE", `${base}/bucket/prod/a%20file?uploadId=x%2By`]);
        assert.deepEqual(seen, [undefined, undefined, undefined, undefined]);
    });

    it("refuses an unsigned request, an unknown key and a wrong secret, each with R2's code", async () => {
        seen.length = 0;
        await curl([`${base}/bucket/prod/backup/prod/backup.info`]);
        await curl([...signed(SECRET, "AKIDOTHER"), `${base}/bucket/`]);
        await curl([...signed("not-the-secret"), "-X", "PUT", "--data-binary", "x", `${base}/bucket/prod/x`]);
        assert.deepEqual(
            seen.map((s) => s?.code),
            ["AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch"],
        );
    });

    it("refuses a signed request changed on the way: another path, query, method or date", async () => {
        requests.length = 0;
        await curl([...signed(SECRET), `${base}/bucket/?delimiter=%2F&list-type=2&prefix=prod%2Fbackup%2F`]);
        const [r] = requests;
        const secrets = new Map([[KEY, SECRET]]);
        assert.equal(s3Refusal(r, secrets), undefined);
        for (const changed of [
            { ...r, url: "/bucket/?delimiter=%2F&list-type=2&prefix=prod%2Farchive%2F" },
            { ...r, url: "/other/?delimiter=%2F&list-type=2&prefix=prod%2Fbackup%2F" },
            { ...r, method: "DELETE" },
            { ...r, headers: { ...r.headers, "x-amz-date": String(r.headers["x-amz-date"]).replace(/T\d\d/, (t) => (t === "T00" ? "T01" : "T00")) } },
        ]) assert.equal(s3Refusal(changed, secrets)?.code, "SignatureDoesNotMatch", JSON.stringify(changed));
        assert.equal(s3Refusal({ ...r, headers: { ...r.headers, authorization: "AWS AKID:c2lnbmF0dXJl" } }, secrets)?.code, "AccessDenied", "a V2 signature");
    });
});

describe("lab: the S3 stand-in's keys", () => {
    it("reads one key or several (a rotation holds two), and refuses anything else", () => {
        const a = { accessKeyId: "a", secretAccessKey: "x" };
        const b = { accessKeyId: "b", secretAccessKey: "y" };
        assert.deepEqual(credentialKeys(a), [a]);
        assert.deepEqual(credentialKeys({ keys: [a, b] }), [a, b]);
        for (const bad of [null, {}, { keys: [] }, { keys: [{ accessKeyId: "a" }] }, { accessKeyId: 1, secretAccessKey: "x" }]) assert.throws(() => credentialKeys(bad), /neither/, JSON.stringify(bad));
    });

    it("names the access key of a signed request", () => {
        assert.equal(s3KeyOf(`AWS4-HMAC-SHA256 Credential=KEY2/20261203/auto/s3/aws4_request, SignedHeaders=host;x-amz-date, Signature=${"0".repeat(64)}`), "KEY2");
        assert.equal(s3KeyOf(""), undefined);
        assert.equal(s3KeyOf("Basic abc"), undefined);
    });
});
