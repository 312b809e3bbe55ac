// The Python modules nodes get (render/python-lib.ts shippedPython): only commentary (comment
// lines, blank lines, docstrings) may be left out, and indentation turn to tabs. Python's own
// parser must see the same program in what is shipped as in the file.
import { strict as assert } from "node:assert";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { PACKAGE_SOURCE, shippedPython } from "../components/render/python-lib";
import { requireTools, run } from "./helpers/tools";

/**
 * For each [shipped, source] pair, whether Python's parser sees the same program in both, with
 * docstrings (the module's, functions', classes') left out: a body that was only a docstring reads
 * as `pass`. null: the same; else both trees as Python dumps them. One python3 run for all pairs.
 */
function treeDifferences(pairs: [string, string][]): ([string, string] | null)[] {
    const script = [
        "import ast,json,sys",
        "def tree(s):",
        "  m=ast.parse(s)",
        "  for n in ast.walk(m):",
        "    if isinstance(n,(ast.Module,ast.FunctionDef,ast.AsyncFunctionDef,ast.ClassDef)):",
        "      b=n.body",
        "      if b and isinstance(b[0],ast.Expr) and isinstance(b[0].value,ast.Constant) and isinstance(b[0].value.value,str): n.body=b[1:] or [ast.Pass()]",
        "  return ast.dump(m)",
        "out=[]",
        "for a,b in json.load(sys.stdin):",
        "  ta,tb=tree(a),tree(b)",
        "  out.append(None if ta==tb else [ta,tb])",
        "print(json.dumps(out))",
    ].join("\n");
    const r = run("python3", ["-c", script], JSON.stringify(pairs));
    assert.equal(r.status, 0, r.stderr);
    const out = JSON.parse(r.stdout) as ([string, string] | null)[];
    assert.equal(out.length, pairs.length);
    return out;
}

function assertSameProgram(difference: [string, string] | null | undefined): void {
    assert.notEqual(difference, undefined, "the pair was parsed");
    if (difference) assert.equal(difference[0], difference[1]);
}

describe("Python as nodes get it", function () {
    this.timeout(60000); // python3 parses every module in one run, on a machine that may be busy
    before(function () {
        requireTools(this, ["python3"]);
    });

    const modules = readdirSync(PACKAGE_SOURCE).filter((f) => f.endsWith(".py"));
    // Every module as shipped and as written, compared in one python3 run.
    const differences = new Map<string, [string, string] | null>();
    before(function () {
        const sources = modules.map((f) => readFileSync(join(PACKAGE_SOURCE, f), "utf8"));
        const found = treeDifferences(sources.map((s) => [shippedPython(s), s]));
        modules.forEach((f, i) => differences.set(f, found[i]));
    });
    for (const file of modules) {
        it(`${file}: the same program without its comment lines and docstrings, a tool's usage line kept`, () => {
            const source = readFileSync(join(PACKAGE_SOURCE, file), "utf8");
            const shipped = shippedPython(source);
            assertSameProgram(differences.get(file));
            assert.ok(shipped.length < source.length, "something was left out");
            assert.doesNotMatch(shipped, /^\s*# /m, "no comment line is left");
            assert.doesNotMatch(shipped, /^\s*(async\s+)?(def|class) [^\n]*:\n\s*"""/m, "no docstring is left");
            assert.doesNotMatch(shipped, /^ {4}/m, "indented with tabs");
            const usage = /^usage: .*$/m.exec(source)?.[0];
            assert.ok(usage || !file.match(/^(directory|peer_watch|switchover|after_promote|patroni_config|etcd_leader)\.py$/), `${file} has a usage line`);
            if (usage) assert.ok(shipped.startsWith(`"""\n${usage}\n"""\n`), `keeps ${usage}`);
            else assert.doesNotMatch(shipped, /^"""/, "a module docstring without a usage line goes");
        });
    }

    it("leaves out a module docstring without a usage line", () => {
        const source = '"""A shared module.\n\nMore about it.\n"""\nimport os\n\n\ndef f():\n    if os:\n        return 1\n';
        const shipped = shippedPython(source);
        assert.equal(shipped, "import os\ndef f():\n\tif os:\n\t\treturn 1\n");
        assertSameProgram(treeDifferences([[shipped, source]])[0]);
    });

    it("keeps lines inside a string that only look like comments", () => {
        const source = '#!/usr/bin/python3\n"""title\n\nmore\n\nusage: x\n"""\n# a comment\nTEXT = """\n# kept\n\n    indented, kept\n"""\nx = 1  # kept too\n';
        const shipped = shippedPython(source);
        assert.equal(shipped, '#!/usr/bin/python3\n"""\nusage: x\n"""\nTEXT = """\n# kept\n\n    indented, kept\n"""\nx = 1  # kept too\n');
        assertSameProgram(treeDifferences([[shipped, source]])[0]);
    });

    it("leaves out the docstrings of functions and classes, one line or several, with a pass where nothing else is left; blank lines go, indentation turns to tabs", () => {
        const source = '"""title\n\nusage: x\n"""\nclass A:\n    """One line."""\n    x = 1\n\n\ndef f(a,\n      b):\n    """Several\n\n    lines.\n    """\n    return """not a docstring"""\n\n\nclass Bad(Exception):\n    """Only this."""\n\n\nclass Last:\n    """Only this too."""\n';
        const shipped = shippedPython(source);
        assert.equal(shipped, '"""\nusage: x\n"""\nclass A:\n\tx = 1\ndef f(a,\n\t  b):\n\treturn """not a docstring"""\nclass Bad(Exception):\n\tpass\nclass Last:\n\tpass\n');
        assertSameProgram(treeDifferences([[shipped, source]])[0]);
    });
});
