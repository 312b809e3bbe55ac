// haproxy.cfg for one node of the HAProxy pair (HAProxy 3.0, Debian 13). Both nodes are active:
// each balances HTTP to the app nodes and routes database clients to the Patroni primary (5000)
// or the replicas (5001). Database, stats and app traffic stay on the mesh. The server lines are
// not rendered here: the directory agent keeps them between the markers below, from the signed
// directory in DNS, so this file never changes when app or database nodes come and go.
import { CloudConfigPart } from "./cloud-config";
import { DIRECTORY_CONFIG_DIR, DIRECTORY_UNIT, DirectoryHaproxy, HaproxyServerBlock, ReleaseLinesBlock } from "./directory-agent";
import { ROLLOUT_VIEW_PATH, STATUS_VIEW_PATH } from "./rollout-view";
import { enableReloaded, renderUnit } from "./systemd";

export const HAPROXY_CFG = "/etc/haproxy/haproxy.cfg";
/** The listen that sends database clients to the primary. */
export const DB_PRIMARY_LISTEN = "db-primary";
export const ORIGIN_PEM = "/etc/haproxy/certs/origin.pem";
/** The certificate Cloudflare presents for this stack's hostnames (Authenticated Origin Pulls): the only client HAProxy trusts. */
export const ORIGIN_PULL_CA = "/etc/haproxy/certs/origin-pull-ca.pem";
/** Server states saved before each reload, so the reloaded process starts from them. */
export const SERVER_STATE_FILE = "/var/lib/haproxy/vps-ha-server-state";
const ADMIN_SOCKET = "/run/haproxy/admin.sock";
/**
 * The rollout token as HAProxy's pattern files hold it (root only; HAProxy reads them before it
 * drops privileges): the bare token for X-Vps-Ha-Token, "Bearer <token>" for Authorization.
 */
export const ROLLOUT_TOKEN_FILE = "/etc/haproxy/vps-ha-rollout-token";
export const ROLLOUT_BEARER_FILE = "/etc/haproxy/vps-ha-rollout-bearer";
/** The header the rollout wait sends its token in (Authorization: Bearer works too). */
export const ROLLOUT_TOKEN_HEADER = "X-Vps-Ha-Token";

export interface HaproxyConfig {
    /** This node's mesh address: database, stats and metrics listen here only. */
    meshAddress: string;
    appHealthPath: string;
    postgresPort: number;
    patroniPort: number;
    ports: { http: number; https: number; dbPrimary: number; dbReplicas: number; stats: number };
    /** A replica further behind than this is not offered on the replicas port. */
    maxReplicaLagBytes: number;
    /** Strict-Transport-Security's max-age on answers to visitors who used HTTPS. */
    hstsMaxAgeSeconds: number;
    /** Adds includeSubDomains: only when the stack owns the zone's TLS settings (cloudflare.zoneSettings). */
    hstsIncludeSubdomains: boolean;
    /** HAProxy answers this path itself: 200 while at least one app node is up, 503 otherwise. */
    monitorPath: string;
    /** Requests for this hostname go to the release candidate's backend. */
    candidateHostname: string;
    /** The rollout view's port on 127.0.0.1 (render/rollout-view.ts): /vps-ha/rollout and /vps-ha/status with the token go there. */
    rolloutViewPort: number;
}

/** HAProxy answers this itself on either hostname: "<servers up in that hostname's backend> <their port>". */
export const READY_PATH = "/vps-ha/ready";

function markers(id: string) {
    return { begin: `    # vps-ha directory: ${id} (begin)`, end: `    # vps-ha directory: ${id} (end)` };
}

/**
 * The server lines the directory agent keeps: the app nodes twice, at the active image's port in
 * `app` and at the candidate's in `app-candidate` (from the release record), and the database
 * members in both listens. An app server's name carries its port, so after a swap no server
 * inherits the saved state of another port: it starts as HAProxy 3.0 starts any new server, up
 * (the release gate has seen every one of them healthy as a candidate), then checked.
 */
export function serverBlocks(c: HaproxyConfig): HaproxyServerBlock[] {
    const block = (id: string, role: HaproxyServerBlock["role"], line: string, release?: HaproxyServerBlock["release"]): HaproxyServerBlock => ({
        id, role, line, ...markers(`${id} servers`), ...(release ? { release } : {}),
    });
    const db = `    server {name} {address}:${c.postgresPort} check port ${c.patroniPort}`;
    const app = "    server {name}-{port} {address}:{port} check";
    return [block("app", "app", app, "active"), block("app-candidate", "app", app, "candidate"), block("db-primary", "db", db), block("db-replicas", "db", db)];
}

