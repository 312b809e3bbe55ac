// The GitHub Actions workflows: valid YAML, triggers and runners, and only scripts, files and
// secrets that exist (secrets: those the README's Operations section lists).
import { strict as assert } from "node:assert";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { parse } from "yaml";
import { checkWorkflow, documentedSecrets, RepoFacts } from "../scripts/lib/workflow-check";

const ROOT = join(__dirname, "..");
const DIR = join(ROOT, ".github", "workflows");
const files = readdirSync(DIR).filter((f) => /\.ya?ml$/.test(f)).sort();
const repo: RepoFacts = {
    scripts: new Set(Object.keys((JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")) as { scripts: Record<string, string> }).scripts)),
    fileExists: (p) => existsSync(join(ROOT, p)),
    secrets: documentedSecrets(readFileSync(join(ROOT, "README.md"), "utf8")),
};
const workflow = (name: string) => parse(readFileSync(join(DIR, name), "utf8")) as Record<string, any>;

const GOOD = `
name: t
on: [push]
jobs:
  a:
    runs-on: ubuntu-latest
    env:
      T: \${{ secrets.PULUMI_ACCESS_TOKEN }}
    steps:
      - uses: actions/checkout@v4
      - run: npm run plan -- --stack prod && sudo bash .ci/run
`;

describe("workflows", () => {
    it("the README lists the repository secrets", () => {
        assert.deepEqual([...repo.secrets].sort(), ["CLOUDFLARE_API_TOKEN", "HCLOUD_TOKEN", "LINODE_TOKEN", "PULUMI_ACCESS_TOKEN"]);
    });

    it("ci, drift and deploy are there", () => {
        for (const f of ["ci.yml", "drift.yml", "deploy.yml"]) assert.ok(files.includes(f), f);
    });

    for (const f of files) {
        it(`${f}: valid, with triggers and runners, naming only scripts, files and secrets that exist`, () => {
            assert.deepEqual(checkWorkflow(readFileSync(join(DIR, f), "utf8"), repo), []);
        });
    }

    it("ci runs the README's test command through .ci/run on Node 20", () => {
        const ci = workflow("ci.yml");
        assert.ok("push" in ci.on && "pull_request" in ci.on);
        const steps = ci.jobs.test.steps as { uses?: string; run?: string; with?: Record<string, unknown> }[];
        assert.equal(steps.find((s) => s.uses?.startsWith("actions/setup-node@"))?.with?.["node-version"], 20);
        assert.ok(steps.some((s) => /\bsudo\b.*\bbash \.ci\/run\b/.test(s.run ?? "")));
    });

    it("drift runs daily and by hand per stack, may write issues, and reports drift in one issue", () => {
        const d = workflow("drift.yml");
        assert.ok(Array.isArray(d.on.schedule) && d.on.schedule[0].cron, "a schedule");
        assert.ok("workflow_dispatch" in d.on);
        assert.equal(d.permissions.issues, "write");
        const job = d.jobs.drift;
        assert.ok(job.strategy.matrix.stack.includes("prod"));
        const text = readFileSync(join(DIR, "drift.yml"), "utf8");
        assert.match(text, /uses: pulumi\/actions@v6/);
        assert.match(text, /npm run drift -- --stack "\$STACK" --json drift\.json/);
        assert.match(text, /Drift detected: \$\{stack\}/);
        assert.match(text, /\[ "\$code" -le 1 \]/, "exit 2 fails the job");
    });

    it("deploy plans pull requests offline and runs up on main behind the prod environment", () => {
        const d = workflow("deploy.yml");
        const steps = (job: string) => d.jobs[job].steps as { uses?: string; run?: string; with?: Record<string, unknown>; env?: Record<string, string> }[];
        assert.match(d.jobs.plan.if, /pull_request/);
        assert.ok(steps("plan").some((s) => /^npm run plan -- --stack prod$/.test(s.run ?? "")), "the offline plan");
        assert.ok(!steps("plan").some((s) => s.uses?.startsWith("pulumi/")), "no Pulumi on a pull request");
        const up = steps("up").find((s) => s.uses === "pulumi/actions@v6" && s.with?.command !== undefined);
        assert.equal(up?.with?.command, "up");
        assert.equal(up?.with?.["stack-name"], "prod");
        assert.equal(d.jobs.up.environment, "prod");
        assert.match(d.jobs.up.if, /^github\.event_name == 'push' && github\.ref == 'refs\/heads\/main'$/);
    });

    it("deploy hands its tokens to the approved up job's Pulumi steps only, never to a pull request's code", () => {
        const d = workflow("deploy.yml");
        const text = readFileSync(join(DIR, "deploy.yml"), "utf8");
        assert.equal(d.env, undefined, "no workflow-wide env");
        assert.deepEqual(d.permissions, { contents: "read" });
        assert.ok(!("pull_request_target" in d.on), "pull_request_target would run with secrets");
        const secretsIn = (x: unknown) => [...JSON.stringify(x ?? null).matchAll(/secrets\.(\w+)/g)].map((m) => m[1]);
        for (const [name, job] of Object.entries(d.jobs as Record<string, Record<string, unknown>>)) {
            const steps = job.steps as Record<string, unknown>[];
            assert.deepEqual(secretsIn(job.env), [], `${name}: no job-wide secrets`);
            if (name !== "up") {
                assert.deepEqual(secretsIn(job), [], `${name} runs without any secret`);
                continue;
            }
            assert.equal(job.environment, "prod", "the job with tokens waits for the prod environment's approval");
            for (const step of steps) {
                const used = secretsIn(step);
                const callsPulumi = step.uses === "pulumi/actions@v6" && (step.with as Record<string, unknown> | undefined)?.command !== undefined || /\bpulumi stack output\b/.test(String(step.run ?? ""));
                if (!callsPulumi) assert.deepEqual(used, [], `step ${JSON.stringify(step.name ?? step.uses ?? step.run)} gets no secret (npm ci runs dependencies' scripts)`);
                else assert.ok(used.includes("PULUMI_ACCESS_TOKEN"), JSON.stringify(step));
            }
        }
        // Every mention of a secret is inside the up job.
        const upStart = text.indexOf("\n  up:\n");
        assert.ok(upStart > 0);
        assert.ok(!text.slice(0, upStart).includes("secrets."), "no secret before the up job");
        for (const job of Object.values(d.jobs as Record<string, { steps: { uses?: string; with?: Record<string, unknown> }[] }>)) {
            const checkout = job.steps.find((s) => s.uses?.startsWith("actions/checkout@"));
            assert.equal(checkout?.with?.["persist-credentials"], false, "the checkout leaves no token in .git/config");
        }
    });

    it("deploy runs the replacement check against the deployed stack's outputs before pulumi up, and stops on it", () => {
        const d = workflow("deploy.yml");
        const steps = d.jobs.up.steps as { uses?: string; run?: string; with?: Record<string, unknown>; "continue-on-error"?: unknown }[];
        const pulumi = steps.findIndex((s) => s.uses === "pulumi/actions@v6" && s.with?.command !== undefined);
        const cli = steps.findIndex((s) => s.uses === "pulumi/actions@v6" && s.with?.command === undefined);
        const check = steps.findIndex((s) => /npm run plan -- --stack prod --deployed (\S+)/.test(s.run ?? ""));
        assert.ok(cli >= 0 && check > cli && pulumi > check, "install the CLI, check, then pulumi up");
        const run = steps[check].run as string;
        const file = /--deployed (\S+)/.exec(run)?.[1] as string;
        assert.match(run, new RegExp(`pulumi stack output --json --stack prod > ${file.replace(".", "\\.")}\n`));
        // A refusal (exit 3) fails the step, and a failed step stops the job before pulumi runs.
        assert.equal(steps[check]["continue-on-error"], undefined);
        assert.ok(!/\|\|\s*true|; *exit 0/.test(run));
    });

    describe("the checker rejects a broken workflow", () => {
        const problems = (text: string) => checkWorkflow(text, repo);

        it("accepts a good one", () => assert.deepEqual(problems(GOOD), []));

        it("invalid YAML", () => assert.match(problems("on: [push\njobs: {}")[0], /not valid YAML/));

        it("no trigger, no jobs, a job with no runner", () => {
            assert.ok(problems(GOOD.replace("on: [push]\n", "")).includes("has no on: (no trigger)"));
            assert.deepEqual(problems("on: push\njobs: {}\n"), ["has no jobs"]);
            assert.deepEqual(problems(GOOD.replace("    runs-on: ubuntu-latest\n", "")), ['job "a" has no runs-on']);
        });

        it("an npm script, a script file or a secret that does not exist; an unpinned action", () => {
            assert.deepEqual(problems(GOOD.replace("npm run plan", "npm run deploy-everything")), ['runs "npm run deploy-everything", which is not a package.json script']);
            assert.deepEqual(problems(GOOD.replace("bash .ci/run", "bash .ci/nope.sh")), ["runs .ci/nope.sh, which is not a file in the repository"]);
            assert.deepEqual(problems(GOOD.replace("&& sudo bash .ci/run", "&& ./scripts/missing.ts")), ["runs ./scripts/missing.ts, which is not a file in the repository"]);
            assert.deepEqual(problems(GOOD.replace("secrets.PULUMI_ACCESS_TOKEN", "secrets.AWS_SECRET_ACCESS_KEY")), [
                "uses secrets.AWS_SECRET_ACCESS_KEY, which the README's Operations section does not list as a repository secret",
            ]);
            assert.deepEqual(problems(GOOD.replace("secrets.PULUMI_ACCESS_TOKEN", "secrets['R2_KEY']")).length, 1);
            assert.deepEqual(problems(GOOD.replace("actions/checkout@v4", "actions/checkout")), ['job "a" step 1: uses "actions/checkout" is not owner/repo@ref']);
        });

        it("reads the secrets from the README's Operations table only", () => {
            const readme = "# x\n## Operations\n\n### Repository secrets\n\n| secret | what |\n| --- | --- |\n| `A_TOKEN` | a |\n\nmentions `NOT_A_SECRET`\n\n## Layout\n| `LAYOUT_X` | no |\n";
            assert.deepEqual([...documentedSecrets(readme)], ["A_TOKEN"]);
            assert.deepEqual([...documentedSecrets("# no operations section\n")], []);
        });
    });
});
