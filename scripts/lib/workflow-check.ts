// Checks a GitHub Actions workflow file against the repository: valid YAML with `on:` and jobs
// that say where they run; every `npm run X` names a package.json script, every script path a
// step runs exists, every `${{ secrets.NAME }}` is a documented repository secret, every action
// is pinned to a ref. Pure: the caller says what exists.
import { isMap, isScalar, parseDocument } from "yaml";

export interface RepoFacts {
    scripts: ReadonlySet<string>;
    fileExists: (path: string) => boolean;
    secrets: ReadonlySet<string>;
}

const SECRET_REF = /secrets\s*(?:\.\s*([A-Za-z_][A-Za-z0-9_]*)|\[\s*['"]([^'"]+)['"]\s*\])/g;
const EXPRESSION = /\$\{\{([\s\S]*?)\}\}/g;
const NPM_RUN = /\bnpm\s+(?:run|run-script)\s+([\w:.-]+)/g;
/** `bash X`, `sh X`, `tsx X`, `node X` (after any flags), and bare ./X or scripts/X, .ci/X paths. */
const RUNS_FILE = /\b(?:bash|sh|tsx|node)\s+((?:-\S+\s+)*)([^\s;&|$"'`-][^\s;&|"'`]*)/g;
const BARE_PATH = /(?:^|[\s;&|(])((?:\.\/)?(?:scripts|\.ci|test)\/[\w./-]+)/g;

/** The repository secrets the README's "## Operations" section lists in its "Repository secrets" table. */
export function documentedSecrets(readme: string): Set<string> {
    const ops = /^## Operations\s*$([\s\S]*?)(?=^## )/m.exec(readme)?.[1] ?? "";
    const table = /^### Repository secrets\s*$([\s\S]*?)(?=^#{2,3} |$(?![\s\S]))/m.exec(ops)?.[1] ?? "";
    return new Set([...table.matchAll(/^\|\s*`([A-Z][A-Z0-9_]*)`\s*\|/gm)].map((m) => m[1]));
}

function runCommands(doc: unknown): string[] {
    const out: string[] = [];
    const jobs = (doc as { jobs?: Record<string, { steps?: unknown[] }> }).jobs ?? {};
    for (const job of Object.values(jobs)) {
        for (const step of Array.isArray(job?.steps) ? job.steps : []) {
            const run = (step as { run?: unknown })?.run;
            if (typeof run === "string") out.push(run);
        }
    }
    return out;
}

function checkJobs(doc: Record<string, unknown>): string[] {
    const jobs = doc.jobs;
    if (typeof jobs !== "object" || jobs === null || Array.isArray(jobs) || Object.keys(jobs).length === 0) return ["has no jobs"];
    const out: string[] = [];
    for (const [name, job] of Object.entries(jobs as Record<string, unknown>)) {
        const j = (job ?? {}) as Record<string, unknown>;
        if (typeof j.uses === "string") continue; // a reusable workflow runs where it says
        if (j["runs-on"] === undefined || j["runs-on"] === null || j["runs-on"] === "") out.push(`job "${name}" has no runs-on`);
        if (!Array.isArray(j.steps) || j.steps.length === 0) out.push(`job "${name}" has no steps`);
        for (const [i, step] of (Array.isArray(j.steps) ? j.steps : []).entries()) {
            const s = (step ?? {}) as Record<string, unknown>;
            if (typeof s.uses !== "string" && typeof s.run !== "string") out.push(`job "${name}" step ${i + 1} has neither uses nor run`);
            if (typeof s.uses === "string" && !s.uses.startsWith("./") && !s.uses.startsWith("docker://") && !/^[\w.-]+\/[\w./-]+@[\w.-]+$/.test(s.uses)) {
                out.push(`job "${name}" step ${i + 1}: uses "${s.uses}" is not owner/repo@ref`);
            }
        }
    }
    return out;
}

/** Every problem with one workflow file's text; empty when it is fine. */
export function checkWorkflow(text: string, repo: RepoFacts): string[] {
    const parsed = parseDocument(text);
    if (parsed.errors.length > 0) return parsed.errors.map((e) => `is not valid YAML: ${e.message.split("\n")[0]}`);
    if (!isMap(parsed.contents)) return ["is not a YAML mapping"];
    // YAML 1.1 readers (GitHub's among them) take a bare `on` key as the trigger list; so do we.
    const hasOn = parsed.contents.items.some((pair) => isScalar(pair.key) && (pair.key.value === "on" || pair.key.value === true));
    const doc = parsed.toJS() as Record<string, unknown>;
    const out: string[] = [];
    if (!hasOn) out.push("has no on: (no trigger)");
    out.push(...checkJobs(doc));
    for (const run of runCommands(doc)) {
        for (const m of run.matchAll(NPM_RUN)) if (!repo.scripts.has(m[1])) out.push(`runs "npm run ${m[1]}", which is not a package.json script`);
        const paths = new Set([...run.matchAll(RUNS_FILE)].map((m) => m[2]).filter((p) => p.includes("/") || p.includes(".")));
        for (const m of run.matchAll(BARE_PATH)) paths.add(m[1]);
        for (const p of paths) if (!repo.fileExists(p.replace(/^\.\//, ""))) out.push(`runs ${p}, which is not a file in the repository`);
    }
    for (const expr of text.matchAll(EXPRESSION)) {
        for (const m of expr[1].matchAll(SECRET_REF)) {
            const name = m[1] ?? m[2];
            if (!repo.secrets.has(name)) out.push(`uses secrets.${name}, which the README's Operations section does not list as a repository secret`);
        }
    }
    return out;
}
