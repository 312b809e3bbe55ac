// The planned switchover tool on every database member (vpsha/switchover.py in node-agent/): pause
// the poolers (run on the primary's node: from Patroni's before_stop hook, just before PostgreSQL
// stops), move the primary with Patroni, wait until HAProxy routes to it, resume. The
// poolers are found at run time in the mesh directory, so no member's user-data names them.
import { FilePart } from "./cloud-config";
import { DIRECTORY_CACHE } from "./directory-agent";
import { toolFiles } from "./python-lib";
import { renderUnit } from "./systemd";

export const SWITCHOVER_TOOL = "/usr/local/sbin/vps-ha-switchover";
export const SWITCHOVER_CONFIG = "/etc/vps-ha/switchover.json";
/** Patroni's before_stop hook: pauses the poolers when a switchover run on this node asked for it. */
export const SWITCHOVER_BEFORE_STOP = `${SWITCHOVER_TOOL} --before-stop`;

/** PAUSE waits this long for in-flight transactions before the switchover is called off. */
export const SWITCHOVER_PAUSE_TIMEOUT_SECONDS = 15;
/** Patroni's switchover and HAProxy's routing to the new primary, at most. */
export const SWITCHOVER_SWITCH_TIMEOUT_SECONDS = 30;
/**
 * No pooler stays paused longer (its guard resumes it, render/pgbouncer.ts): the longest pause a
 * live tool makes, plus the resume. Below pgbouncer's query_wait_timeout, so a client held by a
 * stuck pause still gets through.
 */
export const POOLER_MAX_PAUSE_SECONDS = SWITCHOVER_PAUSE_TIMEOUT_SECONDS + SWITCHOVER_SWITCH_TIMEOUT_SECONDS + 10;
/** A pause whose switchover tool's sessions are gone (killed, out of memory) is resumed after this. */
export const POOLER_ORPHAN_GRACE_SECONDS = 2;

/** Runs the tool (--if-leader) when the member's server shuts down: see renderHandOverUnit. */
export const HAND_OVER_UNIT = "vps-ha-hand-over.service";
/** The tool's own bound on a switchover, and some time to ask Patroni and reach the poolers. */
export const HAND_OVER_STOP_SECONDS = SWITCHOVER_PAUSE_TIMEOUT_SECONDS + SWITCHOVER_SWITCH_TIMEOUT_SECONDS + 15;

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
    const config = { directoryCache: DIRECTORY_CACHE, pauseTimeoutSeconds: SWITCHOVER_PAUSE_TIMEOUT_SECONDS, switchTimeoutSeconds: SWITCHOVER_SWITCH_TIMEOUT_SECONDS, ...c };
    return [
        ...toolFiles(SWITCHOVER_TOOL, "switchover"),
        { path: SWITCHOVER_CONFIG, content: JSON.stringify(config, null, 1) + "\n", permissions: "0600" },
    ];
}

/**
 * A provider's shutdown of the primary's server (a move, a resize) or a reboot hands the primary
 * over through the poolers first, instead of failing the writes under way when Patroni stops.
 * `after`: what the switchover needs up while it runs (the network, the mesh, etcd, Patroni), which
 * at shutdown stop after this; never a Wants: it must not start Patroni.
 */
export function renderHandOverUnit(after: string[]): string {
    return renderUnit({
        Unit: { Description: "vps-ha hand-over: a member's shutdown hands the primary over first", After: after.join(" ") },
        Service: {
            Type: "oneshot",
            RemainAfterExit: "yes",
            ExecStart: "/bin/true",
            // "-": a failed switchover holds no shutdown up (Patroni's own stop follows).
            ExecStop: `-${SWITCHOVER_TOOL} --if-leader`,
            TimeoutStopSec: String(HAND_OVER_STOP_SECONDS),
        },
        Install: { WantedBy: "multi-user.target" },
    });
}
