// Python on the nodes: the node agent's package, node-agent/vpsha at the repository's top (one
// module per tool and the modules they share, with its own unit tests). A node gets the modules
// its tools use, through shippedPython, under PYTHON_LIB; each command it runs is a launcher
// that calls one module's main.
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { CloudConfigPart, FilePart } from "./cloud-config";
import { renderUnit } from "./systemd";

export const PYTHON_LIB = "/usr/local/lib/vps-ha/python";
export const PACKAGE = "vpsha";
/** Where a node keeps the package's modules. */
export const PACKAGE_DIR = `${PYTHON_LIB}/${PACKAGE}`;
/** The package's source, as this repository holds it. */
export const PACKAGE_SOURCE = join(__dirname, "..", "..", "node-agent", PACKAGE);

const TRIPLE = '"""';

/**
 * A line's leading four-space steps as tabs (the rest of its indentation kept): Python reads
 * lines indented with tabs alone as it reads the spaces.
 */
function tabbed(line: string): string {
    const spaces = /^ */.exec(line)?.[0].length ?? 0;
    return "\t".repeat(Math.floor(spaces / 4)) + line.slice(spaces - (spaces % 4));
}

/**
 * A Python module as nodes get it: its comment lines, blank lines and the docstrings of its
 * functions and classes left out, its module docstring cut to its usage line (its last, which the
 * tools print) or left out when it has none, and its indentation in tabs, one a level. Hetzner
 * Cloud takes at most 32 KiB of user data (gzip, then base64), and a database member's is close
 * to that; the commentary stays in node-agent/, beside the code it explains. Only whole lines
 * outside triple-quoted strings and docstrings go (no tool reads a function's __doc__), so the
 * program itself is unchanged (test/shipped-python.test.ts compares the syntax trees, docstrings
 * aside).
 */
export function shippedPython(source: string): string {
    const lines = source.split("\n");
    const out: string[] = [];
    let i = 0;
    if (lines[0]?.startsWith("#!")) out.push(lines[i++]);
    if (lines[i]?.startsWith(TRIPLE) && lines[i].split(TRIPLE).length === 2) {
        let end = i + 1;
        while (end < lines.length && !lines[end].includes(TRIPLE)) end++;
        const last = lines.slice(i, end + 1).map((l) => l.replace(TRIPLE, "").trim()).filter(Boolean).pop();
        if (last?.startsWith("usage:")) out.push(TRIPLE, last, TRIPLE);
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
        if (!quoted && !opensOrCloses && (line.trimStart().startsWith("#") || !line.trim())) continue;
        if (bodyIndent !== undefined && line.trim()) {
            if (indentOf(line).length < bodyIndent.length) out.push(tabbed(`${bodyIndent}pass`));
            bodyIndent = undefined;
        }
        if (!quoted && line.trim()) {
            if (header === "none" && /^\s*(async\s+def|def|class)\s/.test(line)) header = "open";
            else if (header === "done") header = "none";
            if (header === "open" && line.trimEnd().endsWith(":")) header = "done";
        }
        out.push(quoted ? line : tabbed(line));
        if (opensOrCloses) quoted = !quoted;
    }
    if (bodyIndent !== undefined) out.push(tabbed(`${bodyIndent}pass`));
    return out.join("\n") + "\n";
}

/** A module's source (`name` without .py, e.g. "switchover"). */
export function moduleSource(name: string): string {
    if (!/^[a-z_]+$/.test(name)) throw new Error(`not a module of ${PACKAGE}: ${name}`);
    return readFileSync(join(PACKAGE_SOURCE, `${name}.py`), "utf8");
}

/** The package's modules a module's source imports, directly (`from vpsha.x import ...`, `import vpsha.x`, `from vpsha import x, y`). */
export function moduleImports(source: string): string[] {
    const dotted = [...source.matchAll(new RegExp(`^\\s*(?:from|import) ${PACKAGE}\\.([a-z_]+)`, "gm"))].map((m) => m[1]);
    const named = [...source.matchAll(new RegExp(`^\\s*from ${PACKAGE} import ([a-z_, ]+)$`, "gm"))].flatMap((m) => m[1].split(",").map((n) => n.trim()));
    return [...dotted, ...named];
}

// Read and cut once per process: the sources do not change while the program runs, and every
// node's parts ask for the same modules again.
const shipped = new Map<string, string>();
const closures = new Map<string, string[]>();

/** A module as nodes get it. */
function shippedModule(name: string): string {
    let text = shipped.get(name);
    if (text === undefined) shipped.set(name, (text = shippedPython(moduleSource(name))));
    return text;
}

/** `name` and every module it needs, following its imports. */
export function moduleClosure(name: string): string[] {
    const known = closures.get(name);
    if (known) return [...known];
    const found: string[] = [];
    const visit = (m: string) => {
        if (found.includes(m)) return;
        found.push(m);
        moduleImports(moduleSource(m)).forEach(visit);
    };
    visit(name);
    closures.set(name, found);
    return [...found];
}

/**
 * The command a node runs for a tool: a launcher that finds the package where the node keeps it
 * and calls the module's main with the command's arguments (its exit status is the tool's).
 */
export function renderLauncher(name: string): string {
    moduleSource(name);
    return `#!/usr/bin/python3\nimport sys\nsys.path.insert(0, "${PYTHON_LIB}")\nfrom ${PACKAGE}.${name} import main\nsys.exit(main(sys.argv[1:]))\n`;
}

/**
 * A tool's files: its launcher at `command`, and the package's modules it needs as nodes get
 * them. Tools share modules (and the package's __init__): each lists them, and a node's
 * cloud-config writes a file the parts agree on once.
 */
export function toolFiles(command: string, name: string): FilePart[] {
    return [
        { path: command, content: renderLauncher(name), permissions: "0755" },
        ...moduleFiles(name),
    ];
}

/**
 * A tool run once as a change's restart (a oneshot, never enabled): its files and its unit's, and
 * the restart that runs it whenever its unit file changes (its arguments are on the ExecStart line).
 */
export function oneshotToolPart(t: { command: string; module: string; unit: string; description: string; execStart: string; timeoutSeconds: number }): CloudConfigPart {
    const unit = `/etc/systemd/system/${t.unit}`;
    return {
        files: [
            ...toolFiles(t.command, t.module),
            { path: unit, content: renderUnit({ Unit: { Description: t.description }, Service: { Type: "oneshot", ExecStart: t.execStart, TimeoutStartSec: String(t.timeoutSeconds) } }) },
        ],
        restarts: [{ unit: t.unit, paths: [unit] }],
    };
}

/** A module and those it imports, as nodes get them (for a module no launcher runs, such as the rollout gate). */
export function moduleFiles(name: string): FilePart[] {
    return ["__init__", ...moduleClosure(name)].map((m) => ({ path: `${PACKAGE_DIR}/${m}.py`, content: shippedModule(m), permissions: "0644" }));
}

/** Every module of the package as nodes get them: what the stack's shared desired-state document holds. */
export function packageFiles(): FilePart[] {
    const modules = readdirSync(PACKAGE_SOURCE).filter((f) => /^[a-z_]+\.py$/.test(f)).map((f) => f.slice(0, -3)).sort();
    return modules.map((m) => ({ path: `${PACKAGE_DIR}/${m}.py`, content: shippedModule(m), permissions: "0644" }));
}

/** Whether a node's file is one of the package's modules (taken from the shared document). */
export function isPackageFile(path: string): boolean {
    return path.startsWith(`${PACKAGE_DIR}/`);
}
