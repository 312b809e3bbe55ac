// Keeps the cluster's dynamic configuration (in etcd) as the stack file says, on every database
// member (vpsha/patroni_config.py in node-agent/). Patroni reads bootstrap.dcs only when the cluster
// is created: without this, members rebuilt with a new stack file (a witness added: more standbys
// per commit) would join a cluster that keeps the old values until someone ran patronictl.
import { DB_PORTS } from "../plan";
import { FilePart } from "./cloud-config";
import { absentDynamicKeys, PATRONI_CONFIG, PATRONI_UNIT, patroniDynamicConfig, RestartParameters, SynchronousSpec } from "./patroni";
import { renderUnit } from "./systemd";
import { toolFiles } from "./python-lib";

export const PATRONI_DYNAMIC_TOOL = "/usr/local/lib/vps-ha/patroni-config";
export const PATRONI_DYNAMIC_SETTINGS = "/etc/vps-ha/patroni-dynamic.json";
export const PATRONI_DYNAMIC_UNIT = "vps-ha-patroni-config.service";

export interface PatroniDynamicSettings {
    patroniUrl: string;
    /** The member's patroni.yml, for the REST API's credentials (kept in one file only). */
    patroniConfig: string;
    desired: ReturnType<typeof patroniDynamicConfig>;
    /** Key paths that must not be set (null in Patroni's PATCH). */
    absent: string[][];
    /** How long to wait for the cluster's configuration to be readable (a new cluster bootstraps first). */
    waitSeconds: number;
    /** How often it asks meanwhile. */
    retrySeconds: number;
}

export function patroniDynamicSettings(meshAddress: string, sync: SynchronousSpec, restart: RestartParameters = {}): PatroniDynamicSettings {
    return {
        patroniUrl: `http://${meshAddress}:${DB_PORTS.patroni}`,
        patroniConfig: PATRONI_CONFIG,
        desired: patroniDynamicConfig(sync, restart),
        absent: absentDynamicKeys(sync, restart),
        waitSeconds: 600,
        retrySeconds: 2,
    };
}

export function patroniDynamicFiles(meshAddress: string, sync: SynchronousSpec, restart: RestartParameters = {}): FilePart[] {
    return [
        ...toolFiles(PATRONI_DYNAMIC_TOOL, "patroni_config"),
        { path: PATRONI_DYNAMIC_SETTINGS, content: JSON.stringify(patroniDynamicSettings(meshAddress, sync, restart), null, 1) + "\n", permissions: "0644" },
        {
            path: `/etc/systemd/system/${PATRONI_DYNAMIC_UNIT}`,
            // Active once done, "activating" while it waits for the cluster (started with
            // --no-block, so boot does not wait for it); tried again if the wait ran out.
            content: renderUnit({
                Unit: { Description: "Keep Patroni's dynamic configuration as the stack file says", After: PATRONI_UNIT, Wants: PATRONI_UNIT },
                Service: { Type: "oneshot", RemainAfterExit: "yes", ExecStart: PATRONI_DYNAMIC_TOOL, Restart: "on-failure", RestartSec: "30s" },
                Install: { WantedBy: "multi-user.target" },
            }),
        },
    ];
}
