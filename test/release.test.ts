// Red/black releases: the image ports, the config, the signed release record, and what a
// release changes in the program (DNS and the gate, never a server).
import { strict as assert } from "node:assert";
import { appRelease, parseStackConfig, RETIRE_AFTER_SECONDS } from "../components/config";
import { DIRECTORY_CONFIG_DIR, DIRECTORY_UNIT } from "../components/render/directory-agent";
import { describeInPlace, inPlaceChange } from "../components/in-place";
import { directoryIndexName, directoryReleaseName, ed25519PublicKey, parseRecord, signReleaseRecord, txtStrings } from "../components/directory-records";
import { renderReleaseGate } from "../components/render/release-gate";
import { fnv1a32, imagePort } from "../components/release";
import { generateKeyPairSync } from "node:crypto";
import { Evaluation } from "../scripts/lib/mock-program";
import { evaluate, ofType, TYPES } from "./helpers/program";
import { raw, withConfig } from "./helpers/stack";
import { ConfigError } from "../components/config";

const A = "ghcr.io/example/app:1.4.2";
const B = "ghcr.io/example/app:1.5.0";
/** Lands on A's port (found by search; see the collision test). */
const SAME_PORT_AS_A = "ghcr.io/example/app:1.4.749";
const RELEASE = directoryReleaseName("prod.nodes.example.com");

function issuesOf(app: unknown) {
    try {
        parseStackConfig(raw(withConfig({ app })), "prod");
    } catch (e) {
        if (e instanceof ConfigError) return e.issues;
        throw e;
    }
    return [];
}

