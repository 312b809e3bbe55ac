// haproxy.cfg for one node of the HAProxy pair (HAProxy 3.0, Debian 13). Both nodes are active:
// each balances HTTP to the app nodes and routes database clients to the Patroni primary (5000)
// or the replicas (5001). Database, stats and app traffic stay on the mesh.
import { CloudConfigPart } from "./cloud-config";

export const HAPROXY_CFG = "/etc/haproxy/haproxy.cfg";
export const ORIGIN_PEM = "/etc/haproxy/certs/origin.pem";

export interface Backend {
    name: string;
    address: string;
}

export interface HaproxyConfig {
    /** This node's mesh address: database, stats and metrics listen here only. */
    meshAddress: string;
    apps: Backend[];
    appPort: number;
    appHealthPath: string;
    databases: Backend[];
    postgresPort: number;
    patroniPort: number;
    ports: { http: number; https: number; dbPrimary: number; dbReplicas: number; stats: number };
    /** A replica further behind than this is not offered on the replicas port. */
    maxReplicaLagBytes: number;
    hstsMaxAgeSeconds: number;
    /** HAProxy answers this path itself: 200 while at least one app node is up, 503 otherwise. */
    monitorPath: string;
}

export function renderHaproxyConfig(c: HaproxyConfig): string {
    const appServers = c.apps.map((a) => `    server ${a.name} ${a.address}:${c.appPort} check`);
    const dbServers = c.databases.map((d) => `    server ${d.name} ${d.address}:${c.postgresPort} check port ${c.patroniPort}`);
    return `# vps-ha: rendered by the program; changes here are replaced on the next deploy.
global
    log /dev/log local0
    maxconn 4096
    stats socket /run/haproxy/admin.sock mode 660 level admin
    ssl-default-bind-options ssl-min-ver TLSv1.2 no-tls-tickets
    ssl-default-bind-ciphersuites TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256

defaults
    log global
    mode http
    option httplog
    option dontlognull
    timeout connect 2s
    timeout client 30s
    timeout server 30s
    timeout http-request 10s
    timeout queue 5s

frontend web
    bind :${c.ports.http}
    bind :${c.ports.https} ssl crt ${ORIGIN_PEM} alpn h2,http/1.1
    # Cloudflare's monitor asks this: 200 while at least one app node is up, 503 otherwise.
    monitor-uri ${c.monitorPath}
    monitor fail if { nbsrv(app) lt 1 }
    http-request redirect scheme https code 301 unless { ssl_fc }
    http-response set-header Strict-Transport-Security "max-age=${c.hstsMaxAgeSeconds}; includeSubDomains"
    default_backend app

backend app
    balance roundrobin
    option httpchk GET ${c.appHealthPath}
    http-check expect status 200
    # A dead node is out after 3 failed checks 500 ms apart (well within 3 s); meanwhile an
    # idempotent request that hits it is retried once on another node.
    default-server inter 500ms fastinter 250ms downinter 1s fall 3 rise 2 slowstart 5s
    retries 2
    option redispatch 1
    retry-on conn-failure empty-response response-timeout 502 503 504
    timeout server 15s
${appServers.join("\n")}

# PostgreSQL clients: 5000 reaches the primary only, 5001 the replicas. Patroni's REST API says
# who is who; OPTIONS keeps Patroni from logging a traceback per check.
listen db-primary
    bind ${c.meshAddress}:${c.ports.dbPrimary}
    mode tcp
    option tcplog
    timeout client 30m
    timeout server 30m
    option httpchk OPTIONS /primary
    http-check expect status 200
    # A new primary is offered within half a second of Patroni promoting it.
    default-server inter 500ms fall 2 rise 1 on-marked-down shutdown-sessions
${dbServers.join("\n")}

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
${dbServers.join("\n")}

frontend stats
    bind ${c.meshAddress}:${c.ports.stats}
    http-request use-service prometheus-exporter if { path /metrics }
    stats enable
    stats uri /stats
    stats refresh 5s
`;
}

export function haproxyPart(c: HaproxyConfig, originPem: string): CloudConfigPart {
    return {
        packages: ["haproxy"],
        files: [
            { path: ORIGIN_PEM, content: originPem, permissions: "0600" },
            { path: HAPROXY_CFG, content: renderHaproxyConfig(c) },
            // Bind the mesh address even if wg0 is not up yet when HAProxy starts.
            { path: "/etc/sysctl.d/60-vps-ha-nonlocal-bind.conf", content: "net.ipv4.ip_nonlocal_bind = 1\n" },
        ],
        commands: [
            ["sysctl", "-w", "net.ipv4.ip_nonlocal_bind=1"],
            ["systemctl", "enable", "haproxy.service"],
            ["systemctl", "restart", "haproxy.service"],
        ],
    };
}
