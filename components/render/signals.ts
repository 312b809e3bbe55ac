// vps-ha's own health signals: what no exporter knows (backups, restore checks, the directory and
// desired state each node applied, rollouts, the pooler, upgrades, certificates). Node-side
// writers put them in node_exporter's textfile directory; the alert rules and the status command
// read them by these names. This table is the one place the names, types and help texts live.

/** Debian's prometheus-node-exporter reads `*.prom` files here (its --collector.textfile.directory default). */
export const TEXTFILE_DIR = "/var/lib/prometheus/node-exporter";

export interface SignalDef {
    name: string;
    type: "gauge" | "counter";
    help: string;
    /** Label names, in order; every sample carries each of them. */
    labels: readonly string[];
    /** A label whose values are fixed (e.g. a state): the only values a writer may use. */
    labelValues?: Readonly<Record<string, readonly string[]>>;
    /** The file a writer owns under TEXTFILE_DIR (one writer per file; written whole, then renamed). */
    file: string;
}

export const ROLLOUT_STATES = ["idle", "waiting", "applying", "halted"] as const;
export const BACKUP_TYPES = ["full", "diff", "incr"] as const;
/** What a pending security upgrade waits for: unattended-upgrades' next run, or a release (held packages). */
export const UPGRADE_WAITS = ["unattended-upgrades", "release"] as const;

export const SIGNALS = {
    walArchiveLastSuccess: {
        name: "vpsha_wal_archive_last_success_timestamp_seconds",
        type: "gauge",
        help: "Unix time of the newest WAL segment archived to the stanza's repository (pgbackrest info).",
        labels: ["stanza"],
        file: "vpsha-backup.prom",
    },
    backupLastSuccess: {
        name: "vpsha_backup_last_success_timestamp_seconds",
        type: "gauge",
        help: "Unix time at which the newest backup of this type in the stanza's repository finished (pgbackrest info).",
        labels: ["stanza", "type"],
        labelValues: { type: BACKUP_TYPES },
        file: "vpsha-backup.prom",
    },
    restoreCheckLastRun: {
        name: "vpsha_restore_check_last_run_timestamp_seconds",
        type: "gauge",
        help: "Unix time at which this node's last restore check of the stanza finished, passed or not.",
        labels: ["stanza"],
        file: "vpsha-restore-check.prom",
    },
    restoreCheckSuccess: {
        name: "vpsha_restore_check_success",
        type: "gauge",
        help: "1 if this node's last restore check (latest backup restored to a recent point in time, then checked) passed, 0 if it failed.",
        labels: ["stanza"],
        file: "vpsha-restore-check.prom",
    },
    restoreCheckLastSuccess: {
        name: "vpsha_restore_check_last_success_timestamp_seconds",
        type: "gauge",
        help: "Unix time at which this node's last passing restore check of the stanza finished.",
        labels: ["stanza"],
        file: "vpsha-restore-check.prom",
    },
    directorySerial: {
        name: "vpsha_directory_serial",
        type: "gauge",
        help: "Generation of the signed mesh directory index this node applied last.",
        labels: [],
        file: "vpsha-directory.prom",
    },
    directoryRefused: {
        name: "vpsha_directory_refused",
        type: "gauge",
        help: "1 while this node refuses the newest mesh directory index in DNS (older than the one it applied, or removing more than a third of a role's members without being marked deliberate), else 0.",
        labels: [],
        file: "vpsha-directory.prom",
    },
    directoryLastSuccess: {
        name: "vpsha_directory_last_success_timestamp_seconds",
        type: "gauge",
        help: "Unix time of this node's last round that read and verified the mesh directory.",
        labels: [],
        file: "vpsha-directory.prom",
    },
    desiredStateGeneration: {
        name: "vpsha_desired_state_generation",
        type: "gauge",
        help: "Generation of the signed desired state this node applied last.",
        labels: [],
        file: "vpsha-desired-state.prom",
    },
    desiredStatePublished: {
        name: "vpsha_desired_state_published_generation",
        type: "gauge",
        help: "Generation of the signed desired state published for this node, as its last round read it.",
        labels: [],
        file: "vpsha-desired-state.prom",
    },
    desiredStateLastSuccess: {
        name: "vpsha_desired_state_last_success_timestamp_seconds",
        type: "gauge",
        help: "Unix time of this node's last successful check for desired state (fetched, verified, converged or already current).",
        labels: [],
        file: "vpsha-desired-state.prom",
    },
    rolloutState: {
        name: "vpsha_rollout_state",
        type: "gauge",
        help: "1 for the state this node's part of the current rollout is in, 0 for the others.",
        labels: ["state"],
        labelValues: { state: ROLLOUT_STATES },
        file: "vpsha-desired-state.prom",
    },
    poolerPaused: {
        name: "vpsha_pooler_paused",
        type: "gauge",
        help: "1 while this node's pgbouncer is paused (a switchover holds new transactions), else 0.",
        labels: [],
        file: "vpsha-pooler.prom",
    },
    upgradesPending: {
        name: "vpsha_upgrades_pending",
        type: "gauge",
        help: "Upgradable packages from the archives unattended-upgrades installs from (Debian's security archive), by what they wait for: its next run, or a vps-ha release (a held package).",
        labels: ["waits_for"],
        labelValues: { waits_for: UPGRADE_WAITS },
        file: "vpsha-upgrades.prom",
    },
    upgradesLastSuccess: {
        name: "vpsha_unattended_upgrades_last_success_timestamp_seconds",
        type: "gauge",
        help: "Unix time security updates were current as of: the older of apt's last successful package list update and unattended-upgrades' last run that finished without an error.",
        labels: [],
        file: "vpsha-upgrades.prom",
    },
    rebootRequired: {
        name: "vpsha_reboot_required",
        type: "gauge",
        help: "1 while an installed upgrade waits for a reboot (/run/reboot-required), else 0.",
        labels: [],
        file: "vpsha-upgrades.prom",
    },
    certificateExpiry: {
        name: "vpsha_certificate_expiry_timestamp_seconds",
        type: "gauge",
        help: "Unix time at which the certificate expires (its notAfter).",
        labels: ["certificate"],
        file: "vpsha-certificates.prom",
    },
} as const satisfies Record<string, SignalDef>;

