// A promotion without idle seconds, on every database member. Patroni promotes with
// `pg_ctl promote -W` (no waiting) and looks once, at once, whether PostgreSQL is done; it never
// is that fast, so Patroni looked again a second later, and only then began its work as primary
// (the synchronous set, the leader's history). Then its quorum hand-over, which frees commits
// that wait for lost standbys, takes two loops, the second more than loop_wait after the first.
// Measured after losing the provider that held most members (k = 2): 3.2 to 4.3 s from the
// promotion to the first commit, about 2 s of them Patroni waiting for its next loop; with both
// parts below, 1.1 to 1.4 s.
// - Patroni's pg_ctl (postgresql.bin_name.pg_ctl) is a wrapper: a promotion returns once
//   pg_controldata says "in production" (a few hundredths of a second; at most PROMOTE_WAIT), so
//   Patroni's first look finds it done and it starts its next loop at once.
// - Patroni's on_role_change hook (vpsha/after_promote.py in node-agent/) wakes Patroni's loop while
//   commits wait for standbys that are not there; Patroni's own rules decide what changes.
import { FilePart } from "./cloud-config";
import { toolFiles } from "./python-lib";

export const PG_CTL_WRAPPER = "/usr/local/lib/vps-ha/pg_ctl";
export const AFTER_PROMOTE_TOOL = "/usr/local/sbin/vps-ha-after-promote";
/** Longest the wrapper waits for a promotion to finish; past it Patroni finds out at its next loop, as before. */
export const PROMOTE_WAIT_SECONDS = 1;
const PROMOTE_CHECK_SECONDS = 0.02;
/**
 * The hook's wake-up: a PATCH /config that removes a key nobody sets, so Patroni finds nothing
 * changed and writes nothing, and runs its loop at once as after any PATCH (after_promote.py
 * sends this; test/after-promote.test.ts checks that it does).
 */
export const NO_CHANGE = { vps_ha_wake: null } as const;

/** Patroni's on_role_change command; Patroni appends the action, the role and the scope. */
export function afterPromoteHook(patroniConfig: string): string {
    return `${AFTER_PROMOTE_TOOL} --patroni-config ${patroniConfig}`;
}

/** The pg_ctl Patroni runs: PostgreSQL's own, except that a promotion returns when it is done. */
export function renderPgCtlWrapper(pgBinDir: string): string {
    const checks = Math.round(PROMOTE_WAIT_SECONDS / PROMOTE_CHECK_SECONDS);
    return [
        "#!/bin/sh",
        "# vps-ha: Patroni's pg_ctl (postgresql.bin_name.pg_ctl). Everything goes to PostgreSQL's pg_ctl;",
        "# after a promotion it asked for, this returns once the cluster is in production, so that",
        "# Patroni, which looks once right away and then a second later, finds the promotion done.",
        `PG_CTL=${pgBinDir}/pg_ctl`,
        '[ "$1" = promote ] || exec "$PG_CTL" "$@"',
        '"$PG_CTL" "$@" || exit',
        'data=; prev=; for a in "$@"; do [ "$prev" = -D ] && data=$a; prev=$a; done',
        "i=0",
        `while [ $i -lt ${checks} ]; do`,
        `    LC_ALL=C ${pgBinDir}/pg_controldata -D "$data" 2>/dev/null | grep -q '^Database cluster state: *in production$' && exit 0`,
        `    sleep ${PROMOTE_CHECK_SECONDS}; i=$((i + 1))`,
        "done",
        `echo "vps-ha pg_ctl: the promotion did not finish within ${PROMOTE_WAIT_SECONDS} s; Patroni checks again at its next loop" >&2`,
        "",
    ].join("\n");
}

export function afterPromoteFiles(pgBinDir: string): FilePart[] {
    return [
        { path: PG_CTL_WRAPPER, content: renderPgCtlWrapper(pgBinDir), permissions: "0755" },
        ...toolFiles(AFTER_PROMOTE_TOOL, "after_promote"),
    ];
}
