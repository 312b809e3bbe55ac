// The planned switchover tool on every database member (switchover.py beside this file): pause
// the poolers, move the primary with Patroni, wait until HAProxy routes to it, resume. The
// poolers are found at run time in the mesh directory, so no member's user-data names them.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { FilePart } from "./cloud-config";
import { DIRECTORY_CACHE } from "./directory-agent";

export const SWITCHOVER_TOOL = "/usr/local/sbin/vps-ha-switchover";
export const SWITCHOVER_CONFIG = "/etc/vps-ha/switchover.json";

export interface SwitchoverConfig {
    /** This member's Patroni REST API. */
    patroniUrl: string;
    restUser: string;
    restPassword: string;
    poolerPort: number;
    poolerAdminUser: string;
    poolerAdminPassword: string;
    database: string;
    /** HAProxy's stats (CSV) on the mesh, and the listen whose servers are the primary's. */
    haproxyStatsPort: number;
    haproxyPrimaryListen: string;
    directoryCache?: string;
    /** PAUSE waits for in-flight transactions; past this the switchover is called off. */
    pauseTimeoutSeconds?: number;
    switchTimeoutSeconds?: number;
}

export function switchoverFiles(c: SwitchoverConfig): FilePart[] {
    const config = { directoryCache: DIRECTORY_CACHE, pauseTimeoutSeconds: 15, switchTimeoutSeconds: 30, ...c };
    return [
        { path: SWITCHOVER_TOOL, content: readFileSync(join(__dirname, "switchover.py"), "utf8"), permissions: "0755" },
        { path: SWITCHOVER_CONFIG, content: JSON.stringify(config, null, 1) + "\n", permissions: "0600" },
    ];
}