describe("releases", function () {
    this.timeout(120000);

    it("gives each image a port of its own from its name alone, the same in every step", () => {
        // FNV-1a's published test vectors.
        assert.equal(fnv1a32(""), 0x811c9dc5);
        assert.equal(fnv1a32("a"), 0xe40c292c);
        assert.equal(fnv1a32("foobar"), 0xbf9cf968);
        const p = imagePort(8080, A);
        assert.ok(p >= 8080 && p <= 9079);
        assert.equal(imagePort(8080, A), p);
        assert.notEqual(imagePort(8080, B), p);
        assert.equal(imagePort(8080, SAME_PORT_AS_A), p);
    });

    it("takes app.image as shorthand for release.active, and a candidate beside it", () => {
        const short = parseStackConfig(raw(withConfig({ app: { image: A } })), "prod");
        assert.deepEqual(appRelease(short), { active: A, gateTimeoutSeconds: 600 });
        const full = parseStackConfig(raw(withConfig({ app: { release: { active: A, candidate: B, gateTimeoutSeconds: 120 } } })), "prod");
        assert.deepEqual(appRelease(full), { active: A, candidate: B, gateTimeoutSeconds: 120 });
    });

    it("rejects both or neither of image and release, a candidate equal to the active image or on its port, and a port range past 65535", () => {
        const one = (app: unknown, path: string, ...patterns: RegExp[]) => {
            const issues = issuesOf(app);
            const issue = issues.find((i) => i.path === path);
            assert.ok(issue, `no issue at ${path}: ${JSON.stringify(issues)}`);
            for (const p of patterns) assert.match(issue.message, p);
        };
        one({ image: A, release: { active: B } }, "vps-ha:app.image", /together with app\.release/, /keep one/);
        one({ port: 8080 }, "vps-ha:app.release", /is required/, /app\.image/);
        one({ release: { active: A, candidate: A } }, "vps-ha:app.release.candidate", /same image as release\.active/);
        one({ release: { active: A, candidate: SAME_PORT_AS_A } }, "vps-ha:app.release.candidate", /port \d+/, /tag the candidate differently/);
        one({ release: { active: "ghcr.io/example/app" } }, "vps-ha:app.release.active", /tag or digest/);
        one({ release: { active: A, candidate: "latest" } }, "vps-ha:app.release.candidate", /tag or digest/);
        one({ image: A, port: 65000 }, "vps-ha:app.port", /room for the 1000 ports/, /64536/);
        one({ release: { active: A, colour: "red" } }, "vps-ha:app.release", /unknown key\(s\) colour/, /active, candidate, gateTimeoutSeconds/);
    });

    it("vps-ha:app.retireAfterSeconds: default 120, whole seconds from 15 to 3600, a clear error otherwise; it reaches the app nodes' agent", async () => {
        const config = (app: unknown) => parseStackConfig(raw(withConfig({ app })), "prod");
        assert.equal(RETIRE_AFTER_SECONDS, 120);
        assert.equal(config({ image: A }).app.retireAfterSeconds, 120);
        assert.equal(config({ image: A, retireAfterSeconds: 15 }).app.retireAfterSeconds, 15);
        assert.equal(config({ image: A, retireAfterSeconds: 3600 }).app.retireAfterSeconds, 3600);
        const said = (v: unknown) => issuesOf({ image: A, retireAfterSeconds: v }).map((i) => `${i.path}: ${i.message}`);
        assert.deepEqual(said(14), ["vps-ha:app.retireAfterSeconds: must be at least 15: one round of the directory agent, which stops retired images (got 14)"]);
        assert.deepEqual(said(3601), ["vps-ha:app.retireAfterSeconds: must be at most 3600 (an hour); to keep an image longer, keep it as release.candidate (got 3601)"]);
        assert.deepEqual(said(30.5), ["vps-ha:app.retireAfterSeconds: must be a whole number of seconds (got 30.5)"]);
        assert.match(said("2m")[0], /^vps-ha:app\.retireAfterSeconds: must be a number of seconds/);
        // The app nodes' agent gets it as desired state: a change restarts that agent alone, no server replaced.
        const agentOf = (e: Evaluation) => JSON.parse(e.desired["app-1"].files.find((f) => f.path === `${DIRECTORY_CONFIG_DIR}/app.json`)?.content ?? "{}").app;
        const before = await evaluate(withConfig({ app: { image: A } }));
        const after = await evaluate(withConfig({ app: { image: A, retireAfterSeconds: 45 } }));
        assert.equal(agentOf(before).retireAfterSeconds, 120);
        assert.equal(agentOf(after).retireAfterSeconds, 45);
        assert.equal(before.userData["app-1"], after.userData["app-1"]);
        assert.equal(describeInPlace(inPlaceChange(before.desired["app-1"], after.desired["app-1"])), `applied in place (1 file); restarts ${DIRECTORY_UNIT}`);
    });

    it("signs a release record that parses back, and rejects a tampered or malformed one", () => {
        const key = generateKeyPairSync("ed25519").privateKey.export({ format: "pem", type: "pkcs8" }).toString();
        const pub = ed25519PublicKey(key);
        const r = { active: A, activePort: imagePort(8080, A), candidate: B, candidatePort: imagePort(8080, B) };
        const text = signReleaseRecord(RELEASE, r, key);
        assert.match(text, new RegExp(`^v=vh1 kind=release active=${A} aport=${r.activePort} candidate=${B} cport=${r.candidatePort} sig=`));
        assert.deepEqual(parseRecord(RELEASE, text, pub), { kind: "release", ...r });
        const plain = signReleaseRecord(RELEASE, { active: A, activePort: 8921 }, key);
        assert.match(plain, / candidate=- cport=- sig=/);
        assert.deepEqual(parseRecord(RELEASE, plain, pub), { kind: "release", active: A, activePort: 8921 });
        assert.throws(() => parseRecord(RELEASE, text.replace(B, "ghcr.io/evil/app:1.0.0"), pub), /bad signature/);
        assert.throws(() => parseRecord("_release.other.nodes.example.com", text, pub), /bad signature/);
        assert.throws(() => signReleaseRecord(RELEASE, { active: A, activePort: 8921, candidate: B, candidatePort: 8921 }, key), /bad candidate/);
    });

    it("renders a gate that needs every check right several rounds in a row, within its bound", () => {
        const script = renderReleaseGate({ checks: [{ url: "https://app.example.com/vps-ha/ready", expect: "2 8921" }], timeoutSeconds: 30, everySeconds: 2, stableRounds: 5 });
        assert.match(script, /deadline=\$\(\( \$\(date \+%s\) \+ 30 \)\)/);
        assert.match(script, /check 'https:\/\/app\.example\.com\/vps-ha\/ready' '2 8921'/);
        assert.match(script, /if \[ "\$good" -ge 5 \]/);
        assert.match(script, /exit 1/);
    });

    describe("in the program (mock runtime)", () => {
        let prod: Evaluation;
        before(async () => {
            prod = await evaluate();
        });
        const serverInputs = (e: Evaluation) =>
            new Map([...ofType(e, TYPES.linodeInstance), ...ofType(e, TYPES.hcloudServer)].map((r) => [r.name, JSON.stringify(Object.entries(r.inputs).filter(([k]) => !["firewallIds", "placementGroupId", "sshKeys"].includes(k)))]));
        const INDEX = `${directoryIndexName("prod.nodes.example.com")} TXT`;
        // The index's generation is carried by the mock from one evaluation to the next in a process (as
        // desired states' are), whatever it evaluated before: the index is compared by the rest of what it says.
        const withoutGeneration = (content: string) => txtStrings(content).join("").replace(/ gen=\d+ /, " ").replace(/ sig=\S+$/, "");
        const recordsOf = (e: Evaluation) => new Map(ofType(e, TYPES.dnsRecord).map((r) => {
            const key = `${r.inputs.name} ${r.inputs.type}`;
            return [key, key === INDEX ? withoutGeneration(String(r.inputs.content)) : String(r.inputs.content)];
        }));
        const gateOf = (e: Evaluation) => {
            // The desired-state generations are commands too.
            const gates = e.resources.filter((r) => r.type === "command:local:Command" && r.name.endsWith("-gate"));
            assert.equal(gates.length, 1);
            return gates[0];
        };
        const releaseOf = (e: Evaluation) => {
            const key = /"publicKey": "([^"]+)"/.exec(e.config["lb-1"])?.[1] as string;
            const record = ofType(e, TYPES.dnsRecord).find((r) => r.inputs.name === RELEASE);
            assert.ok(record);
            assert.equal(record.inputs.ttl, 60);
            assert.equal(record.inputs.proxied, false);
            return parseRecord(RELEASE, txtStrings(String(record.inputs.content)).join(""), key);
        };

        it("adding a candidate, swapping and removing it change no server, only the release record and the gate", async () => {
            const steps = [
                prod,
                await evaluate(withConfig({ app: { release: { active: A, candidate: B }, port: 8080, healthPath: "/healthz" } })),
                await evaluate(withConfig({ app: { release: { active: B, candidate: A }, port: 8080, healthPath: "/healthz" } })),
                await evaluate(withConfig({ app: { release: { active: B }, port: 8080, healthPath: "/healthz" } })),
            ];
            const expected = [
                { kind: "release", active: A, activePort: imagePort(8080, A) },
                { kind: "release", active: A, activePort: imagePort(8080, A), candidate: B, candidatePort: imagePort(8080, B) },
                { kind: "release", active: B, activePort: imagePort(8080, B), candidate: A, candidatePort: imagePort(8080, A) },
                { kind: "release", active: B, activePort: imagePort(8080, B) },
            ];
            steps.forEach((e, i) => assert.deepEqual(releaseOf(e), expected[i]));
            for (let i = 1; i < steps.length; i++) {
                const [before, after] = [steps[i - 1], steps[i]];
                for (const [name, inputs] of serverInputs(after)) assert.ok(inputs === serverInputs(before).get(name), `step ${i}: ${name}'s server inputs changed`);
                for (const name of Object.keys(after.config)) assert.ok(after.config[name] === before.config[name], `step ${i}: ${name}'s user-data changed`);
                const r0 = recordsOf(before);
                const r1 = recordsOf(after);
                // Desired-state records carry a generation the mock carries from run to run: compared by what nodes read.
                assert.deepEqual([...r1.keys()].filter((k) => r0.get(k) !== r1.get(k) && !k.startsWith("_desired")), [`${RELEASE} TXT`], `step ${i}: only the release record changes`);
                for (const n of Object.keys(after.desired)) assert.deepEqual({ ...after.desired[n], generation: 0 }, { ...before.desired[n], generation: 0 }, `step ${i}: ${n}'s desired state changed`);
                assert.notDeepEqual(gateOf(after).inputs.triggers, gateOf(before).inputs.triggers, `step ${i}: the gate runs again`);
            }
            for (const image of [A, B]) for (const u of Object.values(prod.config)) assert.ok(!u.includes(image), "no user-data names an image");
        });

        it("gates on both hostnames with a candidate, on the app's alone without", async () => {
            const withCandidate = await evaluate(withConfig({ app: { release: { active: A, candidate: B, gateTimeoutSeconds: 120 } } }));
            const script = String(gateOf(withCandidate).inputs.create);
            assert.match(script, new RegExp(`check 'https://app\\.example\\.com/vps-ha/ready' '2 ${imagePort(8080, A)}'`));
            assert.match(script, new RegExp(`check 'https://candidate\\.example\\.com/vps-ha/ready' '2 ${imagePort(8080, B)}'`));
            assert.match(script, /\+ 120 \)\)/);
            const plain = String(gateOf(prod).inputs.create);
            assert.match(plain, /app\.example\.com/);
            assert.doesNotMatch(plain, /candidate\.example\.com/);
            assert.match(plain, /\+ 600 \)\)/);
        });
    });
});