/** The readiness answers, kept by the agent: they name the port each backend serves, so a check can tell an old release from a new one. */
export function releaseBlocks(): ReleaseLinesBlock[] {
    const answer = (backend: string, port: string, cond: string) =>
        `    http-request return status 200 content-type text/plain lf-string "%[nbsrv(${backend})] ${port}" if { path ${READY_PATH} } ${cond}`;
    return [{ id: "readiness", ...markers("readiness"), lines: [answer("app", "{aport}", "!candidate_host"), answer("app-candidate", "{cport}", "candidate_host")] }];
}

/** Both colours are checked and retried alike, so a swap changes where traffic goes and nothing else. */
function appBackend(name: string, c: HaproxyConfig): string {
    return `backend ${name}
    balance roundrobin
    option httpchk GET ${c.appHealthPath}
    http-check expect status 200
    # A dead node is out after 3 failed checks 500 ms apart (well within 3 s); meanwhile an
    # idempotent request that hits it is retried once on another node.
    default-server inter 500ms fastinter 250ms downinter 1s fall 3 rise 2 slowstart 5s
    retries 2
    option redispatch 1
    retry-on conn-failure empty-response response-timeout 502 503 504
    timeout server 15s`;
}

/**
 * HTTP to HTTPS and HSTS on the scheme the visitor used. Cloudflare reaches this origin over
 * HTTPS whatever the visitor used, so ssl_fc says nothing about the visitor; Cloudflare says it in
 * CF-Visitor (and X-Forwarded-Proto), which it overwrites on every request. Only this zone's
 * proxy gets past the origin-pull check (originPullCheck), so the headers are Cloudflare's.
 * A request with neither header is answered as it is. The monitor path is never
 * redirected: Cloudflare's health checks must see 200 or 503 whichever scheme they say
 * (monitor-uri answers before these rules in HAProxy 3.0; the acl keeps that explicit).
 */
export function visitorScheme(c: Pick<HaproxyConfig, "hstsMaxAgeSeconds" | "hstsIncludeSubdomains" | "monitorPath">): string {
    const hsts = `max-age=${c.hstsMaxAgeSeconds}${c.hstsIncludeSubdomains ? "; includeSubDomains" : ""}`;
    return `    acl cf_visitor req.hdr(cf-visitor) -m found
    acl visitor_http req.hdr(cf-visitor) -m reg '"scheme"\\s*:\\s*"http"'
    acl visitor_https req.hdr(cf-visitor) -m reg '"scheme"\\s*:\\s*"https"'
    acl forwarded_http req.hdr(x-forwarded-proto) -i http
    acl forwarded_https req.hdr(x-forwarded-proto) -i https
    acl monitor_path path ${c.monitorPath}
    http-request redirect scheme https code 301 if !monitor_path visitor_http || !monitor_path !cf_visitor forwarded_http
    http-request set-var(txn.visitor_https) bool(true) if visitor_https || !cf_visitor forwarded_https
    http-response set-header Strict-Transport-Security "${hsts}" if { var(txn.visitor_https) -m bool }`;
}

/**
 * Every request but the monitor's needs the origin-pull certificate, verified: anyone else
 * (another Cloudflare account proxying here, a client on port 80) is refused, 403.
 */
export function originPullCheck(): string {
    return `    http-request deny deny_status 403 unless { ssl_c_used } { ssl_c_verify 0 }`;
}

/**
 * pulumi up's rollout wait asks ${ROLLOUT_VIEW_PATH}, and `npm run status` ${STATUS_VIEW_PATH}, on
 * either hostname: with the token (compared here, from root-only files) they reach the local
 * view; without it, a 404 as for a path that does not exist. Never the app, either way.
 */
export function rolloutRoute(): string {
    return `    acl view_path path ${ROLLOUT_VIEW_PATH} ${STATUS_VIEW_PATH}
    acl rollout_token req.fhdr(${ROLLOUT_TOKEN_HEADER.toLowerCase()}) -m str -f ${ROLLOUT_TOKEN_FILE}
    acl rollout_bearer req.fhdr(authorization) -m str -f ${ROLLOUT_BEARER_FILE}
    http-request return status 404 content-type text/plain string "not found" if view_path !rollout_token !rollout_bearer`;
}

/** The pattern files' contents for a token (one pattern a line). */
export function rolloutTokenFiles(token: string): { token: string; bearer: string } {
    if (!/^[A-Za-z0-9]{32,128}$/.test(token)) throw new Error("rollout token: expected 32-128 letters and digits (a generated secret)");
    return { token: `${token}\n`, bearer: `Bearer ${token}\n` };
}

