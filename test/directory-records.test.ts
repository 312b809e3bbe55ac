// The mesh directory's record format: what the program signs is what a node accepts, and
// nothing else is.
import { strict as assert } from "node:assert";
import { createPrivateKey, generateKeyPairSync, randomBytes, sign } from "node:crypto";
import {
    directoryIndexName, directoryRecordName, ed25519PublicKey, indexParts, memberSetDigest, NodeRecord, parseRecord,
    signIndexPart, signNodeRecord, TXT_CONTENT_LIMIT, TXT_STRING_LIMIT, txtContent, txtStrings,
} from "../components/directory-records";

function keyPair(): { pem: string; publicKey: string } {
    const pem = generateKeyPairSync("ed25519").privateKey.export({ format: "pem", type: "pkcs8" }).toString();
    return { pem, publicKey: ed25519PublicKey(pem) };
}

const owner = directoryRecordName("app-1.prod.nodes.example.com");
const record: NodeRecord = { name: "app-1", role: "app", meshAddress: "10.77.0.206", wireguardKey: randomBytes(32).toString("base64"), dnsName: "app-1.prod.nodes.example.com" };

describe("directory records", () => {
    const key = keyPair();

    it("a signed node record parses back to what was signed", () => {
        const text = signNodeRecord(owner, record, key.pem);
        assert.match(text, /^v=vh1 kind=node name=app-1 role=app mesh=10\.77\.0\.206 wg=\S{44} dns=app-1\.prod\.nodes\.example\.com sig=\S{88}$/);
        assert.deepEqual(parseRecord(owner, text, key.publicKey), { kind: "node", ...record });
        // The owner name is compared as DNS does: case and a trailing dot do not matter.
        assert.equal(parseRecord(`${owner.toUpperCase()}.`, text, key.publicKey).kind, "node");
    });

    it("a signed index part parses back with its generation and removal mark, and signing is deterministic", () => {
        const index = directoryIndexName("prod.nodes.example.com");
        assert.equal(index, "_mesh.prod.nodes.example.com");
        const [part] = indexParts(["app-1", "app-2", "db-1"], 1767225600000, false);
        const text = signIndexPart(index, part, key.pem);
        assert.match(text, /^v=vh1 kind=index gen=1767225600000 part=1\/1 set=[0-9a-f]{16} removal=bounded members=app-1,app-2,db-1 sig=\S{88}$/);
        assert.equal(signIndexPart(index, part, key.pem), text, "Ed25519 signs the same text to the same record");
        assert.deepEqual(parseRecord(index, text, key.publicKey), {
            kind: "index", generation: 1767225600000, deliberate: false, part: 1, parts: 1, set: memberSetDigest(["app-1", "app-2", "db-1"]), members: ["app-1", "app-2", "db-1"],
        });
        const [deliberate] = indexParts(["app-1"], 1767225600001, true);
        assert.match(signIndexPart(index, deliberate, key.pem), / removal=deliberate /);
        assert.deepEqual(parseRecord(index, signIndexPart(index, deliberate, key.pem), key.publicKey), { kind: "index", ...deliberate });
        for (const bad of [0, -1, 1.5, 10 ** 16]) assert.throws(() => signIndexPart(index, { ...part, generation: bad }, key.pem), /bad generation/);
        // An index without a generation (the format before it) is not what this program reads back.
        const legacy = "v=vh1 kind=index part=1/1 set=" + part.set + " members=app-1,app-2,db-1";
        const signedLegacy = `${legacy} sig=${sign(null, Buffer.from(`vh1\n${index}\n${legacy}`), createPrivateKey(key.pem)).toString("base64")}`;
        assert.throws(() => parseRecord(index, signedLegacy, key.publicKey), /unexpected fields/);
    });

    it("rejects tampered, unsigned, misplaced, foreign-signed and non-canonical records", () => {
        const text = signNodeRecord(owner, record, key.pem);
        const rejects = (t: string, o: string, k: string, why: RegExp) => assert.throws(() => parseRecord(o, t, k), why);
        rejects(text.replace("mesh=10.77.0.206", "mesh=10.77.0.207"), owner, key.publicKey, /bad signature/);
        rejects(text.replace("role=app", "role=db"), owner, key.publicKey, /bad signature/);
        rejects(text.replace(/ sig=\S+$/, ""), owner, key.publicKey, /no signature/);
        rejects(text.replace(/sig=(\S)/, "sig=!"), owner, key.publicKey, /malformed signature/);
        rejects(text, directoryRecordName("app-2.prod.nodes.example.com"), key.publicKey, /bad signature/);
        rejects(text, owner, keyPair().publicKey, /bad signature/);
        // Validly signed by the right key, but not version vh1 or not in the one canonical form.
        const signed = (b: string) => `${b} sig=${sign(null, Buffer.from(`vh1\n${owner}\n${b}`), createPrivateKey(key.pem)).toString("base64")}`;
        const body = text.replace(/ sig=\S+$/, "");
        rejects(signed(body.replace("v=vh1", "v=vh2")), owner, key.publicKey, /unknown version/);
        rejects(signed(body.replace(" role=app", "  role=app")), owner, key.publicKey, /malformed field/);
        rejects(signed(body.replace("mesh=10.77.0.206", "mesh=010.77.0.206")), owner, key.publicKey, /bad mesh address/);
        rejects(signed(`${body} extra=1`), owner, key.publicKey, /unexpected fields/);
        assert.equal(parseRecord(owner, signed(body), key.publicKey).kind, "node", "the helper does sign validly");
    });

    it("splits a large member list into parts within Cloudflare's and DNS's limits", () => {
        const names = Array.from({ length: 400 }, (_, i) => `app-${String(i).padStart(3, "0")}`);
        const parts = indexParts(names, Number.MAX_SAFE_INTEGER, true);
        assert.ok(parts.length > 1);
        // The split does not depend on the generation or the mark: the record count is known before either.
        assert.deepEqual(indexParts(names, 1, false).map((p) => p.members), parts.map((p) => p.members));
        assert.deepEqual(parts.flatMap((p) => p.members), names);
        for (const p of parts) {
            assert.equal(p.parts, parts.length);
            assert.equal(p.set, memberSetDigest(names));
            const content = txtContent(signIndexPart("_mesh.prod.nodes.example.com", p, key.pem));
            assert.ok(content.length <= TXT_CONTENT_LIMIT, `part ${p.part}: ${content.length} characters`);
            for (const s of txtStrings(content)) assert.ok(s.length <= TXT_STRING_LIMIT);
        }
        assert.equal(indexParts(["a1"], 1, false).length, 1);
    });

    it("TXT content round-trips through quoted 255-byte strings, and bare content is read too", () => {
        const value = "x".repeat(600);
        const content = txtContent(value);
        assert.equal(content, `"${"x".repeat(255)}" "${"x".repeat(255)}" "${"x".repeat(90)}"`);
        assert.equal(txtStrings(content).join(""), value);
        assert.deepEqual(txtStrings("v=vh1 bare"), ["v=vh1 bare"]);
        assert.throws(() => txtContent('has "quotes"'));
    });
});
