// User data as a provider's metadata service carries it: gzip, then base64. Cloud-init on both
// providers' images base64-decodes it (Linode's metadata always, Hetzner's datasource whenever
// the text decodes) and unzips gzip itself. A database node's cloud-config is over 40 KiB of
// text and Hetzner takes at most 32 KiB; compressed it is about a third of that.
//
// Compressed by fflate (pinned): the same text must give the same bytes on every machine and
// Node.js release, or every server would be replaced the day zlib changed its output.
import { gunzipSync, gzipSync, strFromU8, strToU8 } from "fflate";

/** Hetzner Cloud's limit on a server's user_data. */
export const HCLOUD_USER_DATA_LIMIT = 32 * 1024;

export function packUserData(text: string): string {
    return Buffer.from(gzipSync(strToU8(text), { level: 9, mtime: 0 })).toString("base64");
}

export function unpackUserData(packed: string): string {
    return strFromU8(gunzipSync(Buffer.from(packed, "base64")));
}
