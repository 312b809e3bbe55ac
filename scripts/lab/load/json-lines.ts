// JSON-lines logs written by one process while another reads them: the last line may still be
// half written. Every complete line must parse; a partial last one is left for the next read.
export function parseJsonLines<T>(text: string): T[] {
    const lines = text.split("\n");
    const out: T[] = [];
    for (const [i, line] of lines.entries()) {
        if (!line) continue;
        try {
            out.push(JSON.parse(line) as T);
        } catch (e) {
            if (i === lines.length - 1) break; // no newline yet: still being written
            throw e;
        }
    }
    return out;
}
