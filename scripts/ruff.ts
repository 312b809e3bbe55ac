// npm run lint:python: ruff over every .py file under node-agent/, with the settings of
// node-agent/pyproject.toml's [tool.ruff]. Ruff is Astral's WebAssembly build from npm (PyPI is
// not a source here, and Debian ships no ruff); it checks text, so this script finds the files
// and reads the settings (smol-toml). Prints path:line:col code message; exits 1 on any finding.
import { readdirSync, readFileSync } from "node:fs";
import { join, relative } from "node:path";
import { PositionEncoding, Workspace } from "@astral-sh/ruff-wasm-nodejs";
import { parse } from "smol-toml";

const ROOT = join(__dirname, "..");
export const NODE_AGENT = join(ROOT, "node-agent");

export interface Finding {
    file: string;
    line: number;
    column: number;
    code: string;
    message: string;
}

/** [tool.ruff] of a pyproject.toml, as ruff's own settings object. */
export function ruffSettings(pyproject: string): Record<string, unknown> {
    const tool = (parse(readFileSync(pyproject, "utf8")) as { tool?: { ruff?: Record<string, unknown> } }).tool;
    if (!tool?.ruff) throw new Error(`${relative(ROOT, pyproject)} has no [tool.ruff] table`);
    return tool.ruff;
}

function pythonFiles(dir: string): string[] {
    return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
        if (e.isDirectory()) return e.name === "__pycache__" ? [] : pythonFiles(join(dir, e.name));
        return e.name.endsWith(".py") ? [join(dir, e.name)] : [];
    }).sort();
}

/** Every finding of ruff in the .py files under `dir`, with `dir`'s pyproject.toml settings. */
export function lintPython(dir: string = NODE_AGENT): Finding[] {
    const pyproject = join(dir, "pyproject.toml");
    let workspace: Workspace;
    try {
        workspace = new Workspace(ruffSettings(pyproject), PositionEncoding.Utf16);
    } catch (e) {
        // Ruff refuses a setting it does not know, naming it.
        throw new Error(`${relative(ROOT, pyproject)} [tool.ruff]: ${String(e).replace(/^(Error: )+/, "")}`);
    }
    try {
        return pythonFiles(dir).flatMap((file) => (workspace.check(readFileSync(file, "utf8")) as { code: string | null; message: string; start_location: { row: number; column: number } }[])
            .map((d) => ({ file: relative(ROOT, file), line: d.start_location.row, column: d.start_location.column, code: d.code ?? "syntax", message: d.message })));
    } finally {
        workspace.free();
    }
}

if (require.main === module) {
    let findings: Finding[];
    try {
        findings = lintPython();
    } catch (e) {
        console.error(`ruff: ${e instanceof Error ? e.message : String(e)}`);
        process.exit(2);
    }
    for (const f of findings) console.log(`${f.file}:${f.line}:${f.column}: ${f.code} ${f.message}`);
    if (findings.length) {
        console.error(`ruff: ${findings.length} finding${findings.length === 1 ? "" : "s"} (settings: node-agent/pyproject.toml [tool.ruff])`);
        process.exit(1);
    }
    console.log(`ruff ${Workspace.version()}: no findings in node-agent/`);
}