export function renderHaproxyConfig(c: HaproxyConfig): string {
    const servers = Object.fromEntries([...serverBlocks(c), ...releaseBlocks()].map((b) => [b.id, `${b.begin}\n${b.end}`]));
    return `# vps-ha: rendered by the program; changes here are replaced on the next deploy.
global
    log /dev/log local0
    maxconn 4096
    stats socket ${ADMIN_SOCKET} mode 660 level admin
    server-state-file ${SERVER_STATE_FILE}
    ssl-default-bind-options ssl-min-ver TLSv1.2 no-tls-tickets
    ssl-default-bind-ciphersuites TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256

defaults
    log global
    load-server-state-from-file global
    mode http
    option httplog
    option dontlognull
    # A reload's old process answers the next request on each idle keep-alive connection (with
    # Connection: close) instead of closing it under a client about to send one.
    option idle-close-on-response
    timeout connect 2s
    timeout client 30s
    timeout server 30s
    timeout http-request 10s
    timeout queue 5s

frontend web
    bind :${c.ports.http}
    # Cloudflare presents the stack's own origin-pull certificate (Authenticated Origin Pulls): a
    # wrong one fails the handshake; without one only the monitor path answers (below).
    bind :${c.ports.https} ssl crt ${ORIGIN_PEM} verify optional ca-file ${ORIGIN_PULL_CA} alpn h2,http/1.1
    # Cloudflare's monitor asks this: 200 while at least one app node is up, 503 otherwise. It
    # answers before any http-request rule, so with or without a client certificate: the
    # monitors and health checks need not present one, and it tells nothing but up or down.
    monitor-uri ${c.monitorPath}
    monitor fail if { nbsrv(app) lt 1 }
    # With no app node to send to, refuse the connection rather than answer 503: Cloudflare's
    # load balancer then retries the request on the other HAProxy node at once.
    tcp-request connection reject if { nbsrv(app) lt 1 }
${originPullCheck()}
${visitorScheme(c)}
${rolloutRoute()}
    # The release candidate: the same app nodes, the candidate image's port (see components/release.ts).
    acl candidate_host req.hdr(host),field(1,:) -i ${c.candidateHostname}
    # The release gate asks this on either hostname (empty until the agent has read a release).
${servers.readiness}
    use_backend rollout-view if view_path
    use_backend app-candidate if candidate_host
    default_backend app

# The views' answers read every node's status server and the status sources (each read bounded, all at once).
backend rollout-view
    timeout server 15s
    server view 127.0.0.1:${c.rolloutViewPort}

${appBackend("app", c)}
${servers.app}

${appBackend("app-candidate", c)}
${servers["app-candidate"]}

# PostgreSQL clients: 5000 reaches the primary only, 5001 the replicas. Patroni's REST API says
# who is who; OPTIONS keeps Patroni from logging a traceback per check.
listen ${DB_PRIMARY_LISTEN}
    bind ${c.meshAddress}:${c.ports.dbPrimary}
    mode tcp
    option tcplog
    timeout client 30m
    timeout server 30m
    option httpchk OPTIONS /primary
    http-check expect status 200
    # A planned switchover's pause lasts until the old primary is out and the new one in, so both
    # are seen quickly: the primary is asked every 250 ms and, after a failed answer, again within
    # 100 ms (out 0.35 s at most after Patroni stops calling it the primary); any other member
    # every 200 ms (a new primary is in within 0.2 s). An answer may take up to 1 s: a busy
    # Patroni is not a dead one.
    timeout check 1s
    default-server inter 250ms fastinter 100ms downinter 200ms fall 2 rise 1 on-marked-down shutdown-sessions
${servers["db-primary"]}

listen db-replicas
    bind ${c.meshAddress}:${c.ports.dbReplicas}
    mode tcp
    option tcplog
    balance roundrobin
    timeout client 30m
    timeout server 30m
    option httpchk OPTIONS /replica?lag=${c.maxReplicaLagBytes}
    http-check expect status 200
    default-server inter 1s fall 2 rise 1 on-marked-down shutdown-sessions
${servers["db-replicas"]}

frontend stats
    bind ${c.meshAddress}:${c.ports.stats}
    http-request use-service prometheus-exporter if { path /metrics }
    stats enable
    stats uri /stats
    stats refresh 5s
`;
}

export const WAIT_FOR_APPS = "/usr/local/sbin/vps-ha-haproxy-wait-for-apps";
/** How long a starting HAProxy waits for an app node before it opens its ports anyway. */
const WAIT_FOR_APPS_SECONDS = 20;

