// Admins' SSH access as desired state: their keys, and whether sshd runs at all. The keys are
// read from a file of ours beside each user's own authorized_keys, which keeps the keys the
// provider put there when the server was made (the rescue path); sshd itself stops and stays
// off when the stack opens SSH to no address range.
import { CloudConfigPart } from "./cloud-config";
import { enableReloaded, renderUnit, SKIP_SYSV_ENV } from "./systemd";

export const ADMIN_KEYS_DIR = "/etc/ssh/vps-ha-authorized-keys";
export const SSHD_DROPIN = "/etc/ssh/sshd_config.d/10-vps-ha.conf";
export const SSH_POLICY_UNIT = "vps-ha-ssh-policy.service";

export interface AdminSsh {
    publicKeys: string[];
    /** false: sshd is stopped and disabled (nobody logs in; the stack runs itself). */
    enabled: boolean;
}

export function adminSshPart(a: AdminSsh): CloudConfigPart {
    const keys = `${ADMIN_KEYS_DIR}/root`;
    const policyUnit = `/etc/systemd/system/${SSH_POLICY_UNIT}`;
    const policy = `systemctl ${a.enabled ? "enable" : "disable"} --now --no-block --no-reload ssh.service`;
    return {
        files: [
            { path: keys, content: a.publicKeys.map((k) => `${k}\n`).join(""), permissions: "0644" },
            // sshd reads the first value of an option, and Debian's sshd_config includes this directory first.
            { path: SSHD_DROPIN, content: `AuthorizedKeysFile .ssh/authorized_keys ${ADMIN_KEYS_DIR}/%u\nPasswordAuthentication no\n` },
            {
                path: policyUnit,
                content: renderUnit({
                    Unit: { Description: "vps-ha: sshd on or off as the stack says" },
                    Service: { Type: "oneshot", RemainAfterExit: "yes", Environment: SKIP_SYSV_ENV, ExecStart: policy },
                    Install: { WantedBy: "multi-user.target" },
                }),
            },
        ],
        // Not waited for: nothing else in the setup needs sshd on or off first.
        commands: [["systemctl", "daemon-reload"], ["systemctl", "enable", "--now", "--no-block", "--no-reload", SSH_POLICY_UNIT]],
        restarts: [
            { unit: "ssh.service", paths: [SSHD_DROPIN], reload: true },
            { unit: SSH_POLICY_UNIT, paths: [policyUnit] },
        ],
    };
}
