// The Python programs nodes get (render/python-lib.ts shippedPython): only commentary (comment
// lines, docstrings) may be left out. Python's own parser must see the same program in what is shipped as in the file.
import { strict as assert } from "node:assert";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { shippedPython } from "../components/render/python-lib";
import { requireTools, run } from "./helpers/tools";

const RENDER = join(__dirname, "..", "components", "render");

/** The program's syntax tree as Python dumps it, docstrings (the module's, functions', classes') left out: a body that was only a docstring reads as `pass`. */
function syntaxTree(source: string): string {
    const script = [
        "import ast,sys",
        "m=ast.parse(sys.stdin.read())",
        "for n in ast.walk(m):",
        "  if isinstance(n,(ast.Module,ast.FunctionDef,ast.AsyncFunctionDef,ast.ClassDef)):",
        "    b=n.body",
        "    if b and isinstance(b[0],ast.Expr) and isinstance(b[0].value,ast.Constant) and isinstance(b[0].value.value,str): n.body=b[1:] or [ast.Pass()]",
        "print(ast.dump(m))",
    ].join("\n");
    const r = run("python3", ["-c", script], source);
    assert.equal(r.status, 0, r.stderr);
    return r.stdout;
}

describe("Python as nodes get it", function () {
    this.timeout(60000); // python3 once per check, on a machine that may be busy
    before(function () {
        requireTools(this, ["python3"]);
    });

    for (const file of readdirSync(RENDER).filter((f) => f.endsWith(".py"))) {
        it(`${file}: the same program without its comment lines and docstrings, its usage line kept`, () => {
            const source = readFileSync(join(RENDER, file), "utf8");
            const shipped = shippedPython(source);
            assert.equal(syntaxTree(shipped), syntaxTree(source));
            assert.ok(shipped.length < source.length, "something was left out");
            assert.doesNotMatch(shipped, /^\s*# /m, "no comment line is left");
            assert.doesNotMatch(shipped, /^\s*(async\s+)?(def|class) [^\n]*:\n\s*"""/m, "no docstring is left");
            const usage = source.split('"""')[1].trim().split("\n").pop() as string;
            assert.ok(shipped.includes(usage), `keeps ${usage}`);
        });
    }

    it("keeps lines inside a string that only look like comments", () => {
        const source = '#!/usr/bin/python3\n"""title\n\nmore\n\nusage: x\n"""\n# a comment\nTEXT = """\n# kept\n"""\nx = 1  # kept too\n';
        const shipped = shippedPython(source);
        assert.equal(shipped, '#!/usr/bin/python3\n"""title\n\nusage: x\n"""\nTEXT = """\n# kept\n"""\nx = 1  # kept too\n');
        assert.equal(syntaxTree(shipped), syntaxTree(source));
    });

    it("leaves out the docstrings of functions and classes, one line or several, with a pass where nothing else is left", () => {
        const source = '"""title\n\nusage: x\n"""\nclass A:\n    """One line."""\n    x = 1\n\n\ndef f(a,\n      b):\n    """Several\n\n    lines.\n    """\n    return """not a docstring"""\n\n\nclass Bad(Exception):\n    """Only this."""\n\n\nclass Last:\n    """Only this too."""\n';
        const shipped = shippedPython(source);
        assert.equal(shipped, '"""title\n\nusage: x\n"""\nclass A:\n    x = 1\n\n\ndef f(a,\n      b):\n    return """not a docstring"""\n\n\nclass Bad(Exception):\n\n\n    pass\nclass Last:\n\n    pass');
        assert.equal(syntaxTree(shipped), syntaxTree(source));
    });
});
