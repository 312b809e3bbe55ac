// The planned switchover tool on every database member (vpsha/switchover.py in node-agent/): pause
// the poolers (run on the primary's node: from Patroni's before_stop hook, just before PostgreSQL
// stops), move the primary with Patroni, wait until HAProxy routes to it, resume. The
// poolers are found at run time in the mesh directory, so no member's user-data names them.
import { FilePart } from "./cloud-config";
import { DIRECTORY_CACHE } from "./directory-agent";
import { toolFiles } from "./python-lib";

export const SWITCHOVER_TOOL = "/usr/local/sbin/vps-ha-switchover";
export const SWITCHOVER_CONFIG = "/etc/vps-ha/switchover.json";
/** Patroni's before_stop hook: pauses the poolers when a switchover run on this node asked for it. */
export const SWITCHOVER_BEFORE_STOP = `${SWITCHOVER_TOOL} --before-stop`;

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
        ...toolFiles(SWITCHOVER_TOOL, "switchover"),
        { path: SWITCHOVER_CONFIG, content: JSON.stringify(config, null, 1) + "\n", permissions: "0600" },
    ];
}
