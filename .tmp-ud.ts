import { writeFileSync } from "node:fs";
import { labProgram, stackSource } from "./scripts/lab/program";
(async () => { const p = await labProgram(stackSource({ stack: "prod" })); for (const s of p.specs) writeFileSync(`/tmp/replace-ud-${process.argv[2]}-${s.name}`, s.userData); })();
