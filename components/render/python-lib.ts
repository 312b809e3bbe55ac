// Python on the nodes. The tools' programs are files of their own beside their renderers (plain
// Python to read and check); nodes get them through shippedPython. The tools on database members
// (vps-ha-switchover, vps-ha-patroni-config, vps-ha-after-promote) share one module, installed
// once per node, found through VPS_HA_PYTHON_LIB or its fixed directory.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { FilePart } from "./cloud-config";

export const PYTHON_LIB = "/usr/local/lib/vps-ha/python";
export const REST_MODULE = "vpsha_rest.py";

/** The lines a tool starts with to import the shared module (tests point VPS_HA_PYTHON_LIB elsewhere). */
export const PYTHON_LIB_IMPORT = `sys.path.insert(0, os.environ.get("VPS_HA_PYTHON_LIB", "${PYTHON_LIB}"))`;

const TRIPLE = '"""';

/**
 * A Python program as nodes get it: its comment lines and the docstrings of its functions and
 * classes left out, and its module docstring cut to its first line and its last (the usage line
 * the tools print). Hetzner Cloud takes at most 32 KiB of user data (gzip, then base64), and a
 * database member's is close to that; the commentary stays here, beside the code it explains.
 * Only whole comment lines outside triple-quoted strings and docstrings go (no tool reads a
 * function's __doc__), so the program itself is unchanged (test/shipped-python.test.ts compares
 * the syntax trees, docstrings aside).
 */
export function shippedPython(source: string): string {
    const lines = source.split("\n");
    const out: string[] = [];
    let i = 0;
    if (lines[0]?.startsWith("#!")) out.push(lines[i++]);
    if (lines[i]?.startsWith(TRIPLE) && lines[i].split(TRIPLE).length === 2) {
        let end = i + 1;
        while (end < lines.length && !lines[end].includes(TRIPLE)) end++;
        const text = lines.slice(i, end + 1).map((l) => l.replace(TRIPLE, "").trim()).filter(Boolean);
        out.push(`${TRIPLE}${text[0]}`, "", text[text.length - 1], TRIPLE);
        i = end + 1;
    }
    let quoted = false;
    // Set once a def or class header has ended: a string opening its body is its docstring.
    let header: "none" | "open" | "done" = "none";
    let docstring = false;
    // The indentation of a docstring just left out: a body that had nothing else gets a `pass`.
    let bodyIndent: string | undefined;
    const indentOf = (line: string) => /^\s*/.exec(line)?.[0] ?? "";
    for (const line of lines.slice(i)) {
        const opensOrCloses = (line.split(TRIPLE).length - 1) % 2 === 1;
        if (docstring) {
            if (opensOrCloses) docstring = false;
            continue;
        }
        if (!quoted && header === "done" && line.trimStart().startsWith(TRIPLE)) {
            header = "none";
            docstring = opensOrCloses;
            bodyIndent = indentOf(line);
            continue;
        }
        if (!quoted && !opensOrCloses && line.trimStart().startsWith("#")) continue;
        if (bodyIndent !== undefined && line.trim()) {
            if (indentOf(line).length < bodyIndent.length) out.push(`${bodyIndent}pass`);
            bodyIndent = undefined;
        }
        if (!quoted && line.trim()) {
            if (header === "none" && /^\s*(async\s+def|def|class)\s/.test(line)) header = "open";
            else if (header === "done") header = "none";
            if (header === "open" && line.trimEnd().endsWith(":")) header = "done";
        }
        if (opensOrCloses) quoted = !quoted;
        out.push(line);
    }
    if (bodyIndent !== undefined) out.push(`${bodyIndent}pass`);
    return out.join("\n");
}

/** A program beside this file, as nodes get it. */
export function shippedTool(file: string): string {
    return shippedPython(readFileSync(join(__dirname, file), "utf8"));
}

export function restModuleText(): string {
    return shippedTool(REST_MODULE);
}

export function pythonLibFiles(): FilePart[] {
    return [{ path: `${PYTHON_LIB}/${REST_MODULE}`, content: restModuleText(), permissions: "0644" }];
}