export type SignalKey = keyof typeof SIGNALS;

export interface SignalSample {
    signal: SignalKey;
    labels?: Record<string, string>;
    value: number;
}

/** Label values are free text in the format, but ours are names and paths: keep them plain. */
const LABEL_VALUE = /^[A-Za-z0-9._\/:@-]{1,200}$/;

/**
 * One textfile (Prometheus text format 0.0.4) from samples: HELP and TYPE once per metric, the
 * samples after. Throws on a label a signal does not have, a missing label, a value outside a
 * fixed set, or a value that is not a finite number.
 */
export function renderTextfile(samples: SignalSample[]): string {
    const byName = new Map<SignalKey, SignalSample[]>();
    for (const s of samples) byName.set(s.signal, [...(byName.get(s.signal) ?? []), s]);
    const out: string[] = [];
    for (const [key, list] of byName) {
        const def: SignalDef = SIGNALS[key];
        out.push(`# HELP ${def.name} ${def.help}`, `# TYPE ${def.name} ${def.type}`);
        for (const s of list) {
            const labels = s.labels ?? {};
            const extra = Object.keys(labels).filter((l) => !def.labels.includes(l));
            const missing = def.labels.filter((l) => !(l in labels));
            if (extra.length || missing.length) throw new Error(`${def.name}: labels must be exactly [${def.labels.join(", ")}]; got [${Object.keys(labels).join(", ")}]`);
            for (const [l, v] of Object.entries(labels)) {
                const allowed = def.labelValues?.[l];
                if (allowed && !allowed.includes(v)) throw new Error(`${def.name}: label ${l}="${v}" is not one of ${allowed.join(", ")}`);
                if (!LABEL_VALUE.test(v)) throw new Error(`${def.name}: label ${l}="${v}" must be 1-200 of A-Z a-z 0-9 . _ / : @ -`);
            }
            if (!Number.isFinite(s.value)) throw new Error(`${def.name}: value ${s.value} is not a finite number`);
            const text = def.labels.map((l) => `${l}="${labels[l]}"`).join(",");
            out.push(`${def.name}${text ? `{${text}}` : ""} ${s.value}`);
        }
    }
    return out.join("\n") + "\n";
}

/** The table as the node-side writers (Python) read it: shipped as JSON beside them. */
export function renderSignalTable(): string {
    return JSON.stringify({ textfileDir: TEXTFILE_DIR, signals: SIGNALS }, null, 2) + "\n";
}