/**
 * HAProxy 3.0 starts with every server UP until its checks say otherwise (`init-state` came in
 * 3.1). On a node that has just booted the mesh may not carry traffic yet, so the first requests
 * would meet unreachable app nodes and get 503s from a proxy that Cloudflare still holds healthy.
 * This holds HAProxy's start until one app node answers its health path over the mesh (bounded).
 */
export function renderWaitForApps(c: Pick<HaproxyConfig, "appHealthPath">): string {
    return `#!/bin/sh
# Before HAProxy starts: wait (at most ${WAIT_FOR_APPS_SECONDS} s) until an app server named in its config answers.
set -u
servers=$(awk '/^[a-z]/ { section = $1 " " $2 } section == "backend app" && $1 == "server" { print $3 }' /etc/haproxy/haproxy.cfg)
[ -n "$servers" ] || exit 0
i=0
while [ "$i" -lt ${WAIT_FOR_APPS_SECONDS} ]; do
  for s in $servers; do
    curl -fs -o /dev/null --max-time 1 "http://$s${c.appHealthPath}" && exit 0
  done
  sleep 1
  i=$((i + 1))
done
echo "no app server answered within ${WAIT_FOR_APPS_SECONDS} s; starting anyway" >&2
exit 0
`;
}

/** What the directory agent does on a proxy node: which lines it keeps, how it checks and reloads. */
export function haproxyDirectory(c: HaproxyConfig): DirectoryHaproxy {
    return {
        config: HAPROXY_CFG,
        socket: ADMIN_SOCKET,
        stateFile: SERVER_STATE_FILE,
        check: ["haproxy", "-c", "-q", "-f"],
        isActive: ["systemctl", "is-active", "--quiet", "haproxy.service"],
        // Debian 13's unit runs HAProxy master-worker: a reload hands the listeners over, no connection is refused.
        reload: ["systemctl", "reload", "haproxy.service"],
        blocks: serverBlocks(c),
        releaseBlocks: releaseBlocks(),
    };
}

/** `rolloutToken`: what /vps-ha/rollout and /vps-ha/status ask for (secret; letters and digits). */
/** `originPullCa`: the certificate Cloudflare presents (Authenticated Origin Pulls), without its key. */
export function haproxyPart(c: HaproxyConfig, originPem: string, originPullCa: string, rolloutToken: string): CloudConfigPart {
    const token = rolloutTokenFiles(rolloutToken);
    return {
        packages: ["haproxy", "curl"],
        files: [
            { path: WAIT_FOR_APPS, content: renderWaitForApps(c), permissions: "0755" },
            { path: "/etc/systemd/system/haproxy.service.d/vps-ha-wait-for-apps.conf", content: renderUnit({ Service: { ExecStartPre: WAIT_FOR_APPS, TimeoutStartSec: "90s" } }) },
            { path: ORIGIN_PEM, content: originPem, permissions: "0600" },
            { path: ORIGIN_PULL_CA, content: originPullCa, permissions: "0644" },
            { path: ROLLOUT_TOKEN_FILE, content: token.token, permissions: "0600" },
            { path: ROLLOUT_BEARER_FILE, content: token.bearer, permissions: "0600" },
            { path: HAPROXY_CFG, content: renderHaproxyConfig(c) },
            { path: `${DIRECTORY_CONFIG_DIR}/haproxy.json`, content: JSON.stringify({ haproxy: haproxyDirectory(c) }, null, 1) + "\n" },
            // Bind the mesh address even if wg0 is not up yet when HAProxy starts.
            { path: "/etc/sysctl.d/60-vps-ha-nonlocal-bind.conf", content: "net.ipv4.ip_nonlocal_bind = 1\n" },
        ],
        commands: [
            ["sysctl", "-w", "net.ipv4.ip_nonlocal_bind=1"],
            ["systemctl", "daemon-reload"], // the drop-in above
            enableReloaded(["haproxy.service"], false),
            ["systemctl", "restart", "haproxy.service"],
        ],
        restarts: [
            // The directory agent puts the server lines back into a new haproxy.cfg, then reloads HAProxy.
            { unit: DIRECTORY_UNIT, paths: [HAPROXY_CFG, `${DIRECTORY_CONFIG_DIR}/haproxy.json`] },
            { unit: "haproxy.service", paths: [ORIGIN_PEM, ORIGIN_PULL_CA, ROLLOUT_TOKEN_FILE, ROLLOUT_BEARER_FILE], reload: true },
        ],
    };
}
