// Python shared by the tools on database members (vps-ha-switchover, vps-ha-patroni-config):
// one module, installed once per node, found through VPS_HA_PYTHON_LIB or its fixed directory.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { FilePart } from "./cloud-config";

export const PYTHON_LIB = "/usr/local/lib/vps-ha/python";
export const REST_MODULE = "vpsha_rest.py";

/** The lines a tool starts with to import the shared module (tests point VPS_HA_PYTHON_LIB elsewhere). */
export const PYTHON_LIB_IMPORT = `sys.path.insert(0, os.environ.get("VPS_HA_PYTHON_LIB", "${PYTHON_LIB}"))`;

export function restModuleText(): string {
    return readFileSync(join(__dirname, REST_MODULE), "utf8");
}

export function pythonLibFiles(): FilePart[] {
    return [{ path: `${PYTHON_LIB}/${REST_MODULE}`, content: restModuleText(), permissions: "0644" }];
}
